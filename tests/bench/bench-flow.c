/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "flow": libconduit flows against the raw system
 * calls they wrap, on the same connected sockets: bulk throughput over TCP
 * loopback and Unix sockets at write sizes 4 KiB, 64 KiB and 1 MiB;
 * 64-byte ping-pong round trips; connect + accept + close rate. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "conduit/conduit.h"

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
                bench_die("listen", r);
        char *bound = NULL;
        if ((r = conduit_endp_format(conduit_listener_endp(l), &bound)) < 0)
                bench_die("format", r);
        if ((r = conduit_connect(NULL, bound, &p->c)) < 0)
                bench_die("connect", r);
        if ((r = conduit_listener_accept(l, &p->s)) < 0)
                bench_die("accept", r);
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
                bench_die("memory", -ENOMEM);
        struct writer w = { p->c, raw ? conduit_flow_fd(p->c) : -1, chunk, total, wbuf };
        int rfd = raw ? conduit_flow_fd(p->s) : -1;
        pthread_t t;
        double t0 = bench_now();
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
        double dt = bench_now() - t0;
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
        double t0 = bench_now();
        for (int i = 0; i < rounds; i++)
                if (xfer(p->c, fd, true, buf, 64) < 0 || xfer(p->c, fd, false, buf, 64) < 0)
                        exit(1);
        double dt = bench_now() - t0;
        pthread_join(t, NULL);
        return dt / rounds;
}

/* ---- connection rate -------------------------------------------------------------- */

enum conn_how {
        CONN_RAW,  /* socket + connect, accept4, close */
        CONN_URI,  /* conduit_connect(URI), conduit_listener_accept, conduit_flow_free */
        CONN_ENDP, /* the same from an endp parsed once: conduit_connect_endp */
};

/* Connections per second: connect, accept, close, n times, one listener. */
static double conn_rate(const char *uri, enum conn_how how, int n)
{
        bool raw = how == CONN_RAW;
        conduit_listener *l = NULL;
        int r = conduit_listen(NULL, uri, &l);
        if (r < 0)
                bench_die("listen", r);
        char *bound = NULL;
        conduit_endp_format(conduit_listener_endp(l), &bound);
        struct sockaddr_storage ss;
        socklen_t len = 0;
        conduit_endp_to_sockaddr(conduit_listener_endp(l), &ss, &len);
        int lfd = conduit_listener_fd(l);
        double t0 = bench_now();
        for (int i = 0; i < n; i++) {
                if (raw) {
                        int c = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (c < 0 || connect(c, (struct sockaddr *)&ss, len) < 0)
                                bench_die("raw connect", -errno);
                        int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (s < 0)
                                bench_die("raw accept", -errno);
                        close(c);
                        close(s);
                } else {
                        conduit_flow *c = NULL, *s = NULL;
                        if ((r = how == CONN_ENDP
                                         ? conduit_connect_endp(NULL, conduit_listener_endp(l), &c)
                                         : conduit_connect(NULL, bound, &c)) < 0)
                                bench_die("connect", r);
                        if ((r = conduit_listener_accept(l, &s)) < 0)
                                bench_die("accept", r);
                        conduit_flow_free(c);
                        conduit_flow_free(s);
                }
        }
        double dt = bench_now() - t0;
        free(bound);
        conduit_listener_free(l);
        return n / dt;
}

void bench_flow(const struct bench_opts *o)
{
        int reps = o->reps;
        bool quick = o->quick;
        char unix_uri[256];
        snprintf(unix_uri, sizeof(unix_uri), "unix://%s/b.sock", o->dir);
        const char *names[2] = { "tcp", "unix" };
        const char *uris[2] = { "tcp://127.0.0.1:0", unix_uri };
        size_t sizes[3] = { 4096, 65536, 1048576 };
        size_t total = quick ? 64u << 20 : 512u << 20;
        double b[99], c[99];
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
                        bench_record(name, "raw", "MiB/s", true, b, c, reps);
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
                bench_record(name, "raw", "us", false, b, c, reps);
                /* Unix connections are cheap: more of them for a stable figure (TCP
                 * leaves each in TIME_WAIT, so it stays at 5000) */
                int n = (quick ? 500 : 5000) * (t == 1 ? 4 : 1);
                for (int i = 0; i < reps; i++) {
                        b[i] = conn_rate(uris[t], CONN_RAW, n);
                        c[i] = conn_rate(uris[t], CONN_URI, n);
                }
                snprintf(name, sizeof(name), "%s connect+accept+close", names[t]);
                bench_record(name, "raw", "conn/s", true, b, c, reps);
                /* what parsing the URI each time costs */
                for (int i = 0; i < reps; i++) {
                        b[i] = conn_rate(uris[t], CONN_RAW, n);
                        c[i] = conn_rate(uris[t], CONN_ENDP, n);
                }
                snprintf(name, sizeof(name), "%s connect_endp+accept+close", names[t]);
                bench_record(name, "raw", "conn/s", true, b, c, reps);
        }
}
