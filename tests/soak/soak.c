/* SPDX-License-Identifier: MIT */
/* conduit-soak: cycles connections through connect, TLS handshake, transfer
 * and close over TCP, Unix sockets and TLS over both, checks every byte, and
 * fails if descriptors or memory grew. Not a test and not in CI: a long run
 * by hand (scripts/soak.sh, one million connections by default).
 *
 *   conduit-soak [--connections N] [--kinds tcp,unix,tls-tcp,tls-unix]
 *                [--report-every N] [--threads N] [--tcp-addrs N]
 *                [--rss-tolerance PCT] [--rss-slack MIB] [--max-errors N]
 *
 * Connection i goes to kind i % (number of kinds). Its client connects with
 * conduit_connect() (TLS: verifying the throwaway certificate with cafile=
 * and servername=localhost; one client context shared by every client
 * thread, so most handshakes resume a session), writes a message of 1 to
 * 64 KiB whose length and bytes follow from i alone, shuts down its write
 * side, reads the echo to EOF, compares every byte and closes. The server
 * (one accept thread per listener, a pool of echo threads) reads to EOF,
 * writes it all back and closes. Every read and write has a 30 s deadline,
 * connects 30 s, handshakes and closes the library's 10 s: nothing hangs.
 *
 * Descriptors (/proc/self/fd) and RSS (VmRSS, VmHWM) are measured after a
 * warm-up (the first 1% of the connections, at least 1000) and at the end,
 * both times with every client idle and every server flow closed. Any
 * failed connection, a descriptor more at the end, or an RSS grown beyond
 * the tolerance makes the exit status 1.
 *
 * TIME_WAIT: the client half-closes first, so its FIN goes first and the
 * client end of every TCP connection spends 60 s in TIME_WAIT (the server,
 * closing second, keeps none); that is the protocol under test, so it
 * stays. A TIME_WAIT entry blocks its 4-tuple, not the port: connect()
 * reuses a local port towards another destination. With one listener the
 * 28,232 ephemeral ports would run out (connect: EADDRNOTAVAIL) above 470
 * connections/s unless net.ipv4.tcp_tw_reuse lets loopback reuse them (2,
 * the default of recent kernels). The soak changes no system setting:
 * each TCP kind listens on --tcp-addrs loopback addresses (127.0.0.1,
 * 127.0.0.2, ...: all of 127/8 is local on Linux) and the clients rotate
 * over them. 16 addresses make 451,712 4-tuples, enough for 7,500
 * connections/s without any reuse, and more than the kernel keeps in
 * TIME_WAIT at once anyway (net.ipv4.tcp_max_tw_buckets, 131,072 or
 * 262,144 by default; beyond it a closing socket skips TIME_WAIT), so with
 * the connections spread evenly no address runs out at any rate. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench/bench.h"
#include "conduit/conduit.h"

#define MAX_MSG        65536 /* bytes: the longest message */
#define IO_TIMEOUT_MS  30000 /* each read and write, and connects */
#define ACCEPT_POLL_MS 200   /* how often an accept thread looks for the end */
#define MAX_ADDRS      64
#define MAX_THREADS    64
#define SHOWN_ERRORS   20 /* printed in full; the rest are only counted */

enum kind { K_TCP, K_UNIX, K_TLS_TCP, K_TLS_UNIX, NKINDS };

static const char *const kind_names[NKINDS] = { "tcp", "unix", "tls-tcp", "tls-unix" };

static bool kind_tls(enum kind k)
{
        return k == K_TLS_TCP || k == K_TLS_UNIX;
}

static bool kind_tcp(enum kind k)
{
        return k == K_TCP || k == K_TLS_TCP;
}

static struct {
        long long connections, report_every, max_errors;
        int threads, tcp_addrs;
        double rss_pct, rss_slack_mib;
        enum kind kinds[NKINDS];
        int nkinds;
} opt = {
        .connections = 1000000,
        .report_every = 100000,
        .max_errors = 100,
        .threads = 4,
        .tcp_addrs = 16,
        /* Some growth is allowed: after the warm-up the heap still settles
         * (glibc keeps freed memory in per-thread arenas, fragmented by
         * messages of every size up to 64 KiB, and returns it to the kernel
         * only now and then), and OpenSSL fills its caches as it goes (the
         * client context's sessions, up to 64, each with the peer's
         * certificate; error and name tables made on first use). A leak of
         * one allocation a connection shows at once: a million connections
         * leaking 64 bytes each is 61 MiB. */
        .rss_pct = 10,
        .rss_slack_mib = 4,
};

struct kind_state {
        bool on;
        int nl; /* listeners: --tcp-addrs for the TCP kinds, 1 for Unix */
        conduit_listener *l[MAX_ADDRS];
        char *uri[MAX_ADDRS]; /* the clients' URI for each listener */
        atomic_llong conns, bytes, errors;
        atomic_llong handshakes, resumed; /* TLS kinds */
};

static struct kind_state ks[NKINDS];
static conduit_ctx *cctx, *sctx; /* clients' and listeners' contexts */
static char scratch[256];

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* bench-cert.c (the certificate maker shared with conduit-bench) reports
 * through this. */
void bench_die(const char *what, int err)
{
        fprintf(stderr, "conduit-soak: %s: %s (%s)\n", what, conduit_strerror(err),
                conduit_ctx_error_message(NULL));
        exit(1);
}

/* ---- errors ------------------------------------------------------------------ */

static atomic_llong nerrors;
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static void stop_taking_work(void);

/* Counts a failure of connection i (-1: the server side, which does not
 * know i) and prints the first few: err is a negative errno or CONDUIT_E_*
 * (0: none), detail the flow's or context's message. */
static void fail(enum kind k, long long i, const char *what, int err, const char *detail, ...)
        CONDUIT_PRINTF(5, 6);
static void fail(enum kind k, long long i, const char *what, int err, const char *detail, ...)
{
        atomic_fetch_add(&ks[k].errors, 1);
        long long n = atomic_fetch_add(&nerrors, 1) + 1;
        if (n <= SHOWN_ERRORS) {
                char msg[512];
                va_list ap;
                va_start(ap, detail);
                vsnprintf(msg, sizeof(msg), detail, ap);
                va_end(ap);
                pthread_mutex_lock(&print_mu);
                if (i >= 0)
                        printf("conduit-soak: ERROR %s connection #%lld: %s", kind_names[k], i,
                               what);
                else
                        printf("conduit-soak: ERROR %s server: %s", kind_names[k], what);
                if (err)
                        printf(": %s", conduit_strerror(err));
                if (*msg)
                        printf(" (%s)", msg);
                printf("\n");
                if (n == SHOWN_ERRORS)
                        printf("conduit-soak: further errors are counted, not shown\n");
                fflush(stdout);
                pthread_mutex_unlock(&print_mu);
        }
        if (n >= opt.max_errors)
                stop_taking_work();
}

/* ---- the messages: length and bytes from the connection index alone ------------ */

static uint64_t splitmix64(uint64_t x)
{
        x += 0x9e3779b97f4a7c15u;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
        return x ^ (x >> 31);
}

static size_t msg_len(long long i)
{
        return 1 + (size_t)(splitmix64((uint64_t)i) % MAX_MSG);
}

static void msg_fill(long long i, unsigned char *buf, size_t len)
{
        uint64_t s = splitmix64((uint64_t)i ^ 0x5deece66du) | 1;
        for (size_t off = 0; off < len; off += 8) {
                /* xorshift64* */
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                uint64_t v = s * 0x2545f4914f6cdd1du;
                size_t n = len - off < 8 ? len - off : 8;
                memcpy(buf + off, &v, n);
        }
}

/* ---- descriptors and memory --------------------------------------------------- */

struct usage {
        int fds;
        long rss_kib, hwm_kib;
};

static void measure(struct usage *u)
{
        *u = (struct usage){ -1, -1, -1 };
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                int n = 0;
                for (struct dirent *e; (e = readdir(d));)
                        n += e->d_name[0] != '.';
                u->fds = n - 1; /* not the one reading the directory */
                closedir(d);
        }
        FILE *f = fopen("/proc/self/status", "r");
        if (f) {
                char line[256];
                while (fgets(line, sizeof(line), f)) {
                        sscanf(line, "VmRSS: %ld", &u->rss_kib);
                        sscanf(line, "VmHWM: %ld", &u->hwm_kib);
                }
                fclose(f);
        }
}

/* ---- the server: accept threads hand flows to echo threads --------------------- */

#define QCAP 256

static struct {
        pthread_mutex_t mu;
        pthread_cond_t nonempty, nonfull;
        struct {
                conduit_flow *f;
                enum kind k;
        } q[QCAP];
        int head, count;
        bool quit;
} sq = { .mu = PTHREAD_MUTEX_INITIALIZER,
         .nonempty = PTHREAD_COND_INITIALIZER,
         .nonfull = PTHREAD_COND_INITIALIZER };

static atomic_int srv_open; /* accepted, not yet closed */
static atomic_bool acceptors_stop;

struct acceptor {
        enum kind k;
        conduit_listener *l;
        pthread_t t;
};

static struct acceptor acceptors[NKINDS * MAX_ADDRS];
static int nacceptors;

static void *acceptor_main(void *arg)
{
        struct acceptor *a = arg;
        /* wakes up now and then to see whether the run is over */
        conduit_listener_set_timeout(a->l, ACCEPT_POLL_MS);
        while (!atomic_load(&acceptors_stop)) {
                conduit_flow *f = NULL;
                int r = conduit_listener_accept(a->l, &f);
                if (r == -ETIMEDOUT)
                        continue;
                if (r < 0) {
                        fail(a->k, -1, "accept", r, "%s", conduit_listener_error_message(a->l));
                        usleep(10000); /* no busy loop on a lasting error */
                        continue;
                }
                atomic_fetch_add(&srv_open, 1);
                pthread_mutex_lock(&sq.mu);
                while (sq.count == QCAP)
                        pthread_cond_wait(&sq.nonfull, &sq.mu);
                int tail = (sq.head + sq.count++) % QCAP;
                sq.q[tail].f = f;
                sq.q[tail].k = a->k;
                pthread_cond_signal(&sq.nonempty);
                pthread_mutex_unlock(&sq.mu);
        }
        return NULL;
}

/* Reads the message to EOF, writes it back, closes. */
static void serve(conduit_flow *f, enum kind k, unsigned char *buf)
{
        conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, IO_TIMEOUT_MS);
        conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_WRITE, IO_TIMEOUT_MS);
        size_t got = 0;
        for (;;) {
                if (got > MAX_MSG) {
                        fail(k, -1, "read", 0, "more than %d bytes", MAX_MSG);
                        conduit_flow_free(f);
                        return;
                }
                ssize_t n = conduit_flow_read(f, buf + got, MAX_MSG + 1 - got);
                if (n == 0)
                        break;
                if (n < 0) {
                        fail(k, -1, "read", (int)n, "%s", conduit_flow_error_message(f));
                        conduit_flow_free(f);
                        return;
                }
                got += (size_t)n;
        }
        if (got == 0) {
                fail(k, -1, "read", 0, "EOF before any byte");
                conduit_flow_free(f);
                return;
        }
        ssize_t w = conduit_flow_write(f, buf, got);
        if (w < 0) {
                fail(k, -1, "write", (int)w, "%s", conduit_flow_error_message(f));
                conduit_flow_free(f);
                return;
        }
        int r = conduit_flow_close(f);
        if (r < 0)
                fail(k, -1, "close", r, "%s", "");
}

static void *server_main(void *arg)
{
        (void)arg;
        unsigned char *buf = malloc(MAX_MSG + 1);
        if (!buf)
                bench_die("memory", -ENOMEM);
        for (;;) {
                pthread_mutex_lock(&sq.mu);
                while (sq.count == 0 && !sq.quit)
                        pthread_cond_wait(&sq.nonempty, &sq.mu);
                if (sq.count == 0) {
                        pthread_mutex_unlock(&sq.mu);
                        break;
                }
                conduit_flow *f = sq.q[sq.head].f;
                enum kind k = sq.q[sq.head].k;
                sq.head = (sq.head + 1) % QCAP;
                sq.count--;
                pthread_cond_signal(&sq.nonfull);
                pthread_mutex_unlock(&sq.mu);
                serve(f, k, buf);
                atomic_fetch_sub(&srv_open, 1);
        }
        free(buf);
        return NULL;
}

/* ---- the clients ---------------------------------------------------------------- */

static struct {
        pthread_mutex_t mu;
        pthread_cond_t work, idle;
        long long next, limit; /* the next index to take; the end of the phase */
        int idle_clients;
        bool stopped; /* too many errors: take no more work */
        bool quit;
} cq = { .mu = PTHREAD_MUTEX_INITIALIZER,
         .work = PTHREAD_COND_INITIALIZER,
         .idle = PTHREAD_COND_INITIALIZER };

static atomic_llong done; /* connections finished, well or not */
static double t_start;

static void stop_taking_work(void)
{
        pthread_mutex_lock(&cq.mu);
        cq.stopped = true;
        if (cq.limit > cq.next)
                cq.limit = cq.next;
        pthread_mutex_unlock(&cq.mu);
}

static void run_one(long long i, unsigned char *out, unsigned char *in)
{
        enum kind k = opt.kinds[i % opt.nkinds];
        struct kind_state *s = &ks[k];
        const char *uri = s->uri[(i / opt.nkinds) % s->nl];
        size_t len = msg_len(i);
        msg_fill(i, out, len);

        conduit_flow *f = NULL;
        int r = conduit_connect(cctx, uri, &f);
        if (r < 0) {
                fail(k, i, "connect", r, "%s", conduit_ctx_error_message(cctx));
                return;
        }
        conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, IO_TIMEOUT_MS);
        conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_WRITE, IO_TIMEOUT_MS);
        if (kind_tls(k)) {
                int resumed = 0;
                atomic_fetch_add(&s->handshakes, 1);
                if (conduit_flow_query(f, CONDUIT_QUERY_TLS_RESUMED, &resumed) == 0 && resumed)
                        atomic_fetch_add(&s->resumed, 1);
        }
        ssize_t n = conduit_flow_write(f, out, len);
        if (n < 0) {
                fail(k, i, "write", (int)n, "%s", conduit_flow_error_message(f));
                conduit_flow_free(f);
                return;
        }
        if ((r = conduit_flow_shutdown(f, CONDUIT_SHUT_WR)) < 0) {
                fail(k, i, "shutdown", r, "%s", conduit_flow_error_message(f));
                conduit_flow_free(f);
                return;
        }
        /* one byte of room more than sent, to see an echo that is too long */
        size_t got = 0;
        while (got <= len) {
                n = conduit_flow_read(f, in + got, len + 1 - got);
                if (n == 0)
                        break;
                if (n < 0) {
                        fail(k, i, "read", (int)n, "%s", conduit_flow_error_message(f));
                        conduit_flow_free(f);
                        return;
                }
                got += (size_t)n;
        }
        if (got != len || memcmp(in, out, len) != 0) {
                size_t d = 0;
                while (d < got && d < len && in[d] == out[d])
                        d++;
                fail(k, i, "echo", 0, "%zu bytes sent, %s%zu back, first difference at byte %zu",
                     len, got > len ? "more than " : "", got, d);
                conduit_flow_free(f);
                return;
        }
        if ((r = conduit_flow_close(f)) < 0) {
                fail(k, i, "close", r, "%s", "");
                return;
        }
        atomic_fetch_add(&s->conns, 1);
        atomic_fetch_add(&s->bytes, (long long)len);
}

static void report(long long n)
{
        static double last_t;
        static long long last_n;
        struct usage u;
        measure(&u);
        double t = now_s();
        pthread_mutex_lock(&print_mu);
        if (last_t == 0)
                last_t = t_start;
        printf("conduit-soak: %lld connections, %.0f/s (%.0f/s since the last line), "
               "fds %d, rss %.1f MiB, hwm %.1f MiB\n",
               n, n / (t - t_start), (n - last_n) / (t - last_t), u.fds, u.rss_kib / 1024.0,
               u.hwm_kib / 1024.0);
        fflush(stdout);
        last_t = t;
        last_n = n;
        pthread_mutex_unlock(&print_mu);
}

static void *client_main(void *arg)
{
        (void)arg;
        unsigned char *out = malloc(MAX_MSG), *in = malloc(MAX_MSG + 1);
        if (!out || !in)
                bench_die("memory", -ENOMEM);
        for (;;) {
                pthread_mutex_lock(&cq.mu);
                while (!cq.quit && cq.next >= cq.limit) {
                        cq.idle_clients++;
                        pthread_cond_signal(&cq.idle);
                        pthread_cond_wait(&cq.work, &cq.mu);
                        cq.idle_clients--;
                }
                if (cq.quit) {
                        pthread_mutex_unlock(&cq.mu);
                        break;
                }
                long long i = cq.next++;
                pthread_mutex_unlock(&cq.mu);
                run_one(i, out, in);
                long long n = atomic_fetch_add(&done, 1) + 1;
                if (n % opt.report_every == 0)
                        report(n);
        }
        free(out);
        free(in);
        return NULL;
}

/* Runs connections up to index limit (exclusive) and returns once every
 * client is idle and every server flow closed. */
static void run_until(long long limit)
{
        pthread_mutex_lock(&cq.mu);
        if (!cq.stopped)
                cq.limit = limit;
        pthread_cond_broadcast(&cq.work);
        while (cq.idle_clients < opt.threads || cq.next < cq.limit)
                pthread_cond_wait(&cq.idle, &cq.mu);
        pthread_mutex_unlock(&cq.mu);
        /* The server may still be closing its side, and a TLS listener
         * drops the handshakes of failed clients on its next pass: wait for
         * the server flows, then two passes of every accept thread, then
         * for the server flows again. */
        for (int round = 0; round < 2; round++) {
                for (int waited = 0; atomic_load(&srv_open) != 0; waited++) {
                        if (waited == 6000) {
                                printf("conduit-soak: ERROR %d server flows still open after "
                                       "60 s\n",
                                       atomic_load(&srv_open));
                                atomic_fetch_add(&nerrors, 1);
                                return;
                        }
                        usleep(10000);
                }
                if (round == 0)
                        usleep(2 * ACCEPT_POLL_MS * 1000);
        }
}

/* ---- set-up ---------------------------------------------------------------------- */

static void remove_scratch(void)
{
        bench_rmtree(scratch);
}

static char *xprintf(const char *fmt, ...) CONDUIT_PRINTF(1, 2);
static char *xprintf(const char *fmt, ...)
{
        char *s = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                bench_die("memory", -ENOMEM);
        return s;
}

/* One listener per address of kind k (its URI made for the server, its
 * bound port read back), and the clients' URI for each. */
static void setup_kind(enum kind k, const char *cert, const char *key)
{
        struct kind_state *s = &ks[k];
        s->nl = kind_tcp(k) ? opt.tcp_addrs : 1;
        for (int a = 0; a < s->nl; a++) {
                char *luri, host[32];
                snprintf(host, sizeof(host), "127.0.0.%d", a + 1);
                switch (k) {
                case K_TCP: luri = xprintf("tcp://%s:0", host); break;
                case K_UNIX: luri = xprintf("unix://%s/plain.sock", scratch); break;
                case K_TLS_TCP:
                        luri = xprintf("tls+tcp://%s:0?cert=%s&key=%s", host, cert, key);
                        break;
                default:
                        luri = xprintf("tls+unix://%s/tls.sock?cert=%s&key=%s", scratch, cert, key);
                        break;
                }
                int r = conduit_listen(sctx, luri, &s->l[a]);
                if (r < 0) {
                        fprintf(stderr, "conduit-soak: listen %s: %s (%s)\n", luri,
                                conduit_strerror(r), conduit_ctx_error_message(sctx));
                        exit(1);
                }
                free(luri);
                /* TLS: the clients verify the certificate against itself */
                const char *tls = kind_tls(k) ? "tls+" : "";
                char *opts = kind_tls(k) ? xprintf("?cafile=%s&servername=localhost", cert)
                                         : xprintf("%s", "");
                if (kind_tcp(k))
                        s->uri[a] = xprintf("%stcp://%s:%lld%s", tls, host,
                                            conduit_endp_get_port(conduit_listener_endp(s->l[a])),
                                            opts);
                else
                        s->uri[a] = xprintf("%sunix://%s/%s.sock%s", tls, scratch,
                                            kind_tls(k) ? "tls" : "plain", opts);
                free(opts);
                acceptors[nacceptors++] = (struct acceptor){ .k = k, .l = s->l[a] };
        }
}

static void usage(FILE *out)
{
        fprintf(out,
                "usage: conduit-soak [--connections N] [--kinds tcp,unix,tls-tcp,tls-unix]\n"
                "                    [--report-every N] [--threads N] [--tcp-addrs N]\n"
                "                    [--rss-tolerance PCT] [--rss-slack MIB] [--max-errors N]\n"
                "defaults: 1000000 connections round-robin over all four kinds, a line every\n"
                "100000, 4 client and 4 server threads, TCP over 127.0.0.1..127.0.0.16, RSS may\n"
                "grow by 10%% or 4 MiB (the larger), the run stops after 100 errors\n");
}

static bool parse_num(const char *s, double lo, double hi, double *ret)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || v < lo || v > hi)
                return false;
        *ret = v;
        return true;
}

static bool parse_kinds(char *list)
{
        opt.nkinds = 0;
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
                int k = 0;
                while (k < NKINDS && strcmp(t, kind_names[k]) != 0)
                        k++;
                if (k == NKINDS || ks[k].on)
                        return false;
                ks[k].on = true;
                opt.kinds[opt.nkinds++] = (enum kind)k;
        }
        return opt.nkinds > 0;
}

static void parse_args(int argc, char **argv)
{
        bool kinds_given = false;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                double v = 0;
                bool ok = i + 1 < argc;
                if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                        usage(stdout);
                        exit(0);
                } else if (ok && strcmp(a, "--kinds") == 0) {
                        ok = !kinds_given && parse_kinds(argv[++i]);
                        kinds_given = true;
                } else if (ok && strcmp(a, "--connections") == 0) {
                        if ((ok = parse_num(argv[++i], 1, 1e12, &v)))
                                opt.connections = (long long)v;
                } else if (ok && strcmp(a, "--report-every") == 0) {
                        if ((ok = parse_num(argv[++i], 1, 1e12, &v)))
                                opt.report_every = (long long)v;
                } else if (ok && strcmp(a, "--max-errors") == 0) {
                        if ((ok = parse_num(argv[++i], 1, 1e12, &v)))
                                opt.max_errors = (long long)v;
                } else if (ok && strcmp(a, "--threads") == 0) {
                        if ((ok = parse_num(argv[++i], 1, MAX_THREADS, &v)))
                                opt.threads = (int)v;
                } else if (ok && strcmp(a, "--tcp-addrs") == 0) {
                        if ((ok = parse_num(argv[++i], 1, MAX_ADDRS, &v)))
                                opt.tcp_addrs = (int)v;
                } else if (ok && strcmp(a, "--rss-tolerance") == 0) {
                        ok = parse_num(argv[++i], 0, 1000, &opt.rss_pct);
                } else if (ok && strcmp(a, "--rss-slack") == 0) {
                        ok = parse_num(argv[++i], 0, 1e6, &opt.rss_slack_mib);
                } else {
                        ok = false;
                }
                if (!ok) {
                        fprintf(stderr, "conduit-soak: bad or incomplete option: %s\n", a);
                        usage(stderr);
                        exit(2);
                }
        }
        if (!kinds_given)
                for (int k = 0; k < NKINDS; k++) {
                        ks[k].on = true;
                        opt.kinds[opt.nkinds++] = (enum kind)k;
                }
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
        parse_args(argc, argv);
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof(scratch), "%s/conduit-soak-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch))
                bench_die("mkdtemp", -errno);
        atexit(remove_scratch);
        char *cert = xprintf("%s/cert.pem", scratch), *key = xprintf("%s/key.pem", scratch);
        bench_make_cert(cert, key, false);

        int r;
        if ((r = conduit_ctx_new(&cctx)) < 0 || (r = conduit_ctx_new(&sctx)) < 0)
                bench_die("context", r);
        conduit_ctx *both[2] = { cctx, sctx };
        for (int c = 0; c < 2; c++) {
                conduit_ctx_set_timeout(both[c], CONDUIT_TIMEOUT_CONNECT, IO_TIMEOUT_MS);
                conduit_ctx_set_timeout(both[c], CONDUIT_TIMEOUT_READ, IO_TIMEOUT_MS);
                conduit_ctx_set_timeout(both[c], CONDUIT_TIMEOUT_WRITE, IO_TIMEOUT_MS);
        }
        for (int j = 0; j < opt.nkinds; j++)
                setup_kind(opt.kinds[j], cert, key);

        printf("conduit-soak: %lld connections over", opt.connections);
        for (int j = 0; j < opt.nkinds; j++)
                printf(" %s", kind_names[opt.kinds[j]]);
        printf(" (TCP over 127.0.0.1..127.0.0.%d), %d client and %d server threads\n",
               opt.tcp_addrs, opt.threads, opt.threads);
        fflush(stdout);

        pthread_t clients[MAX_THREADS], servers[MAX_THREADS];
        for (int t = 0; t < opt.threads; t++)
                if (pthread_create(&servers[t], NULL, server_main, NULL) != 0 ||
                    pthread_create(&clients[t], NULL, client_main, NULL) != 0)
                        bench_die("pthread_create", -EAGAIN);
        for (int a = 0; a < nacceptors; a++)
                if (pthread_create(&acceptors[a].t, NULL, acceptor_main, &acceptors[a]) != 0)
                        bench_die("pthread_create", -EAGAIN);

        long long warm = opt.connections / 100 < 1000 ? 1000 : opt.connections / 100;
        if (warm > opt.connections / 2)
                warm = opt.connections / 2;
        struct usage start, end;
        measure(&start);
        printf("conduit-soak: before the first connection: fds %d, rss %.1f MiB\n", start.fds,
               start.rss_kib / 1024.0);
        t_start = now_s();
        run_until(warm);
        measure(&start);
        printf("conduit-soak: after the warm-up (%lld connections): fds %d, rss %.1f MiB, "
               "hwm %.1f MiB\n",
               atomic_load(&done), start.fds, start.rss_kib / 1024.0, start.hwm_kib / 1024.0);
        fflush(stdout);
        run_until(opt.connections);
        double elapsed = now_s() - t_start;
        measure(&end);
        long long ran = atomic_load(&done);

        pthread_mutex_lock(&cq.mu);
        cq.quit = true;
        pthread_cond_broadcast(&cq.work);
        pthread_mutex_unlock(&cq.mu);
        for (int t = 0; t < opt.threads; t++)
                pthread_join(clients[t], NULL);
        atomic_store(&acceptors_stop, true);
        for (int a = 0; a < nacceptors; a++)
                pthread_join(acceptors[a].t, NULL);
        pthread_mutex_lock(&sq.mu);
        sq.quit = true;
        pthread_cond_broadcast(&sq.nonempty);
        pthread_mutex_unlock(&sq.mu);
        for (int t = 0; t < opt.threads; t++)
                pthread_join(servers[t], NULL);

        printf("conduit-soak: %lld connections in %.1f s, %.0f/s\n", ran, elapsed, ran / elapsed);
        for (int j = 0; j < opt.nkinds; j++) {
                struct kind_state *s = &ks[opt.kinds[j]];
                printf("  %-8s %9lld ok, %6lld errors, %8.1f MiB each way",
                       kind_names[opt.kinds[j]], atomic_load(&s->conns), atomic_load(&s->errors),
                       atomic_load(&s->bytes) / 1048576.0);
                if (kind_tls(opt.kinds[j]))
                        printf(", %lld of %lld handshakes resumed", atomic_load(&s->resumed),
                               atomic_load(&s->handshakes));
                printf("\n");
        }
        double allowed_kib = start.rss_kib * opt.rss_pct / 100;
        if (allowed_kib < opt.rss_slack_mib * 1024)
                allowed_kib = opt.rss_slack_mib * 1024;
        bool fds_grew = end.fds > start.fds || start.fds < 0;
        bool rss_grew = start.rss_kib < 0 || end.rss_kib - start.rss_kib > allowed_kib;
        printf("conduit-soak: fds %d -> %d%s\n", start.fds, end.fds, fds_grew ? "  GREW" : "");
        printf("conduit-soak: rss %.1f -> %.1f MiB (%+.1f MiB, %.1f MiB allowed)%s, "
               "hwm %.1f MiB\n",
               start.rss_kib / 1024.0, end.rss_kib / 1024.0, (end.rss_kib - start.rss_kib) / 1024.0,
               allowed_kib / 1024, rss_grew ? "  GREW" : "", end.hwm_kib / 1024.0);
        long long errors = atomic_load(&nerrors);
        bool ok = errors == 0 && !fds_grew && !rss_grew && ran == opt.connections;
        printf("conduit-soak: %s (errors: %lld)\n", ok ? "PASS" : "FAIL", errors);

        for (int k = 0; k < NKINDS; k++)
                for (int a = 0; a < ks[k].nl; a++) {
                        conduit_listener_free(ks[k].l[a]);
                        free(ks[k].uri[a]);
                }
        conduit_ctx_free(cctx);
        conduit_ctx_free(sctx);
        free(cert);
        free(key);
        return ok ? 0 : 1;
}
