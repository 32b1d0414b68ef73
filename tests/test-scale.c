/* SPDX-License-Identifier: MIT */
/* Scale: 10,000 flows open at the same time on ONE event_base (the test
 * process, conduit_loop_listen and watches), each exchanging 4 KiB each
 * way, byte-checked, then closed gracefully — over TCP loopback, Unix
 * sockets and TLS over TCP. The clients run in another process (this
 * program again, exec'd with --scale-client: its own event_base,
 * conduit_loop_connect and watches), so that neither process needs much
 * more than 10,000 descriptors. The memory per flow (Pss and RSS growth
 * of the server process) and the times are printed as TAP diagnostics;
 * nothing asserts a timing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "tls-fixtures.h"

#define FLOWS     10000
#define TLS_FLOWS 10000
#define PAYLOAD   4096 /* bytes each way, after a 4-byte flow index */
#define HELLO     4
/* descriptors beyond the flows: listener, epoll, control socket, stdio,
 * Check's files, /proc reads */
#define NOFILE_SLACK 256
/* connects the client keeps in flight (it passes with all 10,000 at once
 * too, but bursts below the listen backlog keep SYN retransmits out of
 * the times) */
#define CONNECT_WINDOW 1000
/* bounds of each phase (seconds): a hang fails, it never blocks CI */
#define ACCEPT_BOUND_S   120
#define EXCHANGE_BOUND_S 120
#define REAP_BOUND_S     10
#define CLIENT_BOUND_S   (ACCEPT_BOUND_S + EXCHANGE_BOUND_S + 10)

#define SALT_UP   0x5ca1e0c11e47ull /* client to server */
#define SALT_DOWN 0x5ca1e5e7e7e7ull /* server to client */

/* ---- shared by both processes ---------------------------------------------------- */

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The byte at offset off of flow's stream in one direction: a different
 * stream for each flow, so data delivered to the wrong flow shows. */
static uint8_t pattern(uint32_t flow, uint64_t off, uint64_t salt)
{
        uint64_t x = ((uint64_t)flow << 32 | (off >> 3)) ^ salt;
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebull;
        x ^= x >> 31;
        return (uint8_t)(x >> ((off & 7) * 8));
}

static void fill_pattern(uint8_t *buf, size_t n, uint32_t flow, uint64_t off, uint64_t salt)
{
        for (size_t i = 0; i < n; i++)
                buf[i] = pattern(flow, off + i, salt);
}

/* The index of the first byte that is not the pattern; n if none. */
static size_t mismatch(const uint8_t *buf, size_t n, uint32_t flow, uint64_t off, uint64_t salt)
{
        size_t i = 0;
        while (i < n && buf[i] == pattern(flow, off + i, salt))
                i++;
        return i;
}

static void note(char *dst, size_t len, int *count, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));
static void note(char *dst, size_t len, int *count, const char *fmt, va_list ap)
{
        if ((*count)++ == 0)
                vsnprintf(dst, len, fmt, ap);
}

/* Makes room for want descriptors: the soft limit up to the hard one, and
 * the hard one too when the process may (root). Returns 0, or -1 with the
 * reason in why: the test then fails, it never runs fewer flows. */
static int ensure_nofile(rlim_t want, char *why, size_t len)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
                snprintf(why, len, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
                return -1;
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
                return 0;
        struct rlimit up = { want, rl.rlim_max };
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
                up.rlim_max = want;
        if (setrlimit(RLIMIT_NOFILE, &up) < 0) {
                snprintf(why, len,
                         "RLIMIT_NOFILE: %llu descriptors are needed, the soft limit is %llu and "
                         "the hard limit %llu; raising %s failed (%s): raise the hard limit "
                         "(ulimit -Hn %llu) or run with CAP_SYS_RESOURCE (root)",
                         (unsigned long long)want, (unsigned long long)rl.rlim_cur,
                         (unsigned long long)rl.rlim_max,
                         up.rlim_max != rl.rlim_max ? "the hard limit" : "the soft limit",
                         strerror(errno), (unsigned long long)want);
                return -1;
        }
        return 0;
}

struct mem {
        long pss_kib;  /* /proc/self/smaps_rollup; -1 if unknown */
        long rss_kib;  /* /proc/self/status VmRSS */
        long peak_kib; /* VmHWM: since mem_reset_peak() */
};

static long field_kib(const char *path, const char *key)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        char line[256];
        long v = -1;
        size_t kl = strlen(key);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, kl) == 0) {
                        v = strtol(line + kl, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static void mem_read(struct mem *m)
{
        m->pss_kib = field_kib("/proc/self/smaps_rollup", "Pss:");
        m->rss_kib = field_kib("/proc/self/status", "VmRSS:");
        m->peak_kib = field_kib("/proc/self/status", "VmHWM:");
}

/* The peak (VmHWM) restarts from the current RSS (Linux >= 4.0). */
static void mem_reset_peak(void)
{
        int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                if (write(fd, "5", 1) < 0) {
                        /* an older kernel: the peak is then the lifetime one */
                }
                close(fd);
        }
}

/* A TAP diagnostic line on stdout, where the test log keeps it, and the
 * same on stderr, which meson test -v shows (it does not show a TAP
 * test's comments). */
static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
        char line[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        printf("# %s\n", line);
        fflush(stdout);
        fprintf(stderr, "# %s\n", line);
}

static double per_flow(long before, long after, int n)
{
        return before < 0 || after < 0 ? -1.0 : (double)(after - before) / n;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        event_base_loopbreak(arg);
}

/* Runs the loop until done(arg) or seconds pass; false on the bound. A
 * persistent tick ends every pass within 50 ms. */
static bool run_until(struct event_base *base, bool (*done)(void *), void *arg, double seconds)
{
        struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, base);
        struct timeval tv = { 0, 50 * 1000 };
        if (!tick || event_add(tick, &tv) < 0) {
                if (tick)
                        event_free(tick);
                return false;
        }
        double end = now_s() + seconds;
        bool ok;
        while (!(ok = done(arg)) && now_s() < end)
                event_base_loop(base, EVLOOP_ONCE);
        event_free(tick);
        return ok;
}

/* tc_fd_count() without Check, for the client process. */
static int fd_count(void)
{
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

/* ---- the client process ------------------------------------------------------------- */

struct cconn {
        struct client *cl;
        conduit_watch *w;
        uint32_t idx;
        uint32_t sent, got;
        bool shut;
};

struct client {
        conduit_loop *loop;
        const char *uri;
        int n;
        int started, connected, finished, ok, failed;
        struct cconn *c;
        int ctl;
        bool ctl_gone;
        double t0;
        struct mem m0;
        char first_error[400];
};

static void client_fail(struct client *cl, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void client_fail(struct client *cl, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        note(cl->first_error, sizeof(cl->first_error), &cl->failed, fmt, ap);
        va_end(ap);
        cl->finished++;
}

static void ctl_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_send(int fd, const char *fmt, ...)
{
        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n > sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        /* one short line on a socket with room: one write */
        if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0) {
                /* the parent is gone; its end of the story */
        }
}

static void cconn_closed(int err, void *arg)
{
        struct cconn *c = arg;
        if (err < 0) {
                client_fail(c->cl, "flow %u: close: %s", c->idx, conduit_strerror(err));
                return;
        }
        c->cl->ok++;
        c->cl->finished++;
}

/* Sends the index and the payload, shuts the write side down, checks what
 * comes back up to the EOF, then closes. */
static void cconn_cb(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)events;
        struct cconn *c = arg;
        struct client *cl = c->cl;
        uint8_t buf[HELLO + PAYLOAD];
        while (c->sent < sizeof(buf)) {
                buf[0] = (uint8_t)c->idx;
                buf[1] = (uint8_t)(c->idx >> 8);
                buf[2] = (uint8_t)(c->idx >> 16);
                buf[3] = (uint8_t)(c->idx >> 24);
                fill_pattern(buf + HELLO, PAYLOAD, c->idx, 0, SALT_UP);
                ssize_t n = conduit_flow_write(f, buf + c->sent, sizeof(buf) - c->sent);
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        client_fail(cl, "flow %u: write: %s (%s)", c->idx, conduit_strerror((int)n),
                                    conduit_flow_error_message(f));
                        goto drop;
                }
                c->sent += (uint32_t)n;
        }
        if (c->sent == sizeof(buf) && !c->shut) {
                int r = conduit_flow_shutdown(f, CONDUIT_SHUT_WR);
                if (r == 0) {
                        c->shut = true;
                } else if (r != -EAGAIN) {
                        client_fail(cl, "flow %u: shutdown: %s (%s)", c->idx, conduit_strerror(r),
                                    conduit_flow_error_message(f));
                        goto drop;
                }
        }
        for (;;) {
                ssize_t n = conduit_flow_read(f, buf, sizeof(buf));
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        client_fail(cl, "flow %u: read: %s (%s)", c->idx, conduit_strerror((int)n),
                                    conduit_flow_error_message(f));
                        goto drop;
                }
                if (n == 0) {
                        if (c->got != PAYLOAD || !c->shut) {
                                client_fail(cl, "flow %u: EOF after %u of %d bytes", c->idx, c->got,
                                            PAYLOAD);
                                goto drop;
                        }
                        c->w = NULL;
                        conduit_watch_close(w, cconn_closed, c);
                        return;
                }
                if (c->got + (size_t)n > PAYLOAD) {
                        client_fail(cl, "flow %u: more than %d bytes", c->idx, PAYLOAD);
                        goto drop;
                }
                size_t bad = mismatch(buf, (size_t)n, c->idx, c->got, SALT_DOWN);
                if (bad < (size_t)n) {
                        client_fail(cl, "flow %u: wrong byte at offset %zu", c->idx, c->got + bad);
                        goto drop;
                }
                c->got += (uint32_t)n;
        }
        conduit_watch_set(w, CONDUIT_EV_READ | (c->shut ? 0 : CONDUIT_EV_WRITE));
        return;
drop:
        conduit_watch_free(w);
        c->w = NULL;
}

static void client_next(struct client *cl);

static void client_connected(conduit_flow *f, int err, void *arg)
{
        struct cconn *c = arg;
        struct client *cl = c->cl;
        if (err < 0) {
                client_fail(cl, "flow %u: connect: %s (%s)", c->idx, conduit_strerror(err),
                            conduit_ctx_error_message(NULL));
        } else {
                int r = conduit_loop_watch(cl->loop, f, cconn_cb, c, &c->w);
                if (r < 0) {
                        conduit_flow_free(f);
                        client_fail(cl, "flow %u: watch: %s", c->idx, conduit_strerror(r));
                } else {
                        conduit_watch_set(c->w, CONDUIT_EV_READ | CONDUIT_EV_WRITE);
                        if (++cl->connected == cl->n) {
                                struct mem m;
                                mem_read(&m);
                                ctl_send(cl->ctl, "connected %.3f %.2f %.2f", now_s() - cl->t0,
                                         per_flow(cl->m0.pss_kib, m.pss_kib, cl->n),
                                         per_flow(cl->m0.rss_kib, m.rss_kib, cl->n));
                        }
                }
        }
        client_next(cl);
}

/* Starts the next connect (the next but one if that fails at once). */
static void client_next(struct client *cl)
{
        while (cl->started < cl->n) {
                struct cconn *c = &cl->c[cl->started++];
                int r = conduit_loop_connect(cl->loop, cl->uri, client_connected, c, NULL);
                if (r == 0)
                        return;
                client_fail(cl, "flow %u: connect: %s (%s)", c->idx, conduit_strerror(r),
                            conduit_ctx_error_message(NULL));
        }
}

static void client_ctl(evutil_socket_t fd, short what, void *arg)
{
        (void)what;
        struct client *cl = arg;
        char buf[64];
        ssize_t n = recv((int)fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                cl->ctl_gone = true;
}

static bool client_done(void *arg)
{
        struct client *cl = arg;
        return cl->finished == cl->n || cl->ctl_gone;
}

/* --scale-client URI N CTL-FD: N flows to URI, CONNECT_WINDOW connects in
 * flight; reports "connected ..." once all are open and "done ..." at the
 * end on the control socket. Its stdout is the parent's stderr. */
static int client_main(int argc, char **argv)
{
        if (argc != 5)
                return 2;
        struct client cl = { .uri = argv[2], .n = atoi(argv[3]), .ctl = atoi(argv[4]) };
        if (cl.n <= 0)
                return 2;
        int fds = fd_count();
        signal(SIGPIPE, SIG_IGN);
        char why[512];
        if (ensure_nofile((rlim_t)cl.n + NOFILE_SLACK, why, sizeof(why)) < 0) {
                ctl_send(cl.ctl, "done ok=0 failed=%d client: %s", cl.n, why);
                return 3;
        }
        cl.c = calloc((size_t)cl.n, sizeof(*cl.c));
        struct event_base *base = event_base_new();
        if (!cl.c || !base || conduit_loop_new(NULL, base, &cl.loop) < 0) {
                ctl_send(cl.ctl, "done ok=0 failed=%d client: out of memory", cl.n);
                return 3;
        }
        struct event *ctl_ev = event_new(base, cl.ctl, EV_READ | EV_PERSIST, client_ctl, &cl);
        event_add(ctl_ev, NULL);
        mem_read(&cl.m0);
        cl.t0 = now_s();
        for (int i = 0; i < cl.n; i++) {
                cl.c[i].cl = &cl;
                cl.c[i].idx = (uint32_t)i;
        }
        for (int i = 0; i < CONNECT_WINDOW && i < cl.n; i++)
                client_next(&cl);
        bool finished = run_until(base, client_done, &cl, CLIENT_BOUND_S) && !cl.ctl_gone;
        double t = now_s() - cl.t0;
        if (!finished && !cl.failed)
                snprintf(cl.first_error, sizeof(cl.first_error),
                         "client: %d started, %d connected, %d of %d finished after %.1f s%s",
                         cl.started, cl.connected, cl.finished, cl.n, t,
                         cl.ctl_gone ? " (the test went away)" : "");
        for (int i = 0; i < cl.n; i++)
                conduit_watch_free(cl.c[i].w);
        event_free(ctl_ev);
        conduit_loop_free(cl.loop);
        event_base_free(base);
        free(cl.c);
        int left = fd_count();
        if (left != fds && cl.ok == cl.n) {
                cl.ok = 0;
                snprintf(cl.first_error, sizeof(cl.first_error),
                         "client: %d descriptors open at the end, %d at the start", left, fds);
        }
        ctl_send(cl.ctl, "done ok=%d failed=%d %.3f %s", cl.ok, cl.n - cl.ok, t, cl.first_error);
        close(cl.ctl);
        return cl.ok == cl.n ? 0 : 1;
}

/* ---- the server: the test process ----------------------------------------------------- */

struct sconn {
        struct server *s;
        conduit_watch *w;
        uint32_t idx;
        uint32_t got; /* bytes of the hello and the payload */
        uint32_t sent;
        bool eof;
        bool over; /* closed or dropped */
        uint8_t hello[HELLO];
};

struct server {
        conduit_loop *loop;
        conduit_loop_listener *l;
        int n;
        struct sconn **conns; /* in the order accepted */
        uint8_t *seen;        /* by flow index */
        int accepted, open, max_open;
        int closed, failed; /* flows that ended, well or not */
        double t_closed;
        char first_error[400];
};

static void server_fail(struct server *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void server_fail(struct server *s, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        note(s->first_error, sizeof(s->first_error), &s->failed, fmt, ap);
        va_end(ap);
}

static void sconn_over(struct sconn *c)
{
        c->over = true;
        c->s->open--;
}

static void sconn_closed(int err, void *arg)
{
        struct sconn *c = arg;
        struct server *s = c->s;
        sconn_over(c);
        if (err < 0) {
                server_fail(s, "flow %u: close: %s", c->idx, conduit_strerror(err));
                return;
        }
        if (++s->closed == s->n)
                s->t_closed = now_s();
}

/* Takes the hello and the payload (checking every byte), sends the
 * answer as soon as the hello said which flow this is, and closes after
 * the client's EOF and the last byte sent. */
static void sconn_cb(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)events;
        struct sconn *c = arg;
        struct server *s = c->s;
        uint8_t buf[HELLO + PAYLOAD];
        while (!c->eof) {
                ssize_t n = conduit_flow_read(f, buf, sizeof(buf));
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        server_fail(s, "flow %u: read: %s (%s)", c->idx, conduit_strerror((int)n),
                                    conduit_flow_error_message(f));
                        goto drop;
                }
                if (n == 0) {
                        c->eof = true;
                        if (c->got != HELLO + PAYLOAD) {
                                server_fail(s, "flow %u: EOF after %u of %d bytes", c->idx, c->got,
                                            HELLO + PAYLOAD);
                                goto drop;
                        }
                        break;
                }
                const uint8_t *p = buf;
                size_t len = (size_t)n;
                while (len > 0 && c->got < HELLO) {
                        c->hello[c->got++] = *p++;
                        len--;
                        if (c->got < HELLO)
                                continue;
                        c->idx = (uint32_t)c->hello[0] | (uint32_t)c->hello[1] << 8 |
                                 (uint32_t)c->hello[2] << 16 | (uint32_t)c->hello[3] << 24;
                        if (c->idx >= (uint32_t)s->n || s->seen[c->idx]) {
                                server_fail(s,
                                            "a flow says it is flow %u (of %d), twice or not "
                                            "at all",
                                            c->idx, s->n);
                                goto drop;
                        }
                        s->seen[c->idx] = 1;
                }
                uint32_t off = c->got - HELLO;
                if (off + len > PAYLOAD) {
                        server_fail(s, "flow %u: more than %d bytes", c->idx, PAYLOAD);
                        goto drop;
                }
                size_t bad = mismatch(p, len, c->idx, off, SALT_UP);
                if (bad < len) {
                        server_fail(s, "flow %u: wrong byte at offset %zu", c->idx, off + bad);
                        goto drop;
                }
                c->got += (uint32_t)len;
        }
        while (c->got >= HELLO && c->sent < PAYLOAD) {
                /* a retried write offers the same bytes again, as TLS
                 * requires */
                size_t len = PAYLOAD - c->sent;
                fill_pattern(buf, len, c->idx, c->sent, SALT_DOWN);
                ssize_t n = conduit_flow_write(f, buf, len);
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        server_fail(s, "flow %u: write: %s (%s)", c->idx, conduit_strerror((int)n),
                                    conduit_flow_error_message(f));
                        goto drop;
                }
                c->sent += (uint32_t)n;
        }
        if (c->eof && c->sent == PAYLOAD) {
                c->w = NULL;
                conduit_watch_close(w, sconn_closed, c);
                return;
        }
        conduit_watch_set(w, (c->eof ? 0 : CONDUIT_EV_READ) |
                                     (c->got >= HELLO && c->sent < PAYLOAD ? CONDUIT_EV_WRITE : 0));
        return;
drop:
        conduit_watch_free(w);
        c->w = NULL;
        sconn_over(c);
}

/* Accepted flows are only watched, not read, until all n are in: they are
 * then all open at once. */
static void server_accept(conduit_flow *f, void *arg)
{
        struct server *s = arg;
        if (s->accepted == s->n) {
                server_fail(s, "more than %d connections", s->n);
                conduit_flow_free(f);
                return;
        }
        struct sconn *c = calloc(1, sizeof(*c));
        if (!c) {
                server_fail(s, "out of memory");
                conduit_flow_free(f);
                return;
        }
        c->s = s;
        c->idx = UINT32_MAX;
        int r = conduit_loop_watch(s->loop, f, sconn_cb, c, &c->w);
        if (r < 0) {
                server_fail(s, "watch: %s", conduit_strerror(r));
                conduit_flow_free(f);
                free(c);
                return;
        }
        s->conns[s->accepted++] = c;
        if (++s->open > s->max_open)
                s->max_open = s->open;
}

/* ---- the control socket to the client process -------------------------------------- */

struct ctl {
        char buf[2048];
        size_t len;
        bool gone;
        char connected[256]; /* the client's "connected" line */
        char done[1024];     /* its "done" line */
};

static void ctl_read(evutil_socket_t fd, short what, void *arg)
{
        (void)what;
        struct ctl *c = arg;
        ssize_t n = recv((int)fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                c->gone = true;
                return;
        }
        if (n < 0)
                return;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        char *nl;
        while ((nl = strchr(c->buf, '\n'))) {
                *nl = '\0';
                if (strncmp(c->buf, "connected ", 10) == 0)
                        snprintf(c->connected, sizeof(c->connected), "%s", c->buf + 10);
                else if (strncmp(c->buf, "done ", 5) == 0)
                        snprintf(c->done, sizeof(c->done), "%s", c->buf + 5);
                size_t used = (size_t)(nl + 1 - c->buf);
                memmove(c->buf, nl + 1, c->len - used + 1);
                c->len -= used;
        }
        if (c->len == sizeof(c->buf) - 1)
                c->gone = true; /* a line that long is no line of ours */
}

/* The client: this program again (no memory shared with the server, so
 * the server's Pss is its own), with only the control socket as fd 3. */
static pid_t spawn_client(const char *uri, int n, int ctl, char *why, size_t len)
{
        char exe[PATH_MAX];
        ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (l <= 0) {
                snprintf(why, len, "readlink /proc/self/exe: %s", strerror(errno));
                return -1;
        }
        exe[l] = '\0';
        char nbuf[16];
        snprintf(nbuf, sizeof(nbuf), "%d", n);
        char *argv[] = { exe, "--scale-client", (char *)uri, nbuf, "3", NULL };
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                snprintf(why, len, "fork: %s", strerror(errno));
                return -1;
        }
        if (pid == 0) {
                /* never outlive the test, whatever ends it */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                /* stdout is the TAP stream */
                dup2(STDERR_FILENO, STDOUT_FILENO);
                if (ctl == 3)
                        fcntl(3, F_SETFD, 0);
                else if (dup2(ctl, 3) < 0)
                        _exit(127);
                if (close_range(4, ~0u, 0) < 0) {
                        struct rlimit rl;
                        getrlimit(RLIMIT_NOFILE, &rl);
                        for (int fd = 4; fd < (int)rl.rlim_cur && fd < 1 << 20; fd++)
                                close(fd);
                }
                execv(exe, argv);
                _exit(127);
        }
        return pid;
}

/* Waits for the child (bounded), then kills it. Returns its status. */
static int reap(pid_t pid, double seconds, bool *killed)
{
        int status = 0;
        double end = now_s() + seconds;
        *killed = false;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid || (r < 0 && errno != EINTR))
                        return status;
                if (now_s() >= end)
                        break;
                usleep(10 * 1000);
        }
        *killed = true;
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return status;
}

/* ---- the scenario ------------------------------------------------------------------------ */

struct run {
        struct server s;
        struct ctl ctl;
        bool client_ok;
};

static bool all_accepted(void *arg)
{
        struct run *r = arg;
        return r->s.accepted == r->s.n || r->s.failed || r->ctl.gone || r->ctl.done[0];
}

static bool all_closed(void *arg)
{
        struct run *r = arg;
        return (r->s.closed == r->s.n && r->ctl.done[0]) || r->s.failed || r->ctl.gone ||
               (r->ctl.done[0] && !r->client_ok);
}

static void on_client_done(struct run *r)
{
        int ok = -1;
        if (r->ctl.done[0] && sscanf(r->ctl.done, "ok=%d", &ok) == 1)
                r->client_ok = ok == r->s.n;
}

static bool all_closed_check(void *arg)
{
        on_client_done(arg);
        return all_closed(arg);
}

static void scale(const char *name, const char *listen_uri, const char *client_suffix, int n)
{
        char err[1024] = "";
        ck_assert_msg(ensure_nofile((rlim_t)n + NOFILE_SLACK, err, sizeof(err)) == 0, "%s", err);
        int fds = tc_fd_count();
        struct run *r = calloc(1, sizeof(*r));
        ck_assert_ptr_nonnull(r);
        struct server *s = &r->s;
        s->n = n;
        s->conns = calloc((size_t)n, sizeof(*s->conns));
        s->seen = calloc((size_t)n, 1);
        ck_assert(s->conns && s->seen);
        struct event_base *base = event_base_new();
        ck_assert_ptr_nonnull(base);
        tc_ok(conduit_loop_new(NULL, base, &s->loop));
        int lr = conduit_loop_listen(s->loop, listen_uri, server_accept, s, &s->l);
        ck_assert_msg(lr == 0, "listen on %s: %s (%s)", listen_uri, conduit_strerror(lr),
                      conduit_ctx_error_message(NULL));
        char *bound = NULL, *uri = NULL;
        tc_ok(conduit_endp_format(conduit_loop_listener_endp(s->l), &bound));
        ck_assert_int_ge(asprintf(&uri, "%s%s", bound, client_suffix), 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct event *ctl_ev = event_new(base, sv[0], EV_READ | EV_PERSIST, ctl_read, &r->ctl);
        ck_assert_ptr_nonnull(ctl_ev);
        ck_assert_int_eq(event_add(ctl_ev, NULL), 0);

        /* from here to the reaping of the client: no assertion */
        struct mem m0 = { -1, -1, -1 }, m1 = m0, m2 = m0;
        mem_reset_peak();
        mem_read(&m0);
        double t0 = now_s(), t1 = 0, t2 = 0;
        pid_t pid = spawn_client(uri, n, sv[1], err, sizeof(err));
        close(sv[1]);
        if (pid > 0) {
                if (!run_until(base, all_accepted, r, ACCEPT_BOUND_S))
                        snprintf(err, sizeof(err), "%d of %d flows accepted after %d s",
                                 s->accepted, n, ACCEPT_BOUND_S);
                else if (s->accepted == n && !s->failed) {
                        /* every flow is open now: the exchange may start */
                        t1 = now_s();
                        for (int i = 0; i < n; i++)
                                conduit_watch_set(s->conns[i]->w, CONDUIT_EV_READ);
                        /* idle: every flow waits for data, none read yet */
                        mem_read(&m1);
                        if (!run_until(base, all_closed_check, r, EXCHANGE_BOUND_S))
                                snprintf(err, sizeof(err),
                                         "after %d s of exchange: %d of %d flows closed, %d "
                                         "open, client: %.600s",
                                         EXCHANGE_BOUND_S, s->closed, n, s->open,
                                         r->ctl.done[0] ? r->ctl.done : "not done");
                        t2 = s->t_closed;
                        mem_read(&m2);
                }
        }
        /* a client that said it is done exits at once; one that did not
         * is stuck or waits for flows the server gave up */
        bool killed = false, said_done = r->ctl.done[0] != '\0';
        int status = pid > 0 ? reap(pid, said_done ? REAP_BOUND_S : 0, &killed) : 0;
        /* its last words, if it had any */
        if (pid > 0 && !r->ctl.gone)
                ctl_read(sv[0], EV_READ, &r->ctl);
        on_client_done(r);

        const char *lmsg = conduit_loop_listener_error_message(s->l);
        char lerr[400];
        snprintf(lerr, sizeof(lerr), "%s", lmsg);
        event_free(ctl_ev);
        close(sv[0]);
        conduit_loop_listener_free(s->l);
        for (int i = 0; i < s->accepted; i++) {
                conduit_watch_free(s->conns[i]->w);
                free(s->conns[i]);
        }
        conduit_loop_free(s->loop);
        event_base_free(base);

        if (t2 > 0) {
                diag("scale %s: %d flows open at once on one event_base (server: %d accepted, "
                     "at most %d open; each %d B each way, byte-checked)",
                     name, n, s->accepted, s->max_open, PAYLOAD);
                diag("scale %s: server memory per flow, all open and idle: %.2f KiB Pss, "
                     "%.2f KiB RSS; peak RSS growth over the run: %.2f KiB per flow",
                     name, per_flow(m0.pss_kib, m1.pss_kib, n), per_flow(m0.rss_kib, m1.rss_kib, n),
                     per_flow(m0.rss_kib, m2.peak_kib, n));
                double ct = 0, cpss = -1, crss = -1;
                if (sscanf(r->ctl.connected, "%lf %lf %lf", &ct, &cpss, &crss) == 3)
                        diag("scale %s: client process memory per flow, all connected: "
                             "%.2f KiB Pss, %.2f KiB RSS",
                             name, cpss, crss);
                diag("scale %s: time: %.2f s to connect and accept all, %.2f s for the "
                     "exchange and the graceful closes, %.2f s in all",
                     name, t1 - t0, t2 - t1, t2 - t0);
        }
        int failed = s->failed;
        char first[400];
        snprintf(first, sizeof(first), "%s", s->first_error);
        int closed = s->closed, max_open = s->max_open;
        char done[1024];
        snprintf(done, sizeof(done), "%s", r->ctl.done);
        bool client_ok = r->client_ok;
        free(s->conns);
        free(s->seen);
        free(r);
        free(uri);
        free(bound);

        ck_assert_msg(!err[0], "%s: %s", name, err);
        ck_assert_msg(!failed, "%s: %d server-side failures; first: %s", name, failed, first);
        ck_assert_msg(!killed, "%s: the client process did not end by itself (killed); %s", name,
                      said_done ? "it said it was done" : "it never said it was done");
        ck_assert_msg(client_ok && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "%s: client process status %d: %s", name, status, done);
        ck_assert_int_eq(max_open, n);
        ck_assert_int_eq(closed, n);
        ck_assert_msg(lerr[0] == '\0', "%s: the listener dropped a client: %s", name, lerr);
        ck_assert_int_eq(tc_fd_count(), fds);
}

START_TEST(scale_tcp)
{
        scale("tcp", "tcp://127.0.0.1:0", "", FLOWS);
}
END_TEST

START_TEST(scale_unix)
{
        char *dir = tc_tmpdir();
        char *uri = NULL;
        ck_assert_int_ge(asprintf(&uri, "unix://%s/scale.sock", dir), 0);
        scale("unix", uri, "", FLOWS);
        free(uri);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(scale_tls_tcp)
{
        const struct tls_fixtures *fx = tls_fixtures();
        char *uri = NULL, *suffix = NULL;
        ck_assert_int_ge(asprintf(&uri, "tls+tcp://127.0.0.1:0?cert=%s&key=%s", fx->server_cert,
                                  fx->server_key),
                         0);
        ck_assert_int_ge(asprintf(&suffix, "?cafile=%s", fx->ca_cert), 0);
        scale("tls+tcp", uri, suffix, TLS_FLOWS);
        free(suffix);
        free(uri);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("scale");
        TCase *tc = tcase_create("scale");
        /* above the phases' own bounds, which report better */
        tcase_set_timeout(tc, ACCEPT_BOUND_S + EXCHANGE_BOUND_S + REAP_BOUND_S + 60);
        tcase_add_test(tc, scale_tcp);
        tcase_add_test(tc, scale_unix);
        tcase_add_test(tc, scale_tls_tcp);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        /* the client process of the scenario */
        if (argc > 1 && strcmp(argv[1], "--scale-client") == 0)
                return client_main(argc, argv);
        tc_init(argc, argv);
        return tc_run(suite());
}
