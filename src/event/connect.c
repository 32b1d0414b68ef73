/* SPDX-License-Identifier: MIT */
/* Asynchronous connect on an event_base: evdns resolution, Happy Eyeballs
 * across TCP candidates (others in order), the hybrid-vsock handshake, the
 * TLS handshakes, the connect deadline and retry-until-deadline — the same
 * steps as conduit_connect(), each waiting on events instead of poll(). */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "backends/backends.h"
#include "connect-private.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "event/loop-private.h"
#include "resolver/resolve-private.h"
#include "tls-private.h"
#include "util.h"

/* A Unix socket whose listen queue is full refuses a non-blocking connect
 * with EAGAIN: the attempt tries again after this many ms. */
#define UNIX_BUSY_MS 5

struct attempt {
        conduit_connecting *c;
        size_t idx;       /* candidate */
        int fd;           /* connect in progress; -1 while waiting to retry */
        struct event *ev; /* writability, or the retry timer */
};

/* A lookup's callback may come after its connect was cancelled (evdns
 * cancels asynchronously): it goes to a ticket that outlives the
 * connect. */
struct dns_ticket {
        conduit_connecting *c;
        struct conduit__dns *d;
};

enum phase { PH_RESOLVE, PH_CONNECT, PH_RETRY_WAIT, PH_MUX, PH_TLS, PH_DONE };

struct conduit_connecting {
        struct conduit__loop_obj obj;
        conduit_loop *loop;
        conduit_ctx *ctx;
        conduit_endp *e;
        conduit_connect_cb *cb;
        void *userdata;
        enum phase phase;

        struct evdns_getaddrinfo_request *dns;
        struct dns_ticket *ticket; /* what the lookup's callback gets */
        conduit_endp **list;
        size_t n;
        const conduit_endp **t; /* transports of list */
        bool all_tcp;

        int retry_ms; /* <= 0: no retry */
        int64_t retry_until;
        int backoff;
        int round; /* attempts at the whole list, from 1 */
        int64_t started;

        int64_t deadline; /* of this round; -1 none */
        int timeout_ms;
        struct attempt *att;
        size_t next;    /* candidate to start next */
        size_t running; /* attempts in flight */
        int last_err;
        char failures[1024];
        struct event *he_timer;    /* Happy Eyeballs delay, retry backoff */
        struct event *deadline_ev; /* this round's deadline, or a handshake's */

        conduit_flow *flow; /* connected transport, then its TLS layers */
        size_t winner;
        struct event *io; /* the flow's descriptor during handshakes */
        const conduit_endp *layers[17];
        size_t nlayers; /* TLS layers still to add */
        char line[64];  /* hybrid vsock: the multiplexer's reply so far */
        size_t linelen;

        struct event *done;
        int err;
        char *errmsg;
};

static void connect_next(conduit_connecting *c);
static void round_failed(conduit_connecting *c, int err);

/* ---- life cycle ------------------------------------------------------------------ */

static void stop_attempts(conduit_connecting *c)
{
        for (size_t i = 0; c->att && i < c->n; i++) {
                struct attempt *a = &c->att[i];
                if (a->ev) {
                        event_free(a->ev);
                        a->ev = NULL;
                }
                if (a->fd >= 0) {
                        close(a->fd);
                        a->fd = -1;
                }
        }
        c->running = 0;
        if (c->he_timer)
                event_del(c->he_timer);
}

/* Gives up a lookup in flight: its callback (EVUTIL_EAI_CANCEL) comes
 * later, from the loop, and frees the ticket. */
static void stop_lookup(conduit_connecting *c)
{
        if (!c->ticket)
                return;
        c->ticket->c = NULL;
        c->ticket = NULL;
        if (c->dns)
                evdns_getaddrinfo_cancel(c->dns);
        c->dns = NULL;
}

static void destroy(conduit_connecting *c)
{
        conduit__loop_remove(&c->obj);
        stop_lookup(c);
        stop_attempts(c);
        free(c->att);
        if (c->he_timer)
                event_free(c->he_timer);
        if (c->deadline_ev)
                event_free(c->deadline_ev);
        if (c->io)
                event_free(c->io);
        if (c->done)
                event_free(c->done);
        conduit_flow_free(c->flow);
        free(c->t);
        conduit_endp_list_free(c->list);
        conduit_endp_free(c->e);
        conduit_ctx_free(c->ctx);
        free(c->errmsg);
        free(c);
}

static void destroy_obj(struct conduit__loop_obj *o)
{
        destroy((conduit_connecting *)o);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_connecting *c = arg;
        conduit_connect_cb *cb = c->cb;
        void *ud = c->userdata;
        conduit_flow *f = c->flow;
        int err = c->err;
        char *msg = c->errmsg;
        c->flow = NULL;
        c->errmsg = NULL;
        destroy(c);
        if (err < 0)
                conduit__set_error(err, "%s", msg ? msg : "");
        cb(f, err, ud);
        free(msg);
}

/* The end: the callback runs from the event loop, never from inside the
 * call that got here. */
static void complete(conduit_connecting *c, int err)
{
        if (c->phase == PH_DONE)
                return;
        c->phase = PH_DONE;
        stop_lookup(c);
        stop_attempts(c);
        event_del(c->deadline_ev);
        if (c->io)
                event_del(c->io);
        c->err = err;
        if (err < 0) {
                conduit_flow_free(c->flow);
                c->flow = NULL;
                c->errmsg = strdup(conduit__error_message());
        } else {
                conduit_flow_set_nonblocking(c->flow, false);
        }
        event_active(c->done, 0, 0);
}

/* ---- the handshakes after the transport: hybrid vsock, then TLS --------------- */

static void set_deadline(conduit_connecting *c, int64_t at)
{
        event_del(c->deadline_ev);
        if (at < 0)
                return;
        int left = conduit__remaining(at);
        struct timeval tv = { left / 1000, (left % 1000) * 1000 };
        event_add(c->deadline_ev, &tv);
}

/* The handshake timeout, within the connect deadline. */
static int64_t handshake_deadline(conduit_connecting *c)
{
        int64_t hs = conduit__deadline(c->ctx->timeouts[CONDUIT_TIMEOUT_HANDSHAKE]);
        if (hs < 0 || (c->deadline >= 0 && c->deadline < hs))
                hs = c->deadline;
        return hs;
}

static void wait_io(conduit_connecting *c, int fd, short what, event_callback_fn fn)
{
        if (!c->io)
                c->io = event_new(c->loop->base, fd, what, fn, c);
        else
                event_assign(c->io, c->loop->base, fd, what, fn, c);
        if (!c->io || event_add(c->io, NULL) < 0) {
                conduit__set_error(-ENOMEM, "cannot watch the connection");
                complete(c, -ENOMEM);
        }
}

static void tls_step(evutil_socket_t fd, short what, void *arg);

static void tls_next_layer(conduit_connecting *c)
{
        if (c->nlayers == 0) {
                complete(c, 0);
                return;
        }
        const conduit_endp *layer = c->layers[--c->nlayers];
        conduit_flow *t = NULL;
        int r = conduit__tls_wrap(c->ctx, c->flow, layer, false, &t);
        if (r < 0) {
                complete(c, r);
                return;
        }
        c->flow = t;
        conduit_flow_set_nonblocking(t, true);
        set_deadline(c, handshake_deadline(c));
        tls_step(-1, 0, c);
}

static void tls_step(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_connecting *c = arg;
        int r = conduit__tls_handshake_step(c->flow);
        if (r == 0) {
                tls_next_layer(c);
                return;
        }
        if (r == -EAGAIN) {
                int w = conduit_flow_wants(c->flow);
                int dir = w & CONDUIT_WANT_WRITE ? CONDUIT_WANT_WRITE : CONDUIT_WANT_READ;
                wait_io(c, conduit_flow_poll_fd(c->flow, dir),
                        (short)((w & CONDUIT_WANT_READ ? EV_READ : 0) |
                                (w & CONDUIT_WANT_WRITE ? EV_WRITE : 0)),
                        tls_step);
                return;
        }
        const conduit_endp *layer = c->layers[c->nlayers];
        char *s = conduit__endp_str(layer);
        conduit__set_error(r, "%s: %s", s ? s : "?", conduit_flow_error_message(c->flow));
        free(s);
        complete(c, r);
}

static void start_tls(conduit_connecting *c)
{
        c->phase = PH_TLS;
        c->nlayers = 0;
        for (const conduit_endp *l = c->list[c->winner];
             l->kind == CONDUIT_ENDP_TLS && c->nlayers < CONDUIT__ARRAY_SIZE(c->layers);
             l = l->inner)
                c->layers[c->nlayers++] = l;
        tls_next_layer(c);
}

/* After the transport (and the multiplexer's OK): the TLS layers, if any. */
static void transport_ready(conduit_connecting *c)
{
        const char *max_io = c->t[c->winner]->opt[CONDUIT__OPT_MAX_IO];
        if (max_io)
                conduit_flow_set_max_io(c->flow, strtoul(max_io, NULL, 10));
        char *s = conduit__endp_str(c->t[c->winner]);
        conduit__log(c->ctx, CONDUIT_LOG_DEBUG, "connected to %s", s ? s : "?");
        free(s);
        if (c->list[c->winner]->kind == CONDUIT_ENDP_TLS)
                start_tls(c);
        else
                complete(c, 0);
}

/* line: what the multiplexer answered, NULL if too long or nothing */
static void mux_fail(conduit_connecting *c, int r, const char *line)
{
        conduit__vsock_mux_error(c->t[c->winner], r, line, c->linelen);
        round_failed(c, r);
}

static void mux_read(evutil_socket_t fd, short what, void *arg)
{
        (void)what;
        conduit_connecting *c = arg;
        /* one byte at a time: nothing of the stream after the line is taken */
        for (;;) {
                char ch;
                ssize_t r = recv((int)fd, &ch, 1, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno == ECONNRESET)) {
                        mux_fail(c, -ECONNREFUSED, NULL); /* closed before OK */
                        return;
                }
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        mux_fail(c, -errno, NULL);
                        return;
                }
                if (ch == '\n') {
                        if (!conduit__vsock_mux_reply_ok(c->line, c->linelen)) {
                                mux_fail(c, CONDUIT_E_PROTOCOL, c->line);
                                return;
                        }
                        conduit__vsock_mux_connected(c->flow, c->t[c->winner]);
                        transport_ready(c);
                        return;
                }
                if (c->linelen + 1 >= sizeof(c->line)) {
                        mux_fail(c, CONDUIT_E_PROTOCOL, NULL);
                        return;
                }
                c->line[c->linelen++] = ch;
                c->line[c->linelen] = '\0';
        }
        wait_io(c, (int)fd, EV_READ, mux_read);
}

static void start_mux(conduit_connecting *c)
{
        const conduit_endp *e = c->t[c->winner];
        c->phase = PH_MUX;
        c->linelen = 0;
        c->line[0] = '\0';
        int fd = conduit_flow_fd(c->flow);
        char cmd[32];
        int n = snprintf(cmd, sizeof(cmd), "CONNECT %u\n", e->port);
        /* a fresh socket has room for a line */
        if (send(fd, cmd, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
                mux_fail(c,
                         errno == EPIPE || errno == ECONNRESET ? -ECONNREFUSED
                         : errno                               ? -errno
                                                               : -EIO,
                         NULL);
                return;
        }
        if (e->opt[CONDUIT__OPT_HANDSHAKE] &&
            strcmp(e->opt[CONDUIT__OPT_HANDSHAKE], "lenient") == 0) {
                /* no waiting for an OK that may never come */
                conduit__sock_flow_strip_ok(c->flow);
                conduit__vsock_mux_connected(c->flow, e);
                transport_ready(c);
                return;
        }
        set_deadline(c, handshake_deadline(c));
        mux_read(fd, EV_READ, c);
}

/* ---- transports: one attempt per candidate ------------------------------------- */

/* Adds "endp: why" (why NULL: the error's text) to the round's message. */
static void note_failure(conduit_connecting *c, size_t idx, int err, const char *why)
{
        size_t used = strlen(c->failures);
        c->last_err = err;
        if (used + 1 >= sizeof(c->failures))
                return;
        char *s = conduit__endp_str(c->t[idx]);
        snprintf(c->failures + used, sizeof(c->failures) - used, "%s%s: %s", used ? "; " : "",
                 s ? s : "?", why ? why : conduit_strerror(err));
        free(s);
}

static const conduit_flow_ops *ops_of(const conduit_endp *e)
{
        switch (e->kind) {
        case CONDUIT_ENDP_TCP: return &conduit__tcp_ops;
        case CONDUIT_ENDP_VSOCK: return &conduit__vsock_ops;
        case CONDUIT_ENDP_HYPERV: return &conduit__hyperv_ops;
        default: return &conduit__unix_ops;
        }
}

/* The winner's socket becomes a flow (blocking mode, as connect returns
 * them; handshakes switch it to non-blocking while they run). */
static void attempt_won(conduit_connecting *c, struct attempt *a)
{
        int fd = a->fd;
        a->fd = -1;
        c->winner = a->idx;
        stop_attempts(c);
        const conduit_endp *e = c->t[c->winner];
        conduit_flow *f = NULL;
        int r = conduit__set_nonblock(fd, false);
        if (r < 0 || (r = conduit__sock_flow_new(c->ctx, ops_of(e), fd, true, &f)) < 0) {
                close(fd);
                conduit__set_error(r, "%s", conduit_strerror(r));
                complete(c, r);
                return;
        }
        c->flow = f;
        conduit_endp *peer;
        if (conduit_endp_copy(e, &peer) == 0)
                conduit__flow_set_endps(f, peer, NULL);
        if (e->kind == CONDUIT_ENDP_TCP && (r = conduit__tcp_apply_options(f, e)) < 0) {
                conduit__set_error(r, "cannot apply TCP options: %s",
                                   conduit_flow_error_message(f));
                complete(c, r);
                return;
        }
        if (e->kind == CONDUIT_ENDP_VSOCK_MUX)
                start_mux(c);
        else
                transport_ready(c);
}

static void attempt_failed(conduit_connecting *c, struct attempt *a, int err)
{
        if (a->ev) {
                event_free(a->ev);
                a->ev = NULL;
        }
        if (a->fd >= 0) {
                close(a->fd);
                a->fd = -1;
        }
        c->running--;
        /* a vsock peer with no listener answers with a reset: a refusal */
        const conduit_endp *e = c->t[a->idx];
        if (err == -ECONNRESET && (e->kind == CONDUIT_ENDP_VSOCK || e->kind == CONDUIT_ENDP_HYPERV))
                err = -ECONNREFUSED;
        note_failure(c, a->idx, err, NULL);
        /* a failure lets the next attempt start at once */
        connect_next(c);
}

static void attempt_start(struct attempt *a);

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
        (void)what;
        struct attempt *a = arg;
        if (a->fd < 0) { /* the Unix retry timer */
                attempt_start(a);
                return;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt((int)fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
        if (soerr == 0) {
                attempt_won(a->c, a);
                return;
        }
        attempt_failed(a->c, a, -soerr);
}

/* Starts (or restarts) a non-blocking connect for candidate a->idx. */
static void attempt_start(struct attempt *a)
{
        conduit_connecting *c = a->c;
        const conduit_endp *e = c->t[a->idx];
        struct sockaddr_storage ss;
        socklen_t len = 0;
        int dirfd = -1, r = 0, family = AF_UNSPEC;
        conduit_endp u;
        switch (e->kind) {
        case CONDUIT_ENDP_TCP:
                if (!e->has_addr) {
                        r = conduit__set_error(-EDESTADDRREQ,
                                               "cannot connect to a wildcard address");
                        break;
                }
                r = conduit_endp_to_sockaddr(e, &ss, &len);
                family = ss.ss_family;
                break;
        case CONDUIT_ENDP_UNIX:
                if (!e->abstract && e->path_len == 0) {
                        r = conduit__set_error(-EDESTADDRREQ,
                                               "cannot connect to an unnamed Unix socket");
                        break;
                }
                r = conduit__unix_sockaddr(e, &ss, &len, &dirfd);
                family = AF_UNIX;
                break;
        case CONDUIT_ENDP_VSOCK_MUX:
                u = conduit__vsock_mux_unix_endp(e);
                r = conduit__unix_sockaddr(&u, &ss, &len, &dirfd);
                family = AF_UNIX;
                break;
        case CONDUIT_ENDP_VSOCK:
        case CONDUIT_ENDP_HYPERV: {
                struct sockaddr_vm vm;
                if ((r = conduit__vsock_sockaddr(e, false, &vm)) == 0 &&
                    (r = conduit__vsock_forbidden()) == 0) {
                        memcpy(&ss, &vm, sizeof(vm));
                        len = sizeof(vm);
                        family = AF_VSOCK;
                }
                break;
        }
        default: r = -EINVAL; break;
        }
        int fd = -1;
        if (r == 0) {
                fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        r = -errno;
        }
        if (r == 0 && family == AF_VSOCK && c->deadline >= 0) {
                /* the kernel's connect timer (2 s by default) follows the
                 * deadline */
                int left = conduit__remaining(c->deadline);
                struct timeval tv = { left / 1000, (left % 1000) * 1000 };
                setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv));
        }
        bool done = false, busy = false;
        if (r == 0) {
                if (connect(fd, (struct sockaddr *)&ss, len) == 0)
                        done = true;
                else if (errno == EAGAIN && family == AF_UNIX)
                        busy = true;
                else if (errno != EINPROGRESS && errno != EINTR)
                        r = -errno;
        }
        if (dirfd >= 0)
                close(dirfd);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                a->fd = -1;
                attempt_failed(c, a, r);
                return;
        }
        if (busy) {
                close(fd);
                fd = -1;
        }
        a->fd = fd;
        if (done) {
                attempt_won(c, a);
                return;
        }
        short what = busy ? 0 : EV_WRITE;
        if (!a->ev)
                a->ev = event_new(c->loop->base, fd, what, on_writable, a);
        else
                event_assign(a->ev, c->loop->base, fd, what, on_writable, a);
        struct timeval tv = { 0, UNIX_BUSY_MS * 1000 };
        if (!a->ev || event_add(a->ev, busy ? &tv : NULL) < 0) {
                conduit__set_error(-ENOMEM, "cannot watch the connection");
                complete(c, -ENOMEM);
        }
}

static void on_he_timer(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        connect_next(arg);
}

/* Starts the next candidate when its time has come: TCP candidates race
 * (the next starts after the Happy Eyeballs delay or once one fails),
 * others go one after another. */
static void connect_next(conduit_connecting *c)
{
        if (c->phase != PH_CONNECT)
                return;
        while (c->next < c->n && (c->running == 0 || c->all_tcp)) {
                /* after a failure that rules the rest out */
                if (!c->all_tcp &&
                    (c->last_err == CONDUIT_E_UNSUPPORTED || c->last_err == -ETIMEDOUT))
                        break;
                struct attempt *a = &c->att[c->next];
                a->c = c;
                a->idx = c->next++;
                a->fd = -1;
                char *s = conduit__endp_str(c->t[a->idx]);
                conduit__log(c->ctx, CONDUIT_LOG_DEBUG, "connecting to %s (attempt %zu of %zu)",
                             s ? s : "?", a->idx + 1, c->n);
                free(s);
                const conduit_endp *e = c->t[a->idx];
                if (e->kind == CONDUIT_ENDP_FD) {
                        /* nothing to wait for: the descriptor is there */
                        conduit_flow *f = NULL;
                        int r = conduit__fd_connect(c->ctx, e, -1, &f);
                        if (r == 0) {
                                c->flow = f;
                                c->winner = a->idx;
                                transport_ready(c);
                                return;
                        }
                        note_failure(c, a->idx, r, conduit__error_message());
                        continue;
                }
                if (!conduit__connect_supported(e)) {
                        int r = conduit__connect_unsupported(e);
                        note_failure(c, a->idx, r, conduit__error_message());
                        continue;
                }
                c->running++;
                attempt_start(a); /* may finish, fail (and recurse) or win */
                if (c->phase != PH_CONNECT)
                        return;
                if (c->running > 0 && c->all_tcp && c->next < c->n) {
                        struct timeval tv = { c->ctx->he_delay_ms / 1000,
                                              (c->ctx->he_delay_ms % 1000) * 1000 };
                        event_add(c->he_timer, &tv);
                        return;
                }
        }
        if (c->running == 0 && (c->next >= c->n || !c->all_tcp)) {
                int err = c->last_err ? c->last_err : CONDUIT_E_NOT_FOUND;
                conduit__set_error(err, "%s", c->failures);
                round_failed(c, err);
        }
}

/* ---- rounds, retries, the deadline ------------------------------------------------ */

static void start_round(conduit_connecting *c)
{
        c->round++;
        c->phase = PH_CONNECT;
        c->next = 0;
        c->running = 0;
        c->last_err = 0;
        c->failures[0] = '\0';
        c->timeout_ms = conduit__endp_opt_ms(c->t[0], CONDUIT__OPT_CONNECT_TIMEOUT,
                                             c->ctx->timeouts[CONDUIT_TIMEOUT_CONNECT]);
        c->deadline = conduit__deadline(c->timeout_ms);
        /* the first round's deadline counts from the call: resolution too */
        if (c->round == 1 && c->timeout_ms >= 0)
                c->deadline = c->started + c->timeout_ms;
        if (c->retry_ms > 0 && (c->deadline < 0 || c->retry_until < c->deadline))
                c->deadline = c->retry_until;
        set_deadline(c, c->deadline);
        connect_next(c);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_connecting *c = arg;
        if (conduit__remaining(c->retry_until) == 0) {
                conduit__set_error(-ETIMEDOUT, "not up after %d ms and %d attempts (last: %s)",
                                   c->retry_ms, c->round, c->failures);
                complete(c, -ETIMEDOUT);
                return;
        }
        event_assign(c->he_timer, c->loop->base, -1, 0, on_he_timer, c);
        start_round(c);
}

/* Every candidate failed with err (the detail message set): again after
 * a pause while the peer may still come up, else the end. */
static void round_failed(conduit_connecting *c, int err)
{
        stop_attempts(c);
        conduit_flow_free(c->flow);
        c->flow = NULL;
        if (c->io)
                event_del(c->io);
        event_del(c->deadline_ev);
        if (c->retry_ms <= 0) {
                complete(c, err);
                return;
        }
        int left = conduit__remaining(c->retry_until);
        /* an attempt cut short by the retry deadline after earlier ones
         * found the peer not up: the peer is still not up */
        bool cut = err == -ETIMEDOUT && left == 0 && c->round > 1;
        if (!conduit__connect_retryable(err) && !cut) {
                complete(c, err);
                return;
        }
        snprintf(c->failures, sizeof(c->failures), "%s", conduit__error_message());
        if (left == 0) {
                conduit__set_error(-ETIMEDOUT, "not up after %d ms and %d attempts (last: %s)",
                                   c->retry_ms, c->round, c->failures);
                complete(c, -ETIMEDOUT);
                return;
        }
        int wait = c->backoff < left ? c->backoff : left;
        conduit__log(c->ctx, CONDUIT_LOG_DEBUG, "attempt %d: %s; retrying in %d ms", c->round,
                     conduit_strerror(err), wait);
        c->backoff = c->backoff >= 500 ? 1000 : c->backoff * 2;
        c->phase = PH_RETRY_WAIT;
        event_assign(c->he_timer, c->loop->base, -1, 0, on_retry, c);
        struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
        event_add(c->he_timer, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_connecting *c = arg;
        switch (c->phase) {
        case PH_RESOLVE:
                conduit__set_error(-ETIMEDOUT, "resolving '%s' timed out",
                                   conduit__endp_transport(c->e)->host
                                           ? conduit__endp_transport(c->e)->host
                                           : "?");
                complete(c, -ETIMEDOUT);
                return;
        case PH_CONNECT: {
                char *s = conduit__endp_str(c->t[0]);
                conduit__set_error(-ETIMEDOUT, "connect to %s%s timed out%s%s", s ? s : "?",
                                   c->n > 1 ? " (and other addresses)" : "",
                                   c->failures[0] ? "; " : "", c->failures);
                free(s);
                break;
        }
        case PH_MUX: conduit__vsock_mux_error(c->t[c->winner], -ETIMEDOUT, NULL, 0); break;
        case PH_TLS: {
                char *s = conduit__endp_str(c->layers[c->nlayers]);
                conduit__set_error(-ETIMEDOUT, "%s: TLS handshake timed out", s ? s : "?");
                free(s);
                break;
        }
        default: return;
        }
        round_failed(c, -ETIMEDOUT);
}

/* ---- resolution ------------------------------------------------------------------ */

static void resolved(conduit_connecting *c, int n)
{
        if (n <= 0) {
                complete(c, n < 0 ? n : CONDUIT_E_NOT_FOUND);
                return;
        }
        c->n = (size_t)n;
        c->t = calloc(c->n, sizeof(*c->t));
        c->att = calloc(c->n, sizeof(*c->att));
        if (!c->t || !c->att) {
                conduit__set_error(-ENOMEM, "out of memory");
                complete(c, -ENOMEM);
                return;
        }
        c->all_tcp = true;
        for (size_t i = 0; i < c->n; i++) {
                c->t[i] = conduit__endp_transport(c->list[i]);
                c->att[i].fd = -1;
                c->all_tcp = c->all_tcp && c->t[i]->kind == CONDUIT_ENDP_TCP && c->t[i]->has_addr;
        }
        c->retry_ms = conduit__endp_opt_ms(c->t[0], CONDUIT__OPT_RETRY,
                                           c->ctx->timeouts[CONDUIT_TIMEOUT_RETRY]);
        c->retry_until = c->retry_ms > 0 ? conduit__deadline(c->retry_ms) : -1;
        start_round(c);
}

static void on_dns(int result, struct evutil_addrinfo *res, void *arg)
{
        struct dns_ticket *t = arg;
        conduit_connecting *c = t->c;
        struct conduit__dns *d = t->d;
        free(t);
        conduit__loop_dns_done(d);
        if (!c) {
                if (res)
                        evutil_freeaddrinfo(res);
                return;
        }
        c->ticket = NULL;
        c->dns = NULL;
        int err = 0;
        if (result != 0)
                err = result == EVUTIL_EAI_MEMORY   ? -ENOMEM
                      : result == EVUTIL_EAI_CANCEL ? -ECANCELED
                                                    : CONDUIT_E_NOT_FOUND;
        int n = conduit__resolve_answer(c->ctx, c->e, res, err,
                                        result ? evutil_gai_strerror(result) : NULL, &c->list);
        if (res)
                evutil_freeaddrinfo(res);
        resolved(c, n);
}

int conduit_loop_connect(conduit_loop *loop, const char *uri, conduit_connect_cb *cb,
                         void *userdata, conduit_connecting **ret_handle)
{
        if (!loop || !uri || !cb)
                return conduit__set_error(-EINVAL, "missing argument");
        conduit_endp *e = NULL;
        int r = conduit_ctx_parse(loop->ctx, uri, &e);
        if (r < 0)
                return r;
        conduit_connecting *c = calloc(1, sizeof(*c));
        if (!c) {
                conduit_endp_free(e);
                return -ENOMEM;
        }
        c->loop = loop;
        c->ctx = conduit__ctx_get(loop->ctx);
        c->e = e;
        c->cb = cb;
        c->userdata = userdata;
        c->backoff = 20;
        c->started = conduit__now_ms();
        c->he_timer = evtimer_new(loop->base, on_he_timer, c);
        c->deadline_ev = evtimer_new(loop->base, on_deadline, c);
        c->done = event_new(loop->base, -1, 0, on_done, c);
        if (!c->ctx || !c->he_timer || !c->deadline_ev || !c->done) {
                destroy(c);
                return -ENOMEM;
        }
        conduit__loop_add(loop, &c->obj, destroy_obj);
        if (ret_handle)
                *ret_handle = c;
        char *name = NULL;
        int family = AF_UNSPEC;
        int n = conduit__resolve_probe(c->ctx, e, &c->list, &name, &family);
        if (n != CONDUIT__NEED_DNS) {
                resolved(c, n);
                return 0;
        }
        struct conduit__dns *dns = conduit__loop_dns(loop);
        if (!dns) {
                free(name);
                conduit__set_error(-ENOMEM, "cannot start the DNS resolver");
                complete(c, -ENOMEM);
                return 0;
        }
        conduit__log(c->ctx, CONDUIT_LOG_DEBUG, "resolving '%s' with evdns", name);
        int ms = conduit__endp_opt_ms(conduit__endp_transport(e), CONDUIT__OPT_CONNECT_TIMEOUT,
                                      c->ctx->timeouts[CONDUIT_TIMEOUT_CONNECT]);
        if (ms >= 0)
                set_deadline(c, c->started + ms);
        struct evutil_addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
        /* the answer may come at once (numeric, hosts file): on_dns then
         * runs before this returns, and the request is already gone */
        struct dns_ticket *t = malloc(sizeof(*t));
        if (!t) {
                free(name);
                conduit__set_error(-ENOMEM, "out of memory");
                complete(c, -ENOMEM);
                return 0;
        }
        t->c = c;
        t->d = dns;
        c->ticket = t;
        dns->pending++;
        struct evdns_getaddrinfo_request *req =
                evdns_getaddrinfo(dns->evdns, name, NULL, &hints, on_dns, t);
        if (c->ticket)
                c->dns = req;
        free(name);
        return 0;
}

void conduit_connecting_cancel(conduit_connecting *c)
{
        if (c)
                destroy(c);
}
