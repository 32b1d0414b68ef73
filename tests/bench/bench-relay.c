/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "relay": conduit-cat relaying between two sockets
 * against socat (default buffer and -b 131072) and against a minimal
 * splice(2) relay written here, over TCP loopback and Unix sockets; and
 * conduit-cat terminating TLS against socat's OPENSSL-LISTEN.
 *
 * Each repetition starts every candidate as a process of its own listening
 * on a fresh address, for exactly one client: a source (this process)
 * connects to it and streams T bytes in 128 KiB writes, then shuts down its
 * write side; the relay forwards them to a sink (a thread of this process)
 * that reads and counts until EOF, then closes. The figure is T over the
 * time from the source's first write to the sink's EOF, in MiB/s. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "conduit/conduit.h"

#define CHUNK            (128u << 10) /* the source's writes */
#define SINK_BUF         (256u << 10) /* the sink's reads */
#define IO_TIMEOUT_MS    10000        /* no progress for this long: give up */
#define START_TIMEOUT_MS 5000         /* a relay not listening after this: restart it */
#define START_ATTEMPTS   5
/* The one suite the TLS source offers, so that both relays use it (it is
 * what both pick by default anyway). */
#define TLS_SUITE "TLS_AES_256_GCM_SHA384"

/* ---- the relay process ------------------------------------------------------ */

/* The relay running now, killed and reaped by every way out (bench_die()
 * exits through exit()). */
static pid_t relay_pid = -1;

static void relay_kill(void)
{
        if (relay_pid > 0) {
                kill(relay_pid, SIGKILL);
                while (waitpid(relay_pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                relay_pid = -1;
        }
}

static void at_exit_kill(void)
{
        relay_kill();
}

/* The CPU time (user + system) of the relay last reaped by relay_reap(). */
static double relay_cpu;

/* Waits up to ms for the relay to exit; kills it if it does not. Returns
 * its wait status, or -1 if it had to be killed. */
static int relay_reap(int ms)
{
        for (int waited = 0;; waited += 5) {
                int st = 0;
                struct rusage ru;
                pid_t r = wait4(relay_pid, &st, WNOHANG, &ru);
                if (r == relay_pid) {
                        relay_pid = -1;
                        relay_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
                        return st;
                }
                if (r < 0 && errno != EINTR)
                        bench_die("waitpid", -errno);
                if (waited >= ms) {
                        relay_kill();
                        return -1;
                }
                poll(NULL, 0, 5);
        }
}

/* Whether the relay has exited already (then reaped, *status set). */
static bool relay_gone(int *status)
{
        int st = 0;
        pid_t r = waitpid(relay_pid, &st, WNOHANG);
        if (r == relay_pid) {
                relay_pid = -1;
                *status = st;
                return true;
        }
        return false;
}

/* In a child just forked: dies with this process, even if it is killed
 * (SIGKILL leaves no way out to clean up). */
static void die_with_parent(pid_t parent)
{
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
}

static void relay_exec(char *const argv[])
{
        fflush(stdout);
        fflush(stderr);
        pid_t self = getpid(), pid = fork();
        if (pid < 0)
                bench_die("fork", -errno);
        if (pid == 0) {
                die_with_parent(self);
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        dup2(null, 0);
                        dup2(null, 1);
                }
                execvp(argv[0], argv);
                _exit(127);
        }
        relay_pid = pid;
}

/* ---- addresses ---------------------------------------------------------------- */

struct addr {
        struct sockaddr_storage ss;
        socklen_t len;
};

static void addr_tcp(struct addr *a, int port)
{
        struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
        memset(a, 0, sizeof(*a));
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->len = sizeof(*in);
}

static void addr_unix(struct addr *a, const char *path)
{
        struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
        memset(a, 0, sizeof(*a));
        un->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(un->sun_path))
                bench_die(path, -ENAMETOOLONG);
        strcpy(un->sun_path, path);
        a->len = sizeof(*un);
}

/* A listening socket on a (TCP port 0: a free port, written back). */
static int listen_on(struct addr *a)
{
        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                bench_die("socket", -errno);
        if (a->ss.ss_family == AF_UNIX)
                unlink(((struct sockaddr_un *)&a->ss)->sun_path);
        if (bind(fd, (struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 16) < 0)
                bench_die("bind/listen", -errno);
        if (a->ss.ss_family == AF_INET) {
                socklen_t len = a->len;
                if (getsockname(fd, (struct sockaddr *)&a->ss, &len) < 0)
                        bench_die("getsockname", -errno);
        }
        return fd;
}

/* A TCP port free right now (bound to port 0, read, closed): for the
 * relays that take a port on their command line. */
static int free_port(void)
{
        struct addr a;
        addr_tcp(&a, 0);
        int fd = listen_on(&a);
        close(fd);
        return ntohs(((struct sockaddr_in *)&a.ss)->sin_port);
}

static void set_timeouts(int fd)
{
        struct timeval tv = { IO_TIMEOUT_MS / 1000, 0 };
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                bench_die("SO_RCVTIMEO/SO_SNDTIMEO", -errno);
}

/* ---- the sink ------------------------------------------------------------------ */

struct sink {
        int lfd;
        size_t expect;
        unsigned char *buf;
        double t_eof;
        pthread_t thread;
};

static void *sink_main(void *arg)
{
        struct sink *s = arg;
        struct pollfd p = { .fd = s->lfd, .events = POLLIN };
        /* the relay connects once its client is there (and its TLS
         * handshake done): the start of a relay is bounded too */
        int r = poll(&p, 1, START_ATTEMPTS * START_TIMEOUT_MS + IO_TIMEOUT_MS);
        if (r <= 0)
                bench_die("sink: no connection from the relay", r < 0 ? -errno : -ETIMEDOUT);
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                bench_die("sink: accept", -errno);
        set_timeouts(fd);
        size_t got = 0;
        for (;;) {
                ssize_t n = read(fd, s->buf, SINK_BUF);
                if (n == 0)
                        break;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        bench_die("sink: read", errno == EAGAIN ? -ETIMEDOUT : -errno);
                }
                got += (size_t)n;
        }
        s->t_eof = bench_now();
        close(fd);
        if (got != s->expect) {
                fprintf(stderr, "conduit-bench: sink got %zu bytes of %zu\n", got, s->expect);
                exit(1);
        }
        return NULL;
}

/* ---- the splice relay ---------------------------------------------------------- */

/* One direction: in -> pipe -> out. */
struct sdir {
        int in, out;
        int p[2];
        size_t inpipe;
        bool eof, done;
};

/* Moves what it can without waiting. Returns 1 on progress, 0 if it must
 * wait (*ev set: POLLIN on in or POLLOUT on out), -1 on failure. */
static int sdir_step(struct sdir *d, short *ev_in, short *ev_out)
{
        int progress = 0;
        if (!d->eof) {
                ssize_t n = splice(d->in, NULL, d->p[1], NULL, 1u << 20,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                        d->inpipe += (size_t)n;
                        progress = 1;
                } else if (n == 0) {
                        d->eof = true;
                        progress = 1;
                } else if (errno != EAGAIN && errno != EINTR) {
                        return -1;
                }
        }
        if (d->inpipe > 0) {
                ssize_t n = splice(d->p[0], NULL, d->out, NULL, d->inpipe,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                        d->inpipe -= (size_t)n;
                        progress = 1;
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                        return -1;
                }
        }
        if (d->eof && d->inpipe == 0) {
                shutdown(d->out, SHUT_WR);
                d->done = true;
                return 1;
        }
        if (progress)
                return 1;
        /* Bytes in the pipe: draining it is what makes room (the pipe may be
         * full of slots though not of bytes). An empty pipe: the source is. */
        if (d->inpipe > 0)
                *ev_out |= POLLOUT;
        else
                *ev_in |= POLLIN;
        return 0;
}

/* The child: accepts one client on lfd, connects to sink, relays both ways
 * until both are done. Never returns. */
static void splice_relay(int lfd, const struct addr *sink)
{
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, START_ATTEMPTS * START_TIMEOUT_MS) <= 0)
                _exit(1);
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        close(lfd);
        int s = socket(sink->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || s < 0 || connect(s, (const struct sockaddr *)&sink->ss, sink->len) < 0 ||
            fcntl(s, F_SETFL, O_NONBLOCK) < 0)
                _exit(1);
        struct sdir d[2] = { { .in = c, .out = s }, { .in = s, .out = c } };
        for (int i = 0; i < 2; i++)
                if (pipe2(d[i].p, O_CLOEXEC | O_NONBLOCK) < 0)
                        _exit(1);
        while (!d[0].done || !d[1].done) {
                short ev[2] = { 0, 0 }; /* c, s */
                int progress = 0;
                for (int i = 0; i < 2; i++) {
                        if (d[i].done)
                                continue;
                        /* direction 0 reads c and writes s, 1 the reverse */
                        int r = sdir_step(&d[i], &ev[i], &ev[1 - i]);
                        if (r < 0)
                                _exit(1);
                        progress |= r;
                }
                if (progress)
                        continue;
                struct pollfd pf[2] = { { .fd = c, .events = ev[0] },
                                        { .fd = s, .events = ev[1] } };
                int r = poll(pf, 2, IO_TIMEOUT_MS);
                if (r == 0 || (r < 0 && errno != EINTR))
                        _exit(1);
        }
        _exit(0);
}

/* Forks the splice relay on a listening socket made here (no port race). */
static void splice_start(struct addr *listen_addr, const struct addr *sink)
{
        int lfd = listen_on(listen_addr);
        pid_t self = getpid(), pid = fork();
        if (pid < 0)
                bench_die("fork", -errno);
        if (pid == 0) {
                die_with_parent(self);
                splice_relay(lfd, sink);
        }
        close(lfd);
        relay_pid = pid;
}

/* ---- one transfer ---------------------------------------------------------------- */

enum kind { K_CAT, K_SOCAT, K_SOCAT_B, K_SPLICE, K_CAT_TLS, K_SOCAT_TLS };

struct setup {
        bool unix_;      /* Unix sockets, else TCP */
        const char *cat; /* conduit-cat */
        const char *dir; /* scratch */
        const char *cert, *key;
        struct addr sink; /* where the sink listens */
        int sink_lfd;
        size_t total;
        unsigned char *wbuf, *rbuf;
        int seq; /* for fresh Unix paths */
};

/* Starts the relay of kind k listening on a fresh address; fills *a (where
 * to connect) and uri (the same as a TLS URI for the TLS kinds). */
static void start(struct setup *s, enum kind k, struct addr *a, char *uri, size_t urisz)
{
        char path[200], l[400], r[300], lsoc[400], rsoc[300];
        int port = 0;
        if (s->unix_) {
                snprintf(path, sizeof(path), "%s/relay-%d.sock", s->dir, s->seq++);
                unlink(path);
                addr_unix(a, path);
                snprintf(l, sizeof(l), "unix://%s", path);
                snprintf(lsoc, sizeof(lsoc), "UNIX-LISTEN:%s", path);
                const char *sp = ((struct sockaddr_un *)&s->sink.ss)->sun_path;
                snprintf(r, sizeof(r), "unix://%s", sp);
                snprintf(rsoc, sizeof(rsoc), "UNIX-CONNECT:%s", sp);
        } else {
                port = k == K_SPLICE ? 0 : free_port();
                addr_tcp(a, port);
                int sp = ntohs(((struct sockaddr_in *)&s->sink.ss)->sin_port);
                snprintf(l, sizeof(l), "tcp://127.0.0.1:%d", port);
                snprintf(lsoc, sizeof(lsoc), "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", port);
                snprintf(r, sizeof(r), "tcp://127.0.0.1:%d", sp);
                snprintf(rsoc, sizeof(rsoc), "TCP:127.0.0.1:%d", sp);
        }
        uri[0] = 0;
        switch (k) {
        case K_CAT: {
                char *argv[] = { (char *)s->cat, "-l", l, r, NULL };
                relay_exec(argv);
                break;
        }
        case K_SOCAT: {
                char *argv[] = { "socat", lsoc, rsoc, NULL };
                relay_exec(argv);
                break;
        }
        case K_SOCAT_B: {
                char *argv[] = { "socat", "-b", "131072", lsoc, rsoc, NULL };
                relay_exec(argv);
                break;
        }
        case K_SPLICE: splice_start(a, &s->sink); break;
        case K_CAT_TLS: {
                char tl[600];
                snprintf(tl, sizeof(tl), "tls+tcp://127.0.0.1:%d?cert=%s&key=%s", port, s->cert,
                         s->key);
                char *argv[] = { (char *)s->cat, "-l", tl, r, NULL };
                relay_exec(argv);
                break;
        }
        case K_SOCAT_TLS: {
                char tl[700];
                snprintf(tl, sizeof(tl),
                         "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s,key=%s,verify=0", port,
                         s->cert, s->key);
                char *argv[] = { "socat", tl, rsoc, NULL };
                relay_exec(argv);
                break;
        }
        }
        if (k == K_CAT_TLS || k == K_SOCAT_TLS)
                snprintf(uri, urisz,
                         "tls+tcp://127.0.0.1:%d?cafile=%s&servername=localhost&session_cache=0&"
                         "ciphersuites=%s&connect_timeout=%d",
                         port, s->cert, TLS_SUITE, IO_TIMEOUT_MS / 1000);
}

static const char *const kind_name[] = { "conduit-cat",  "socat",       "socat -b 131072",
                                         "splice relay", "conduit-cat", "socat OPENSSL" };

/* The source's end: a plain socket, or a TLS flow. */
struct source {
        int fd;
        conduit_flow *f;
};

/* Connects to the relay just started, retrying while it is not listening
 * yet (bounded); false if it exited (the caller starts another). */
static bool source_connect(enum kind k, const struct addr *a, const char *uri, struct source *src)
{
        double deadline = bench_now() + START_TIMEOUT_MS / 1000.0;
        src->fd = -1;
        src->f = NULL;
        for (;;) {
                int err;
                if (uri[0]) {
                        err = conduit_connect(NULL, uri, &src->f);
                        if (err == 0)
                                return true;
                } else {
                        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (fd < 0)
                                bench_die("socket", -errno);
                        set_timeouts(fd); /* bounds connect too */
                        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
                                src->fd = fd;
                                return true;
                        }
                        err = -errno;
                        close(fd);
                }
                if (err != -ECONNREFUSED && err != -ENOENT && err != -EINTR)
                        bench_die("connect to the relay", err);
                int st;
                if (relay_gone(&st)) {
                        if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
                                bench_die(k == K_CAT || k == K_CAT_TLS ? "exec conduit-cat"
                                                                       : "exec socat",
                                          -ENOEXEC);
                        fprintf(stderr,
                                "conduit-bench: %s exited (%s %d) before accepting; starting it "
                                "again\n",
                                kind_name[k], WIFEXITED(st) ? "status" : "signal",
                                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                        return false;
                }
                if (bench_now() > deadline) {
                        relay_kill();
                        fprintf(stderr,
                                "conduit-bench: %s not listening after %d ms; starting it again\n",
                                kind_name[k], START_TIMEOUT_MS);
                        return false;
                }
                poll(NULL, 0, 2);
        }
}

/* One repetition: MiB/s through a fresh relay of kind k; *cpu: the CPU
 * time the relay process used, in ms per GiB relayed. */
static double transfer(struct setup *s, enum kind k, double *cpu)
{
        struct addr a;
        char uri[600];
        struct source src;
        struct sink sink = { .lfd = s->sink_lfd, .expect = s->total, .buf = s->rbuf };
        /* the sink first: it bounds the relay's start and the transfer */
        if (pthread_create(&sink.thread, NULL, sink_main, &sink) != 0)
                bench_die("pthread_create", -EAGAIN);
        int attempt = 0;
        do {
                if (++attempt > START_ATTEMPTS)
                        bench_die(kind_name[k], -ECONNREFUSED);
                start(s, k, &a, uri, sizeof(uri));
        } while (!source_connect(k, &a, uri, &src));
        int r;
        if (src.f) {
                conduit_flow_set_timeout(src.f, CONDUIT_TIMEOUT_READ, IO_TIMEOUT_MS);
                conduit_flow_set_timeout(src.f, CONDUIT_TIMEOUT_WRITE, IO_TIMEOUT_MS);
                if ((r = conduit_tls_handshake(src.f)) < 0)
                        bench_die("TLS handshake with the relay", r);
                const char *suite = NULL;
                if ((r = conduit_flow_query(src.f, CONDUIT_QUERY_TLS_CIPHER, &suite)) < 0)
                        bench_die("query the TLS cipher", r);
                if (!suite || strcmp(suite, TLS_SUITE) != 0)
                        bench_die(suite ? suite : "no cipher", -EPROTO);
        }

        double t0 = bench_now();
        for (size_t done = 0; done < s->total;) {
                size_t n = s->total - done < CHUNK ? s->total - done : CHUNK;
                ssize_t w =
                        src.f ? conduit_flow_write(src.f, s->wbuf, n) : write(src.fd, s->wbuf, n);
                if (w < 0 && !src.f && errno == EINTR)
                        continue;
                if (w <= 0)
                        bench_die("source: write", src.f ? (int)w : -errno);
                done += (size_t)w;
        }
        r = src.f ? conduit_flow_shutdown(src.f, CONDUIT_SHUT_WR) : shutdown(src.fd, SHUT_WR);
        if (r < 0)
                bench_die("source: shutdown", src.f ? r : -errno);
        pthread_join(sink.thread, NULL);
        double mibs = (double)s->total / (sink.t_eof - t0) / 1048576;

        /* The relay passes the sink's close back: wait for it (bounded by
         * the read timeout), so that it ends cleanly. */
        for (int i = 0; i < 16; i++) {
                ssize_t n = src.f ? conduit_flow_read(src.f, s->rbuf, SINK_BUF)
                                  : read(src.fd, s->rbuf, SINK_BUF);
                if (n <= 0)
                        break;
        }
        if (src.f)
                conduit_flow_free(src.f);
        else
                close(src.fd);
        int st = relay_reap(IO_TIMEOUT_MS);
        if (s->unix_)
                unlink(((struct sockaddr_un *)&a.ss)->sun_path);
        if (st == -1)
                fprintf(stderr, "conduit-bench: %s did not exit: killed\n", kind_name[k]);
        else if (st != 0)
                fprintf(stderr, "conduit-bench: %s ended with %s %d\n", kind_name[k],
                        WIFEXITED(st) ? "status" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        *cpu = relay_cpu * 1000 / ((double)s->total / (1u << 30));
        return mibs;
}

/* Runs the kinds of one transport, rotating their order per repetition,
 * and records conduit-cat (kinds[0]) against each of the others: the
 * throughput, then the CPU time of the relay process. */
static void compare(struct setup *s, const char *name, const enum kind *kinds, int n, int reps)
{
        double v[4][99], cpu[4][99];
        for (int i = 0; i < reps; i++)
                for (int j = 0; j < n; j++) {
                        int kk = (i + j) % n;
                        v[kk][i] = transfer(s, kinds[kk], &cpu[kk][i]);
                }
        char cname[64];
        snprintf(cname, sizeof(cname), "%s CPU", name);
        for (int j = 1; j < n; j++) {
                double c[99];
                memcpy(c, v[0], sizeof(c)); /* bench_median sorts */
                bench_record(name, kind_name[kinds[j]], "MiB/s", true, v[j], c, reps);
        }
        for (int j = 1; j < n; j++) {
                double c[99];
                memcpy(c, cpu[0], sizeof(c));
                bench_record(cname, kind_name[kinds[j]], "ms/GiB", false, cpu[j], c, reps);
        }
}

void bench_relay(const struct bench_opts *o)
{
        static bool registered;
        if (!registered) {
                atexit(at_exit_kill);
                registered = true;
        }
        struct setup s = {
                .cat = o->cat,
                .dir = o->dir,
                .total = o->quick ? 256u << 20 : 1u << 30,
                .wbuf = calloc(1, CHUNK),
                .rbuf = malloc(SINK_BUF),
        };
        if (!s.wbuf || !s.rbuf)
                bench_die("memory", -ENOMEM);
        char cert[300], key[300], path[300];
        snprintf(cert, sizeof(cert), "%s/relay-cert.pem", o->dir);
        snprintf(key, sizeof(key), "%s/relay-key.pem", o->dir);
        bench_make_cert(cert, key, false);
        s.cert = cert;
        s.key = key;

        static const enum kind plain[] = { K_CAT, K_SOCAT, K_SOCAT_B, K_SPLICE };
        static const enum kind tls[] = { K_CAT_TLS, K_SOCAT_TLS };

        addr_tcp(&s.sink, 0);
        s.sink_lfd = listen_on(&s.sink);
        compare(&s, "tcp relay", plain, 4, o->reps);
        compare(&s, "tls relay", tls, 2, o->reps);
        close(s.sink_lfd);

        s.unix_ = true;
        snprintf(path, sizeof(path), "%s/relay-sink.sock", o->dir);
        addr_unix(&s.sink, path);
        s.sink_lfd = listen_on(&s.sink);
        compare(&s, "unix relay", plain, 4, o->reps);
        close(s.sink_lfd);
        unlink(path);

        free(s.wbuf);
        free(s.rbuf);
}
