/* SPDX-License-Identifier: MIT */
/* conduit-bench: libconduit flows against the raw system calls they wrap,
 * measured side by side in one run. Each figure alternates baseline and
 * libconduit for several repetitions and reports both medians and the
 * ratio libconduit/baseline (throughput: higher is better, so a ratio of
 * 1.00 means "costs nothing"; round trip: lower is better).
 *
 *   conduit-bench [--reps N] [--json FILE] [--quick]
 *
 * Cases: bulk throughput over TCP loopback and Unix sockets at write sizes
 * 4 KiB, 64 KiB and 1 MiB; 64-byte ping-pong round trips; connect +
 * accept + close rate. docs/performance.md describes the method. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conduit/conduit.h"

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
        fprintf(stderr, "conduit-bench: %s: %s (%s)\n", what, conduit_strerror(err),
                conduit_ctx_error_message(NULL));
        exit(1);
}

/* A connected pair: the client end and the server end, as libconduit
 * flows over a fresh listener on uri (the raw cases use their fds). */
struct pair {
        conduit_flow *c, *s;
};

static void pair_open(const char *uri, struct pair *p)
{
        conduit_listener *l = NULL;
        int r = conduit_listen(NULL, uri, &l);
        if (r < 0)
                die("listen", r);
        char *bound = NULL;
        if ((r = conduit_endp_format(conduit_listener_endp(l), &bound)) < 0)
                die("format", r);
        if ((r = conduit_connect(NULL, bound, &p->c)) < 0)
                die("connect", r);
        if ((r = conduit_listener_accept(l, &p->s)) < 0)
                die("accept", r);
        free(bound);
        conduit_listener_free(l);
}

static void pair_close(struct pair *p)
{
        conduit_flow_free(p->c);
        conduit_flow_free(p->s);
}

/* ---- bulk throughput ------------------------------------------------------------ */

struct writer {
        conduit_flow *f;
        int fd; /* >= 0: raw write(2) on it instead */
        size_t chunk, total;
        unsigned char *buf;
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        for (size_t done = 0; done < w->total;) {
                size_t n = w->total - done < w->chunk ? w->total - done : w->chunk;
                ssize_t r =
                        w->fd >= 0 ? write(w->fd, w->buf, n) : conduit_flow_write(w->f, w->buf, n);
                if (r <= 0) {
                        fprintf(stderr, "conduit-bench: write failed: %zd\n", r);
                        exit(1);
                }
                done += (size_t)r;
        }
        return NULL;
}

/* Bytes per second moving total bytes in writes (and reads) of chunk. */
static double throughput(struct pair *p, bool raw, size_t chunk, size_t total)
{
        unsigned char *wbuf = calloc(1, chunk), *rbuf = malloc(chunk);
        if (!wbuf || !rbuf)
                die("memory", -ENOMEM);
        struct writer w = { p->c, raw ? conduit_flow_fd(p->c) : -1, chunk, total, wbuf };
        int rfd = raw ? conduit_flow_fd(p->s) : -1;
        pthread_t t;
        double t0 = now_s();
        pthread_create(&t, NULL, writer_main, &w);
        for (size_t got = 0; got < total;) {
                ssize_t r = raw ? read(rfd, rbuf, chunk) : conduit_flow_read(p->s, rbuf, chunk);
                if (r <= 0) {
                        fprintf(stderr, "conduit-bench: read failed: %zd\n", r);
                        exit(1);
                }
                got += (size_t)r;
        }
        pthread_join(t, NULL);
        double dt = now_s() - t0;
        free(wbuf);
        free(rbuf);
        return (double)total / dt;
}

/* ---- 64-byte ping-pong ------------------------------------------------------------ */

struct echo {
        conduit_flow *f;
        int fd;
        int rounds;
};

static ssize_t xfer(conduit_flow *f, int fd, bool wr, unsigned char *buf, size_t n)
{
        size_t done = 0;
        while (done < n) {
                ssize_t r = fd >= 0 ? (wr ? write(fd, buf + done, n - done)
                                          : read(fd, buf + done, n - done))
                                    : (wr ? conduit_flow_write(f, buf + done, n - done)
                                          : conduit_flow_read(f, buf + done, n - done));
                if (r <= 0)
                        return -1;
                done += (size_t)r;
        }
        return (ssize_t)n;
}

static void *echo_main(void *arg)
{
        struct echo *e = arg;
        unsigned char buf[64];
        for (int i = 0; i < e->rounds; i++)
                if (xfer(e->f, e->fd, false, buf, 64) < 0 || xfer(e->f, e->fd, true, buf, 64) < 0)
                        exit(1);
        return NULL;
}

/* Seconds per round trip. */
static double ping_pong(struct pair *p, bool raw, int rounds)
{
        struct echo e = { p->s, raw ? conduit_flow_fd(p->s) : -1, rounds };
        int fd = raw ? conduit_flow_fd(p->c) : -1;
        unsigned char buf[64] = { 0 };
        pthread_t t;
        pthread_create(&t, NULL, echo_main, &e);
        double t0 = now_s();
        for (int i = 0; i < rounds; i++)
                if (xfer(p->c, fd, true, buf, 64) < 0 || xfer(p->c, fd, false, buf, 64) < 0)
                        exit(1);
        double dt = now_s() - t0;
        pthread_join(t, NULL);
        return dt / rounds;
}

/* ---- connection rate -------------------------------------------------------------- */

/* Connections per second: connect, accept, close, n times, one listener. */
static double conn_rate(const char *uri, bool raw, int n)
{
        conduit_listener *l = NULL;
        int r = conduit_listen(NULL, uri, &l);
        if (r < 0)
                die("listen", r);
        char *bound = NULL;
        conduit_endp_format(conduit_listener_endp(l), &bound);
        struct sockaddr_storage ss;
        socklen_t len = 0;
        conduit_endp_to_sockaddr(conduit_listener_endp(l), &ss, &len);
        int lfd = conduit_listener_fd(l);
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
                if (raw) {
                        int c = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (c < 0 || connect(c, (struct sockaddr *)&ss, len) < 0)
                                die("raw connect", -errno);
                        int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (s < 0)
                                die("raw accept", -errno);
                        close(c);
                        close(s);
                } else {
                        conduit_flow *c = NULL, *s = NULL;
                        if ((r = conduit_connect(NULL, bound, &c)) < 0)
                                die("connect", r);
                        if ((r = conduit_listener_accept(l, &s)) < 0)
                                die("accept", r);
                        conduit_flow_free(c);
                        conduit_flow_free(s);
                }
        }
        double dt = now_s() - t0;
        free(bound);
        conduit_listener_free(l);
        return n / dt;
}

/* ---- driver ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
        qsort(v, (size_t)n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct result {
        char name[64];
        const char *unit;
        double base, conduit;
        bool higher_better;
};

static struct result results[32];
static int nresults;

static void record(const char *name, const char *unit, bool higher_better, double *base,
                   double *cond, int reps)
{
        struct result *r = &results[nresults++];
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->unit = unit;
        r->higher_better = higher_better;
        r->base = median(base, reps);
        r->conduit = median(cond, reps);
        printf("%-28s %14.1f %14.1f %-8s %6.3f\n", r->name, r->base, r->conduit, unit,
               r->conduit / r->base);
        fflush(stdout);
}

int main(int argc, char **argv)
{
        int reps = 7;
        bool quick = false;
        const char *json = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
                        reps = atoi(argv[++i]);
                else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
                        json = argv[++i];
                else if (strcmp(argv[i], "--quick") == 0)
                        quick = true;
                else {
                        fprintf(stderr, "usage: %s [--reps N] [--json FILE] [--quick]\n", argv[0]);
                        return 2;
                }
        }
        if (reps < 1 || reps > 99)
                reps = 7;
        if (quick)
                reps = 3;
        char dir[] = "/tmp/conduit-bench-XXXXXX";
        if (!mkdtemp(dir))
                die("mkdtemp", -errno);
        char unix_uri[128];
        snprintf(unix_uri, sizeof(unix_uri), "unix://%s/b.sock", dir);
        const char *names[2] = { "tcp", "unix" };
        const char *uris[2] = { "tcp://127.0.0.1:0", unix_uri };
        size_t sizes[3] = { 4096, 65536, 1048576 };
        size_t total = quick ? 64u << 20 : 512u << 20;
        double b[99], c[99];
        printf("%-28s %14s %14s %-8s %6s\n", "case", "baseline", "libconduit", "unit", "ratio");
        for (int t = 0; t < 2; t++) {
                for (int k = 0; k < 3; k++) {
                        struct pair p;
                        pair_open(uris[t], &p);
                        for (int i = 0; i < reps; i++) {
                                /* alternating, so drift hits both alike */
                                b[i] = throughput(&p, true, sizes[k], total) / 1048576;
                                c[i] = throughput(&p, false, sizes[k], total) / 1048576;
                        }
                        pair_close(&p);
                        char name[64];
                        snprintf(name, sizeof(name), "%s throughput %zuK", names[t],
                                 sizes[k] / 1024);
                        record(name, "MiB/s", true, b, c, reps);
                }
                struct pair p;
                pair_open(uris[t], &p);
                int rounds = quick ? 2000 : 20000;
                for (int i = 0; i < reps; i++) {
                        b[i] = ping_pong(&p, true, rounds) * 1e6;
                        c[i] = ping_pong(&p, false, rounds) * 1e6;
                }
                pair_close(&p);
                char name[64];
                snprintf(name, sizeof(name), "%s ping-pong 64B", names[t]);
                record(name, "us", false, b, c, reps);
                int n = quick ? 500 : 5000;
                for (int i = 0; i < reps; i++) {
                        b[i] = conn_rate(uris[t], true, n);
                        c[i] = conn_rate(uris[t], false, n);
                }
                snprintf(name, sizeof(name), "%s connect+accept+close", names[t]);
                record(name, "conn/s", true, b, c, reps);
        }
        rmdir(dir);
        if (json) {
                FILE *f = fopen(json, "w");
                if (!f)
                        die(json, -errno);
                fprintf(f, "{\"reps\": %d, \"results\": [\n", reps);
                for (int i = 0; i < nresults; i++)
                        fprintf(f,
                                "  {\"case\": \"%s\", \"unit\": \"%s\", \"baseline\": %.3f, "
                                "\"libconduit\": %.3f, \"ratio\": %.4f, \"higher_is_better\": "
                                "%s}%s\n",
                                results[i].name, results[i].unit, results[i].base,
                                results[i].conduit, results[i].conduit / results[i].base,
                                results[i].higher_better ? "true" : "false",
                                i + 1 < nresults ? "," : "");
                fprintf(f, "]}\n");
                fclose(f);
        }
        return 0;
}
