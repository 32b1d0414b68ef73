/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "memory": what a connection costs the process, both
 * ends together, in bytes of resident memory (lower is better).
 *
 * Each measurement runs in a forked child of its own, so heaps do not mix:
 * it sets up (listener, contexts, a loop), opens a few pairs to warm up
 * (kept open), resets the peak (VmHWM, through /proc/self/clear_refs),
 * reads VmRSS, opens N connected pairs and keeps both ends, then reads
 * VmHWM. The figure is that growth of the peak, divided by N. (VmRSS at
 * the end is the same here: the allocator keeps what the handshakes
 * freed.) Kernel memory — socket structures and buffers — is the same for
 * both sides and not counted: a raw socket costs the process only the 8
 * bytes per end both sides spend keeping their ends in an array.
 *
 *   - plain, TCP and Unix: conduit_connect() + conduit_listener_accept()
 *     against socket/connect/accept4 ("raw");
 *   - TLS over TCP: the same with a TLS 1.3 handshake (a P-256
 *     certificate made at run time, the client verifying it against its
 *     CA) against OpenSSL directly ("openssl": one SSL_CTX per side, an SSL
 *     object per end after SSL_connect/SSL_accept, same certificate, same
 *     defaults: TLS 1.3, OpenSSL's default suites, TCP_NODELAY), and
 *     against the same with SSL_MODE_RELEASE_BUFFERS, which libconduit
 *     sets ("openssl-relbuf"); the server side accepts in a second thread;
 *   - the event API: both ends of plain TCP pairs held by watches
 *     (conduit_loop_watch(), asking for CONDUIT_EV_READ) on one event_base,
 *     against raw sockets held by socket bufferevents reading on the same
 *     kind of base ("bufferevent"). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"
#include "conduit/conduit.h"
#include "conduit/event.h"

#define WARMUP   16  /* pairs opened (and kept) before measuring */
#define FD_SPARE 64  /* descriptors beyond the pairs' */
#define CHILD_S  120 /* a measurement that takes longer is killed */

enum mkind {
        M_RAW_TCP,
        M_CONDUIT_TCP,
        M_RAW_UNIX,
        M_CONDUIT_UNIX,
        M_OPENSSL,
        M_OPENSSL_RB, /* with SSL_MODE_RELEASE_BUFFERS, as libconduit sets it */
        M_CONDUIT_TLS,
        M_BEV,
        M_WATCH,
};

/* The TLS kinds accept in a second thread (the handshakes need both
 * sides going at once). */
static bool tls_kind(enum mkind k)
{
        return k == M_OPENSSL || k == M_OPENSSL_RB || k == M_CONDUIT_TLS;
}

struct mem_files {
        char ca[512], cert[512], key[512], dir[400];
};

struct mem_out {
        double peak; /* bytes per pair */
};

/* ---- in the child ------------------------------------------------------------------- */

/* The child never runs the parent's exit handlers (the scratch directory
 * is the parent's). */
static void __attribute__((noreturn)) mdie(const char *what, int err)
{
        fprintf(stderr, "conduit-bench: memory: %s: %s (%s)\n", what, conduit_strerror(err),
                conduit_ctx_error_message(NULL));
        ERR_print_errors_fp(stderr);
        _exit(1);
}

/* A growing array of ends, as a program would keep them. */
struct vec {
        void **v;
        size_t n, cap;
};

static void push(struct vec *a, void *p)
{
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 16;
                void **v = realloc(a->v, cap * sizeof(*v));
                if (!v)
                        mdie("realloc", -ENOMEM);
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = p;
}

#define FD_OF(p) ((int)(intptr_t)(p))
#define AS_P(fd) ((void *)(intptr_t)(fd))

/* kB of a /proc/self/status line, in bytes. */
static double vm(const char *field)
{
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        size_t len = strlen(field);
        double v = -1;
        if (!f)
                mdie("/proc/self/status", -errno);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, len) == 0 && line[len] == ':') {
                        v = strtod(line + len + 1, NULL) * 1024;
                        break;
                }
        fclose(f);
        if (v < 0)
                mdie(field, -ENOENT);
        return v;
}

/* VmHWM back to the current VmRSS. False if the kernel does not let us
 * (then the peak is that of the whole child, and VmRSS is the figure). */
static bool reset_peak(void)
{
        FILE *f = fopen("/proc/self/clear_refs", "w");
        if (!f)
                return false;
        bool ok = fputs("5", f) >= 0;
        return fclose(f) == 0 && ok;
}

struct child {
        enum mkind kind;
        const struct mem_files *files;
        struct vec c, s; /* the two ends of each pair */
        /* plain raw */
        int lfd;
        struct sockaddr_storage addr;
        socklen_t addrlen;
        /* libconduit */
        conduit_listener *l;
        char uri[1200];
        /* openssl */
        SSL_CTX *cctx, *sctx;
        /* the event API */
        struct event_base *base;
        conduit_loop *loop;
        /* the server thread (TLS) */
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int accepted, to_accept;
};

static void raw_listen(struct child *ch, bool unix_socket)
{
        if (unix_socket) {
                struct sockaddr_un *sun = (struct sockaddr_un *)&ch->addr;
                sun->sun_family = AF_UNIX;
                int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/mem-%d.sock",
                                 ch->files->dir, (int)getpid());
                if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
                        mdie("unix socket path", -ENAMETOOLONG);
                ch->addrlen = sizeof(*sun);
        } else {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ch->addr;
                sin->sin_family = AF_INET;
                sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                ch->addrlen = sizeof(*sin);
        }
        ch->lfd = socket(ch->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (ch->lfd < 0 || bind(ch->lfd, (struct sockaddr *)&ch->addr, ch->addrlen) < 0 ||
            listen(ch->lfd, SOMAXCONN) < 0 ||
            getsockname(ch->lfd, (struct sockaddr *)&ch->addr, &ch->addrlen) < 0)
                mdie("raw listen", -errno);
}

static int raw_connect(struct child *ch)
{
        int fd = socket(ch->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&ch->addr, ch->addrlen) < 0)
                mdie("raw connect", -errno);
        return fd;
}

static int raw_accept(struct child *ch)
{
        int fd = accept4(ch->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                mdie("raw accept", -errno);
        return fd;
}

static void nodelay(int fd)
{
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conduit_listen_on(struct child *ch, const char *uri)
{
        int r = conduit_listen(NULL, uri, &ch->l);
        if (r < 0)
                mdie("conduit_listen", r);
        char *bound = NULL;
        if ((r = conduit_endp_format(conduit_listener_endp(ch->l), &bound)) < 0)
                mdie("conduit_endp_format", r);
        snprintf(ch->uri, sizeof(ch->uri), "%s", bound);
        free(bound);
}

static void dummy_read(struct bufferevent *bev, void *arg)
{
        (void)bev, (void)arg;
}

static void dummy_event(struct bufferevent *bev, short what, void *arg)
{
        (void)bev, (void)what, (void)arg;
}

static void dummy_ready(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)w, (void)f, (void)events, (void)arg;
}

static struct bufferevent *bev_on(struct child *ch, int fd)
{
        struct bufferevent *bev = bufferevent_socket_new(ch->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
                mdie("bufferevent_socket_new", -ENOMEM);
        bufferevent_setcb(bev, dummy_read, NULL, dummy_event, NULL);
        bufferevent_enable(bev, EV_READ);
        return bev;
}

static conduit_watch *watch_on(struct child *ch, conduit_flow *f)
{
        conduit_watch *w = NULL;
        int r = conduit_loop_watch(ch->loop, f, dummy_ready, NULL, &w);
        if (r < 0)
                mdie("conduit_loop_watch", r);
        conduit_watch_set(w, CONDUIT_EV_READ);
        return w;
}

/* The TLS server side: accepts (handshake included) in its own thread. */
static void *tls_server(void *arg)
{
        struct child *ch = arg;
        for (int i = 0; i < ch->to_accept; i++) {
                void *end;
                if (ch->kind == M_OPENSSL || ch->kind == M_OPENSSL_RB) {
                        int fd = raw_accept(ch);
                        nodelay(fd);
                        SSL *ssl = SSL_new(ch->sctx);
                        if (!ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1)
                                mdie("SSL_accept", -EPROTO);
                        end = ssl;
                } else {
                        conduit_flow *f = NULL;
                        int r = conduit_listener_accept(ch->l, &f);
                        if (r < 0)
                                mdie("conduit_listener_accept", r);
                        end = f;
                }
                pthread_mutex_lock(&ch->mu);
                push(&ch->s, end);
                ch->accepted++;
                pthread_cond_signal(&ch->cv);
                pthread_mutex_unlock(&ch->mu);
        }
        return NULL;
}

static void wait_accepted(struct child *ch, int n)
{
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 60;
        pthread_mutex_lock(&ch->mu);
        while (ch->accepted < n)
                if (pthread_cond_timedwait(&ch->cv, &ch->mu, &until) == ETIMEDOUT)
                        mdie("the TLS server thread", -ETIMEDOUT);
        pthread_mutex_unlock(&ch->mu);
}

static void setup(struct child *ch, int total)
{
        const struct mem_files *fl = ch->files;
        char uri[1200];
        switch (ch->kind) {
        case M_RAW_TCP:
        case M_BEV: raw_listen(ch, false); break;
        case M_RAW_UNIX: raw_listen(ch, true); break;
        case M_CONDUIT_TCP:
        case M_WATCH: conduit_listen_on(ch, "tcp://127.0.0.1:0"); break;
        case M_CONDUIT_UNIX:
                snprintf(uri, sizeof(uri), "unix://%s/memc-%d.sock", fl->dir, (int)getpid());
                conduit_listen_on(ch, uri);
                break;
        case M_OPENSSL:
        case M_OPENSSL_RB:
                raw_listen(ch, false);
                ch->sctx = SSL_CTX_new(TLS_server_method());
                ch->cctx = SSL_CTX_new(TLS_client_method());
                if (!ch->sctx || !ch->cctx ||
                    !SSL_CTX_set_min_proto_version(ch->sctx, TLS1_2_VERSION) ||
                    !SSL_CTX_set_min_proto_version(ch->cctx, TLS1_2_VERSION) ||
                    SSL_CTX_use_certificate_chain_file(ch->sctx, fl->cert) != 1 ||
                    SSL_CTX_use_PrivateKey_file(ch->sctx, fl->key, SSL_FILETYPE_PEM) != 1 ||
                    SSL_CTX_load_verify_locations(ch->cctx, fl->ca, NULL) != 1)
                        mdie("SSL_CTX setup", -EPROTO);
                SSL_CTX_set_verify(ch->cctx, SSL_VERIFY_PEER, NULL);
                if (ch->kind == M_OPENSSL_RB) {
                        SSL_CTX_set_mode(ch->cctx, SSL_MODE_RELEASE_BUFFERS);
                        SSL_CTX_set_mode(ch->sctx, SSL_MODE_RELEASE_BUFFERS);
                }
                break;
        case M_CONDUIT_TLS: {
                snprintf(uri, sizeof(uri), "tls+tcp://127.0.0.1:0?cert=%s&key=%s", fl->cert,
                         fl->key);
                int r = conduit_listen(NULL, uri, &ch->l);
                if (r < 0)
                        mdie("conduit_listen", r);
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                if (getsockname(conduit_listener_fd(ch->l), (struct sockaddr *)&ss, &len) < 0)
                        mdie("getsockname", -errno);
                snprintf(ch->uri, sizeof(ch->uri), "tls+tcp://127.0.0.1:%d?cafile=%s",
                         ntohs(((struct sockaddr_in *)&ss)->sin_port), fl->ca);
                break;
        }
        }
        if (ch->kind == M_BEV || ch->kind == M_WATCH) {
                if (!(ch->base = event_base_new()))
                        mdie("event_base_new", -ENOMEM);
                int r = ch->kind == M_WATCH ? conduit_loop_new(NULL, ch->base, &ch->loop) : 0;
                if (r < 0)
                        mdie("conduit_loop_new", r);
        }
        if (tls_kind(ch->kind)) {
                pthread_mutex_init(&ch->mu, NULL);
                pthread_cond_init(&ch->cv, NULL);
                ch->to_accept = total;
                int r = pthread_create(&ch->thread, NULL, tls_server, ch);
                if (r != 0)
                        mdie("pthread_create", -r);
        }
}

/* One more pair, both ends kept. */
static void open_pair(struct child *ch)
{
        conduit_flow *c = NULL, *s = NULL;
        int r, cfd, sfd;
        switch (ch->kind) {
        case M_RAW_TCP:
        case M_RAW_UNIX:
                cfd = raw_connect(ch);
                push(&ch->c, AS_P(cfd));
                push(&ch->s, AS_P(raw_accept(ch)));
                break;
        case M_BEV:
                cfd = raw_connect(ch);
                sfd = raw_accept(ch);
                push(&ch->c, bev_on(ch, cfd));
                push(&ch->s, bev_on(ch, sfd));
                break;
        case M_CONDUIT_TCP:
        case M_CONDUIT_UNIX:
        case M_WATCH:
                if ((r = conduit_connect(NULL, ch->uri, &c)) < 0)
                        mdie("conduit_connect", r);
                if ((r = conduit_listener_accept(ch->l, &s)) < 0)
                        mdie("conduit_listener_accept", r);
                if (ch->kind == M_WATCH) {
                        push(&ch->c, watch_on(ch, c));
                        push(&ch->s, watch_on(ch, s));
                } else {
                        push(&ch->c, c);
                        push(&ch->s, s);
                }
                break;
        case M_OPENSSL:
        case M_OPENSSL_RB: {
                cfd = raw_connect(ch);
                nodelay(cfd);
                SSL *ssl = SSL_new(ch->cctx);
                if (!ssl || !SSL_set_fd(ssl, cfd) ||
                    !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1") ||
                    SSL_connect(ssl) != 1)
                        mdie("SSL_connect", -EPROTO);
                push(&ch->c, ssl);
                break;
        }
        case M_CONDUIT_TLS:
                if ((r = conduit_connect(NULL, ch->uri, &c)) < 0)
                        mdie("conduit_connect", r);
                push(&ch->c, c);
                break;
        }
}

static void teardown(struct child *ch)
{
        if (tls_kind(ch->kind)) {
                pthread_join(ch->thread, NULL);
                pthread_mutex_destroy(&ch->mu);
                pthread_cond_destroy(&ch->cv);
        }
        struct vec *ends[2] = { &ch->c, &ch->s };
        for (int k = 0; k < 2; k++) {
                for (size_t i = 0; i < ends[k]->n; i++) {
                        void *p = ends[k]->v[i];
                        switch (ch->kind) {
                        case M_RAW_TCP:
                        case M_RAW_UNIX: close(FD_OF(p)); break;
                        case M_BEV: bufferevent_free(p); break;
                        case M_WATCH: conduit_watch_free(p); break;
                        case M_OPENSSL:
                        case M_OPENSSL_RB:
                                close(SSL_get_fd(p));
                                SSL_free(p);
                                break;
                        default: conduit_flow_free(p); break;
                        }
                }
                free(ends[k]->v);
        }
        if (ch->lfd >= 0) {
                if (ch->addr.ss_family == AF_UNIX)
                        unlink(((struct sockaddr_un *)&ch->addr)->sun_path);
                close(ch->lfd);
        }
        conduit_listener_free(ch->l);
        SSL_CTX_free(ch->cctx);
        SSL_CTX_free(ch->sctx);
        conduit_loop_free(ch->loop);
        if (ch->base)
                event_base_free(ch->base);
}

static struct mem_out child_measure(enum mkind kind, const struct mem_files *files, int n)
{
        struct child ch = { .kind = kind, .files = files, .lfd = -1 };
        bool threaded = tls_kind(kind);
        setup(&ch, WARMUP + n);
        for (int i = 0; i < WARMUP; i++)
                open_pair(&ch);
        if (threaded)
                wait_accepted(&ch, WARMUP);
        /* the heap inherited from the parent holds free memory that is
         * resident (earlier groups' buffers): give it back, or the pairs
         * would move into it without growing the RSS */
        malloc_trim(0);
        /* the measuring code's own pages in first (the kernel takes the
         * figures at the read, before the parsing runs) */
        (void)vm("VmHWM");
        bool peak = reset_peak();
        double rss0 = vm("VmRSS");
        for (int i = 0; i < n; i++)
                open_pair(&ch);
        if (threaded)
                wait_accepted(&ch, WARMUP + n);
        if (ch.base)
                event_base_loop(ch.base, EVLOOP_NONBLOCK);
        double hwm = vm(peak ? "VmHWM" : "VmRSS");
        teardown(&ch);
        return (struct mem_out){ (hwm - rss0) / n };
}

/* ---- in the parent -------------------------------------------------------------------- */

/* Forks a child for one measurement and waits for its figures, bounded. */
static struct mem_out measure(enum mkind kind, const struct mem_files *files, int n)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe", -errno);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
                bench_die("fork", -errno);
        if (pid == 0) {
                close(p[0]);
                struct mem_out m = child_measure(kind, files, n);
                _exit(write(p[1], &m, sizeof(m)) == (ssize_t)sizeof(m) ? 0 : 1);
        }
        close(p[1]);
        struct mem_out m;
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        int r;
        while ((r = poll(&pfd, 1, CHILD_S * 1000)) < 0 && errno == EINTR)
                ;
        ssize_t got = r > 0 ? read(p[0], &m, sizeof(m)) : -1;
        close(p[0]);
        if (got != (ssize_t)sizeof(m))
                kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (got != (ssize_t)sizeof(m) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("memory: the measuring child failed", r == 0 ? -ETIMEDOUT : -EIO);
        return m;
}

/* The server certificate (self-signed, P-256, for 127.0.0.1 and localhost),
 * made at run time in the scratch directory; it is its own CA. */
static void make_files(const struct bench_opts *o, struct mem_files *fl)
{
        snprintf(fl->dir, sizeof(fl->dir), "%s", o->dir);
        snprintf(fl->cert, sizeof(fl->cert), "%s/mem-server.pem", o->dir);
        snprintf(fl->key, sizeof(fl->key), "%s/mem-server.key", o->dir);
        snprintf(fl->ca, sizeof(fl->ca), "%s", fl->cert);
        bench_make_cert(fl->cert, fl->key, false);
}

void bench_memory(const struct bench_opts *o)
{
        int reps = o->reps;
        int n = o->quick ? 500 : 2000;
        /* two descriptors per pair, both ends in one process */
        struct rlimit old, rl;
        if (getrlimit(RLIMIT_NOFILE, &old) < 0)
                bench_die("getrlimit", -errno);
        rl = old;
        rlim_t need = 2 * (rlim_t)(n + WARMUP) + FD_SPARE;
        if (rl.rlim_cur < need) {
                rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        bench_die("setrlimit", -errno);
        }
        if (rl.rlim_cur < need) {
                long fit = ((long)rl.rlim_cur - FD_SPARE) / 2 - WARMUP;
                if (fit < 50) {
                        printf("(group memory: skipped, only %ld descriptors allowed)\n",
                               (long)rl.rlim_cur);
                        return;
                }
                printf("(memory: %d pairs do not fit in %ld descriptors: %ld pairs)\n", n,
                       (long)rl.rlim_cur, fit);
                n = (int)fit;
        }
        struct mem_files files;
        make_files(o, &files);
        /* base2: a second baseline, against the same libconduit figures */
        static const struct {
                const char *name, *against, *against2;
                enum mkind base, cond, base2;
        } cases[] = {
                { "tcp pair", "raw", NULL, M_RAW_TCP, M_CONDUIT_TCP, 0 },
                { "unix pair", "raw", NULL, M_RAW_UNIX, M_CONDUIT_UNIX, 0 },
                { "tls+tcp pair", "openssl", "openssl-relbuf", M_OPENSSL, M_CONDUIT_TLS,
                  M_OPENSSL_RB },
                { "tcp pair, watched", "bufferevent", NULL, M_BEV, M_WATCH, 0 },
        };
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                double b[99], c[99], b2[99], c2[99];
                for (int i = 0; i < reps; i++) {
                        b[i] = measure(cases[k].base, &files, n).peak;
                        c2[i] = c[i] = measure(cases[k].cond, &files, n).peak;
                        if (cases[k].against2)
                                b2[i] = measure(cases[k].base2, &files, n).peak;
                }
                char name[64];
                snprintf(name, sizeof(name), "memory %s", cases[k].name);
                bench_record(name, cases[k].against, "B/pair", false, b, c, reps);
                if (cases[k].against2)
                        bench_record(name, cases[k].against2, "B/pair", false, b2, c2, reps);
        }
        setrlimit(RLIMIT_NOFILE, &old);
}
