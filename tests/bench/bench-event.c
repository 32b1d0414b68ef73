/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "event": an echo server on one event_base under
 * load from many connections, written three ways and measured side by
 * side:
 *
 *   - the baseline: libevent directly, an evconnlistener and one socket
 *     bufferevent per connection whose read callback moves its input to
 *     its output (evbuffer_add_buffer), freed on EOF once flushed;
 *   - libconduit's watches: conduit_loop_listen() + conduit_watch, the
 *     server of examples/echo-server.c;
 *   - libconduit's bufferevent bridge: conduit_loop_listen() +
 *     conduit_loop_bufferevent(), and then the baseline's bufferevent code.
 *
 * The server runs in the main thread on a fresh event_base each time; the
 * load is a client thread with its own epoll loop over raw non-blocking
 * sockets on TCP loopback. Two loads: request/response rounds (each of
 * 100 connections writes 1 KiB, reads the echo in full, again; round
 * trips per second) and bulk (10 connections stream 64 MiB each through
 * the echo and read it back; MiB/s). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bench.h"
#include "conduit/conduit.h"
#include "conduit/event.h"

/* Every wait of the client, and the server's whole run, is bounded. */
#define CLIENT_WAIT_MS 10000
#define SERVER_LIMIT_S 120

enum server_kind { SERVER_BEV, SERVER_WATCH, SERVER_BRIDGE };

/* ---- the load: a client thread ------------------------------------------------------ */

struct cconn {
        int fd;
        size_t sent, recvd, target;
        unsigned mask; /* registered with epoll */
        bool done;
};

struct load {
        struct sockaddr_storage addr;
        socklen_t addrlen;
        int nconns;
        size_t window;   /* bytes in flight per connection (rounds: the message size) */
        size_t per_conn; /* bytes each connection sends (and gets back) */
        double elapsed;  /* out: seconds of the timed phase */
};

static unsigned char pattern[65536];

static void client_mask(int ep, struct cconn *c, unsigned mask)
{
        if (c->mask == mask)
                return;
        struct epoll_event ev = { .events = mask, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
                bench_die("event client: epoll_ctl", -errno);
        c->mask = mask;
}

/* Writes what the window allows; asks for EPOLLOUT only when the socket
 * refused some of it. */
static void client_write(int ep, struct cconn *c, size_t window)
{
        bool blocked = false;
        while (c->sent < c->target && c->sent - c->recvd < window) {
                size_t n = c->target - c->sent;
                if (n > window - (c->sent - c->recvd))
                        n = window - (c->sent - c->recvd);
                if (n > sizeof(pattern))
                        n = sizeof(pattern);
                ssize_t w = write(c->fd, pattern, n);
                if (w > 0) {
                        c->sent += (size_t)w;
                } else if (w < 0 && errno == EAGAIN) {
                        blocked = true;
                        break;
                } else if (w < 0 && errno != EINTR) {
                        bench_die("event client: write", -errno);
                }
        }
        client_mask(ep, c, EPOLLIN | (blocked ? EPOLLOUT : 0));
}

/* Reads what is owed to it (nothing more: no read that would only say
 * EAGAIN once the echo is complete). Returns true when the connection got
 * its target back. */
static bool client_read(struct cconn *c, unsigned char *buf, size_t len)
{
        while (c->recvd < c->sent) {
                ssize_t r = read(c->fd, buf, len);
                if (r > 0) {
                        c->recvd += (size_t)r;
                        /* the tail: nothing left to send that would carry
                         * our ACKs, and a server's last small segment may
                         * wait for one (Nagle) while we delay it 40 ms:
                         * acknowledge at once, or that stall, not the
                         * server, decides a bulk figure */
                        if (c->sent == c->target && c->recvd < c->target) {
                                int one = 1;
                                setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
                        }
                        if (c->recvd > c->sent)
                                bench_die("event client: more echoed than sent", -EPROTO);
                } else if (r == 0) {
                        bench_die("event client: the server closed early", -ECONNRESET);
                } else if (errno == EAGAIN) {
                        break;
                } else if (errno != EINTR) {
                        bench_die("event client: read", -errno);
                }
        }
        return c->recvd == c->target;
}

static int client_wait(int ep, struct epoll_event *evs, int max)
{
        for (;;) {
                int n = epoll_wait(ep, evs, max, CLIENT_WAIT_MS);
                if (n > 0)
                        return n;
                if (n == 0)
                        bench_die("event client: no progress for 10 s", -ETIMEDOUT);
                if (errno != EINTR)
                        bench_die("event client: epoll_wait", -errno);
        }
}

/* Every connection sends per_conn bytes, window at a time at most, and
 * reads them back. */
static void client_phase(int ep, struct cconn *cs, int nconns, size_t per_conn, size_t window,
                         unsigned char *buf, size_t len)
{
        int left = nconns;
        for (int i = 0; i < nconns; i++) {
                cs[i].sent = cs[i].recvd = 0;
                cs[i].target = per_conn;
                cs[i].done = false;
                client_write(ep, &cs[i], window);
        }
        struct epoll_event evs[128];
        while (left > 0) {
                int n = client_wait(ep, evs, 128);
                for (int k = 0; k < n; k++) {
                        struct cconn *c = evs[k].data.ptr;
                        if (c->done)
                                continue;
                        if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP) &&
                            client_read(c, buf, len)) {
                                c->done = true;
                                left--;
                                client_mask(ep, c, EPOLLIN);
                                continue;
                        }
                        client_write(ep, c, window);
                }
        }
}

static void *client_main(void *arg)
{
        struct load *ld = arg;
        pthread_setname_np(pthread_self(), "bench-client"); /* for profiles */
        size_t len = 65536;
        unsigned char *buf = malloc(len);
        struct cconn *cs = calloc((size_t)ld->nconns, sizeof(*cs));
        int ep = epoll_create1(EPOLL_CLOEXEC);
        if (!buf || !cs)
                bench_die("event client", -ENOMEM);
        if (ep < 0)
                bench_die("event client: epoll_create1", -errno);
        for (int i = 0; i < ld->nconns; i++) {
                struct cconn *c = &cs[i];
                int one = 1;
                c->fd = socket(ld->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&ld->addr, ld->addrlen) < 0)
                        bench_die("event client: connect", -errno);
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                struct timeval tv = { CLIENT_WAIT_MS / 1000, 0 };
                setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                /* a first round, blocking: the server has accepted it */
                unsigned char b = 1;
                errno = 0;
                if (write(c->fd, &b, 1) != 1 || read(c->fd, &b, 1) != 1)
                        bench_die("event client: first round", errno ? -errno : -EPROTO);
                int fl = fcntl(c->fd, F_GETFL);
                if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
                        bench_die("event client: non-blocking", -errno);
                c->mask = EPOLLIN;
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                        bench_die("event client: epoll_ctl", -errno);
        }
        double t0 = bench_now();
        client_phase(ep, cs, ld->nconns, ld->per_conn, ld->window, buf, len);
        ld->elapsed = bench_now() - t0;
        /* the end: half-close, the server echoes the EOF back and closes */
        for (int i = 0; i < ld->nconns; i++) {
                if (shutdown(cs[i].fd, SHUT_WR) < 0)
                        bench_die("event client: shutdown", -errno);
                cs[i].done = false;
        }
        struct epoll_event evs[128];
        for (int left = ld->nconns; left > 0;) {
                int n = client_wait(ep, evs, 128);
                for (int k = 0; k < n; k++) {
                        struct cconn *c = evs[k].data.ptr;
                        if (c->done)
                                continue;
                        ssize_t r = read(c->fd, buf, len);
                        if (r > 0)
                                bench_die("event client: data after the echo", -EPROTO);
                        if (r < 0 && errno != EAGAIN && errno != EINTR)
                                bench_die("event client: read at the end", -errno);
                        if (r == 0) {
                                c->done = true;
                                left--;
                                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                        }
                }
        }
        for (int i = 0; i < ld->nconns; i++)
                close(cs[i].fd);
        close(ep);
        free(cs);
        free(buf);
        return NULL;
}

/* ---- the servers ---------------------------------------------------------------------- */

struct server {
        struct event_base *base;
        conduit_loop *loop;
        int nconns, closed;
};

/* A connection is gone: the last one ends the run. */
static void server_closed_one(struct server *s)
{
        if (++s->closed == s->nconns)
                event_base_loopbreak(s->base);
}

static void on_limit(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what, (void)arg;
        bench_die("event server: the run did not end", -ETIMEDOUT);
}

/* The bufferevent echo: the baseline's code, and the bridge's. */
static void bev_read(struct bufferevent *bev, void *arg)
{
        (void)arg;
        evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void bev_flushed(struct bufferevent *bev, void *arg)
{
        bufferevent_free(bev);
        server_closed_one(arg);
}

static void bev_event(struct bufferevent *bev, short what, void *arg)
{
        if (what & BEV_EVENT_ERROR)
                bench_die("event server: bufferevent error", -EVUTIL_SOCKET_ERROR());
        if (!(what & BEV_EVENT_EOF))
                return;
        /* closing on EOF once flushed (the client half-closes only once it
         * has every byte back, so nothing is in flight by then) */
        bufferevent_disable(bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
                bufferevent_setcb(bev, NULL, bev_flushed, bev_event, arg);
                return;
        }
        bev_flushed(bev, arg);
}

static void bev_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                       void *arg)
{
        (void)l, (void)sa, (void)len;
        struct server *s = arg;
        struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
                bench_die("event server: bufferevent_socket_new", -ENOMEM);
        bufferevent_setcb(bev, bev_read, NULL, bev_event, s);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void bridge_accept(conduit_flow *f, void *arg)
{
        struct server *s = arg;
        struct bufferevent *bev = NULL;
        int r = conduit_loop_bufferevent(s->loop, f, 0, &bev);
        if (r < 0)
                bench_die("event server: conduit_loop_bufferevent", r);
        bufferevent_setcb(bev, bev_read, NULL, bev_event, s);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* The watch echo: examples/echo-server.c's. */
struct wconn {
        struct server *s;
        size_t end, len; /* buf[end - len..end): read, to echo before reading more */
        char buf[65536];
};

static void watch_closed(int err, void *arg)
{
        if (err < 0)
                bench_die("event server: close", err);
        server_closed_one(arg);
}

static void watch_ready(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        struct wconn *c = arg;
        (void)events;
        for (ssize_t i = 0, n = 0; i < 16 && n != -EAGAIN; i++) { /* then others have a turn */
                if (c->len > 0) {
                        if ((n = conduit_flow_write(f, c->buf + c->end - c->len, c->len)) > 0)
                                c->len -= (size_t)n;
                } else if ((n = conduit_flow_read(f, c->buf, sizeof(c->buf))) > 0) {
                        c->end = c->len = (size_t)n;
                }
                if (n < 0 && n != -EAGAIN)
                        bench_die("event server: flow", (int)n);
                if (n == 0) { /* EOF, all echoed: close */
                        struct server *s = c->s;
                        free(c);
                        conduit_watch_close(w, watch_closed, s); /* shuts down, awaits the EOF */
                        return;
                }
        }
        conduit_watch_set(w, c->len > 0 ? CONDUIT_EV_WRITE : CONDUIT_EV_READ);
}

static void watch_accept(conduit_flow *f, void *arg)
{
        struct server *s = arg;
        struct wconn *c = calloc(1, sizeof(*c));
        conduit_watch *w = NULL;
        if (!c)
                bench_die("event server", -ENOMEM);
        c->s = s;
        int r = conduit_loop_watch(s->loop, f, watch_ready, c, &w);
        if (r < 0)
                bench_die("event server: conduit_loop_watch", r);
        conduit_watch_set(w, CONDUIT_EV_READ);
}

/* One run: a fresh event_base, the server of that kind in this thread,
 * the load in another. Returns the timed phase's seconds. */
static double run_once(enum server_kind kind, int nconns, size_t window, size_t per_conn)
{
        struct server s = { .nconns = nconns };
        struct load ld = { .nconns = nconns, .window = window, .per_conn = per_conn };
        struct evconnlistener *el = NULL;
        conduit_loop_listener *cl = NULL;
        if (!(s.base = event_base_new()))
                bench_die("event_base_new", -ENOMEM);
        struct event *limit = evtimer_new(s.base, on_limit, NULL);
        struct timeval tv = { SERVER_LIMIT_S, 0 };
        if (!limit || evtimer_add(limit, &tv) < 0)
                bench_die("event server: timer", -ENOMEM);
        if (kind == SERVER_BEV) {
                struct sockaddr_in sin = { .sin_family = AF_INET,
                                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                el = evconnlistener_new_bind(s.base, bev_accept, &s,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                             (struct sockaddr *)&sin, sizeof(sin));
                ld.addrlen = sizeof(ld.addr);
                if (!el || getsockname(evconnlistener_get_fd(el), (struct sockaddr *)&ld.addr,
                                       &ld.addrlen) < 0)
                        bench_die("event server: evconnlistener_new_bind", -errno);
        } else {
                int r = conduit_loop_new(NULL, s.base, &s.loop);
                if (r < 0)
                        bench_die("conduit_loop_new", r);
                r = conduit_loop_listen(s.loop, "tcp://127.0.0.1:0",
                                        kind == SERVER_WATCH ? watch_accept : bridge_accept, &s,
                                        &cl);
                if (r < 0)
                        bench_die("conduit_loop_listen", r);
                r = conduit_endp_to_sockaddr(conduit_loop_listener_endp(cl), &ld.addr, &ld.addrlen);
                if (r < 0)
                        bench_die("conduit_endp_to_sockaddr", r);
        }
        pthread_t t;
        int r = pthread_create(&t, NULL, client_main, &ld);
        if (r != 0)
                bench_die("pthread_create", -r);
        if (event_base_dispatch(s.base) != 0 || s.closed != nconns)
                bench_die("event server: the loop ended early", -EIO);
        /* bufferevents finish freeing (and close) on the next pass */
        event_base_loop(s.base, EVLOOP_NONBLOCK);
        pthread_join(t, NULL);
        if (el)
                evconnlistener_free(el);
        conduit_loop_listener_free(cl);
        conduit_loop_free(s.loop);
        event_free(limit);
        event_base_free(s.base);
        return ld.elapsed;
}

void bench_event(const struct bench_opts *o)
{
        int reps = o->reps;
        int rounds = o->quick ? 500 : 2000; /* per connection, 100 connections */
        size_t bulk = (o->quick ? 16u : 64u) << 20;
        double b[99], b2[99], w[99], x[99];
        for (int i = 0; i < reps; i++) {
                double n = 100.0 * rounds;
                b[i] = n / run_once(SERVER_BEV, 100, 1024, (size_t)rounds * 1024);
                w[i] = n / run_once(SERVER_WATCH, 100, 1024, (size_t)rounds * 1024);
                x[i] = n / run_once(SERVER_BRIDGE, 100, 1024, (size_t)rounds * 1024);
        }
        memcpy(b2, b, sizeof(double) * (size_t)reps);
        bench_record("event echo 1K x100 (watch)", "bufferevent", "rt/s", true, b, w, reps);
        bench_record("event echo 1K x100 (bridge)", "bufferevent", "rt/s", true, b2, x, reps);
        for (int i = 0; i < reps; i++) {
                double mib = 10.0 * (double)bulk / 1048576;
                b[i] = mib / run_once(SERVER_BEV, 10, bulk, bulk);
                w[i] = mib / run_once(SERVER_WATCH, 10, bulk, bulk);
                x[i] = mib / run_once(SERVER_BRIDGE, 10, bulk, bulk);
        }
        memcpy(b2, b, sizeof(double) * (size_t)reps);
        char name[64];
        snprintf(name, sizeof(name), "event echo bulk %zuM x10 (watch)", bulk >> 20);
        bench_record(name, "bufferevent", "MiB/s", true, b, w, reps);
        snprintf(name, sizeof(name), "event echo bulk %zuM x10 (bridge)", bulk >> 20);
        bench_record(name, "bufferevent", "MiB/s", true, b2, x, reps);
}
