/* SPDX-License-Identifier: MIT */
/* Listeners: bind any transport, accept flows. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "listener-private.h"
#include "tls-private.h"
#include "util.h"

/* A TLS handshake in progress inside accept. */
struct pending {
        conduit_flow *f;
        int64_t deadline; /* -1: none */
};

/* Handshakes in flight at once; more clients wait in the kernel backlog. */
#define MAX_PENDING 64

struct conduit_listener {
        conduit_ctx *ctx;
        struct conduit__listen_result s;
        int timeout_ms;
        bool nonblocking;
        bool fd_nonblocking; /* the socket's O_NONBLOCK, as last set (or found) */
        char *errmsg;
        conduit_endp *tls;       /* TLS layers over the transport, or NULL */
        conduit_endp *tls_bound; /* what conduit_listener_endp() shows */
        struct pending pend[MAX_PENDING];
        size_t npend;
        int64_t paused_until; /* EMFILE: the socket rests until then */
};

static conduit__listen_fn *const listeners[] = {
        [CONDUIT_ENDP_TCP] = conduit__tcp_listen,
        [CONDUIT_ENDP_UNIX] = conduit__unix_listen,
        [CONDUIT_ENDP_FD] = conduit__fd_listen,
        [CONDUIT_ENDP_VSOCK] = conduit__vsock_listen,
        [CONDUIT_ENDP_HYPERV] = conduit__vsock_listen,
        [CONDUIT_ENDP_VSOCK_MUX] = conduit__vsock_mux_listen,
};

static int set_error(conduit_listener *l, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int set_error(conduit_listener *l, int err, const char *fmt, ...)
{
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n >= 0) {
                free(l->errmsg);
                l->errmsg = msg;
        }
        return err;
}

/* Keeps the TLS layers of the listen endp, and builds the endp shown to
 * callers: the same layers without options (cert, key and cafile mean
 * something else to a client) over the bound transport. */
static int tls_endps(conduit_listener *l, const conduit_endp *e)
{
        if (conduit_endp_copy(e, &l->tls) < 0 || conduit_endp_copy(e, &l->tls_bound) < 0)
                return -ENOMEM;
        conduit_endp *t = l->tls_bound;
        for (;; t = t->inner) {
                for (int o = 0; o < CONDUIT__OPT_COUNT; o++) {
                        free(t->opt[o]);
                        t->opt[o] = NULL;
                }
                if (t->inner->kind != CONDUIT_ENDP_TLS)
                        break;
        }
        conduit_endp_free(t->inner);
        t->inner = NULL;
        return conduit_endp_copy(l->s.bound, &t->inner) < 0 ? -ENOMEM : 0;
}

int conduit_listen_endp(conduit_ctx *ctx, const conduit_endp *e, conduit_listener **ret)
{
        if (!e || !ret)
                return conduit__set_error(-EINVAL, "no endpoint");
        conduit_ctx *c = conduit__ctx_get(ctx);
        if (!c)
                return -ENOMEM;
        conduit_endp **list = NULL;
        conduit_listener *l = NULL;
        int r;
        /* A host name listens on the first address it resolves to. */
        if ((r = conduit_resolve_endp(c, e, &list)) < 0)
                goto out;
        const conduit_endp *b = conduit__endp_transport(list[0]);
        /* A TLS configuration that cannot work fails now, not per client. */
        for (const conduit_endp *t = list[0]; t->kind == CONDUIT_ENDP_TLS; t = t->inner) {
                struct conduit__tls_config tc;
                char err[512] = "";
                conduit__tls_config(c, t, true, &tc);
                SSL_CTX *sc = conduit__tls_sslctx(c, &tc, err, sizeof(err));
                if (!sc) {
                        r = conduit__set_error(CONDUIT_E_TLS, "%s", err);
                        goto out;
                }
                SSL_CTX_free(sc);
        }
        if ((size_t)b->kind >= CONDUIT__ARRAY_SIZE(listeners) || !listeners[b->kind]) {
                r = conduit__set_error(CONDUIT_E_UNSUPPORTED,
                                       "this build of libconduit cannot listen on %s endpoints",
                                       conduit_endp_kind_name(b->kind));
                goto out;
        }
        if (!(l = calloc(1, sizeof(*l)))) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = listeners[b->kind](c, b, &l->s)) < 0) {
                free(l);
                l = NULL;
                goto out;
        }
        l->ctx = conduit__ctx_ref(c);
        l->timeout_ms = -1;
        if (!l->s.own_fd) {
                int fl = fcntl(l->s.fd, F_GETFL);
                l->fd_nonblocking = fl >= 0 && (fl & O_NONBLOCK);
        }
        if (list[0]->kind == CONDUIT_ENDP_TLS && (r = tls_endps(l, list[0])) < 0) {
                conduit_listener_free(l);
                l = NULL;
                goto out;
        }
        char *s = conduit__endp_str(conduit_listener_endp(l));
        conduit__log(c, CONDUIT_LOG_DEBUG, "listening on %s", s ? s : "?");
        free(s);
        *ret = l;
        r = 0;
out:
        conduit_endp_list_free(list);
        conduit_ctx_free(c);
        return r;
}

int conduit_listen(conduit_ctx *ctx, const char *uri, conduit_listener **ret)
{
        conduit_endp *e = NULL;
        if (!ret)
                return -EINVAL;
        int r = conduit_ctx_parse(ctx, uri, &e);
        if (r < 0)
                return r;
        r = conduit_listen_endp(ctx, e, ret);
        conduit_endp_free(e);
        return r;
}

/* A Unix endp naming path (NULL on ENOMEM). */
static conduit_endp *unix_path_endp(const char *path)
{
        conduit_endp *e = conduit__endp_new(CONDUIT_ENDP_UNIX);
        if (e && !(e->path = strdup(path)))
                e = conduit_endp_free(e);
        if (e)
                e->path_len = strlen(e->path);
        return e;
}

/* Accepts one connection from the socket. wait: block until one comes
 * (bounded by deadline); else return -EAGAIN at once when none is queued. */
static int accept_socket(conduit_listener *l, bool wait, int64_t deadline, conduit_flow **ret)
{
        /* Blocking without a timeout sleeps in accept4(); otherwise the
         * socket is non-blocking and poll() carries the deadline. A
         * borrowed socket (fd:N) may be shared with other processes: its
         * flags stay as they came, and a poll() comes first instead. */
        bool nb = !wait || deadline >= 0;
        if (!l->s.own_fd && nb && !l->fd_nonblocking) {
                struct pollfd p = { .fd = l->s.fd, .events = POLLIN };
                int pr;
                while ((pr = poll(&p, 1, wait ? conduit__remaining(deadline) : 0)) < 0 &&
                       errno == EINTR)
                        ;
                if (pr == 0)
                        return wait ? set_error(l, -ETIMEDOUT, "accept timed out") : -EAGAIN;
        } else if (l->s.own_fd && nb != l->fd_nonblocking) {
                int r = conduit__set_nonblock(l->s.fd, nb);
                if (r < 0)
                        return set_error(l, r, "fcntl: %s", conduit_strerror(r));
                l->fd_nonblocking = nb;
        }
        struct sockaddr_storage ss;
        for (;;) {
                socklen_t len = sizeof(ss);
                int fd = accept4(l->s.fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
                if (fd >= 0) {
                        conduit_flow *f;
                        int r = conduit__sock_flow_new(l->ctx, l->s.ops, fd, true, &f);
                        if (r < 0) {
                                close(fd);
                                return set_error(l, r, "out of memory");
                        }
                        conduit_endp *peer = NULL, *local = NULL;
                        /* A Unix peer is asked for when wanted (getpeername()
                         * answers even after the peer closed; it is mostly
                         * unnamed and rarely asked): one record less per
                         * connection. An IP peer is kept now: a reset
                         * connection no longer tells. */
                        if (len > 0 && l->s.bound->kind != CONDUIT_ENDP_UNIX)
                                conduit__sock_endp(l->s.ops, (struct sockaddr *)&ss, len, &peer);
                        /* getsockname() would show the /proc detour of a
                         * long path: the local end is the path bound (for
                         * hybrid vsock, the Unix socket "<path>_<port>") */
                        if (l->s.bound->kind == CONDUIT_ENDP_UNIX)
                                conduit_endp_copy(l->s.bound, &local);
                        else if (l->s.bound->kind == CONDUIT_ENDP_VSOCK_MUX && l->s.unlink_path)
                                local = unix_path_endp(l->s.unlink_path);
                        conduit__flow_set_endps(f, peer, local);
                        *ret = f;
                        return 0;
                }
                int err = errno;
                /* The connection died in the queue or a signal came: the
                 * next one may be fine. */
                if (err == EINTR || err == ECONNABORTED)
                        continue;
                if (err == EAGAIN || err == EWOULDBLOCK) {
                        if (!wait)
                                return -EAGAIN;
                        struct pollfd p = { .fd = l->s.fd, .events = POLLIN };
                        int left = conduit__remaining(deadline);
                        int pr = left == 0 ? 0 : poll(&p, 1, left);
                        if (pr == 0)
                                return set_error(l, -ETIMEDOUT, "accept timed out");
                        if (pr < 0 && errno != EINTR)
                                return set_error(l, -errno, "poll: %s", conduit_strerror(-errno));
                        continue;
                }
                /* EMFILE/ENFILE: the connection stays queued; retrying now
                 * would spin, so the caller decides when to try again. */
                return set_error(l, -err, "accept: %s", conduit_strerror(-err));
        }
}

static void drop_pending(conduit_listener *l, size_t i, int err, const char *why)
{
        conduit_flow *f = l->pend[i].f;
        char *s = conduit__endp_str(conduit_flow_peer(f->inner ? f->inner : f));
        set_error(l, err, "TLS handshake with %s failed: %s", s ? s : "?", why);
        conduit__log(l->ctx, CONDUIT_LOG_DEBUG, "%s", l->errmsg);
        free(s);
        conduit_flow_free(f);
        l->pend[i] = l->pend[--l->npend];
}

int conduit__listener_wrap_tls(conduit_listener *l, conduit_flow *raw, conduit_flow **ret)
{
        /* innermost layer first; outer handshakes drive inner ones */
        const conduit_endp *layers[17];
        size_t n = 0;
        for (const conduit_endp *t = l->tls; t && t->kind == CONDUIT_ENDP_TLS && n < 17;
             t = t->inner)
                layers[n++] = t;
        conduit_flow *f = raw;
        int r = 0;
        while (r == 0 && n-- > 0) {
                conduit_flow *w = NULL;
                if ((r = conduit__tls_wrap(l->ctx, f, layers[n], true, &w)) == 0)
                        f = w;
        }
        if (r < 0) {
                set_error(l, r, "TLS setup: %s", conduit__error_message());
                conduit_flow_free(f);
                return r;
        }
        *ret = f;
        return 0;
}

/* Takes new connections into the pool and advances every handshake once.
 * Returns 0 with a ready flow in *ret, -EAGAIN if none is ready, or an
 * error of the listening socket (EMFILE with an empty pool). */
static int tls_pass(conduit_listener *l, conduit_flow **ret)
{
        int64_t now = conduit__now_ms();
        while (l->npend < MAX_PENDING && now >= l->paused_until) {
                conduit_flow *raw = NULL, *f = NULL;
                int r = accept_socket(l, false, -1, &raw);
                if (r == -EAGAIN)
                        break;
                if (r == -EMFILE || r == -ENFILE) {
                        if (l->npend == 0)
                                return r;
                        l->paused_until = now + 100;
                        break;
                }
                if (r < 0)
                        return r;
                conduit_flow_set_nonblocking(raw, true);
                if (conduit__listener_wrap_tls(l, raw, &f) < 0)
                        continue;
                l->pend[l->npend++] = (struct pending){
                        f, conduit__deadline(l->ctx->timeouts[CONDUIT_TIMEOUT_HANDSHAKE])
                };
        }
        for (size_t i = 0; i < l->npend; i++) {
                conduit_flow *f = l->pend[i].f;
                int r = conduit__tls_handshake_step(f);
                if (r == 0) {
                        l->pend[i] = l->pend[--l->npend];
                        conduit_flow_set_nonblocking(f, l->nonblocking);
                        *ret = f;
                        return 0;
                }
                if (r != -EAGAIN) {
                        drop_pending(l, i--, r, conduit_flow_error_message(f));
                } else if (l->pend[i].deadline >= 0 && now >= l->pend[i].deadline) {
                        drop_pending(l, i--, -ETIMEDOUT, "no handshake within the timeout");
                }
        }
        return -EAGAIN;
}

static int tls_accept(conduit_listener *l, conduit_flow **ret)
{
        int64_t deadline = conduit__deadline(l->timeout_ms);
        for (;;) {
                int r = tls_pass(l, ret);
                if (r != -EAGAIN || l->nonblocking)
                        return r;
                /* wait for the socket, any handshake, or the next deadline */
                struct pollfd p[MAX_PENDING + 1];
                nfds_t n = 0;
                int64_t now = conduit__now_ms(), until = deadline;
                if (l->npend < MAX_PENDING && now >= l->paused_until)
                        p[n++] = (struct pollfd){ .fd = l->s.fd, .events = POLLIN };
                else if (now < l->paused_until && (until < 0 || l->paused_until < until))
                        until = l->paused_until;
                for (size_t i = 0; i < l->npend; i++) {
                        conduit_flow *f = l->pend[i].f;
                        int w = conduit_flow_wants(f);
                        int fd = conduit_flow_poll_fd(
                                f, w & CONDUIT_WANT_WRITE ? CONDUIT_WANT_WRITE : CONDUIT_WANT_READ);
                        p[n++] = (struct pollfd){
                                .fd = fd,
                                .events = (short)((w & CONDUIT_WANT_READ ? POLLIN : 0) |
                                                  (w & CONDUIT_WANT_WRITE ? POLLOUT : 0))
                        };
                        if (l->pend[i].deadline >= 0 && (until < 0 || l->pend[i].deadline < until))
                                until = l->pend[i].deadline;
                }
                if (deadline >= 0 && now >= deadline)
                        return set_error(l, -ETIMEDOUT, "accept timed out");
                int pr = poll(p, n, conduit__remaining(until));
                if (pr < 0 && errno != EINTR)
                        return set_error(l, -errno, "poll: %s", conduit_strerror(-errno));
        }
}

int conduit__listener_accept_raw(conduit_listener *l, conduit_flow **ret)
{
        return accept_socket(l, false, -1, ret);
}

bool conduit__listener_has_tls(const conduit_listener *l)
{
        return l->tls != NULL;
}

void conduit__listener_note(conduit_listener *l, const char *msg)
{
        set_error(l, 0, "%s", msg);
}

int conduit_listener_accept(conduit_listener *l, conduit_flow **ret)
{
        if (!l || !ret)
                return -EINVAL;
        if (l->tls)
                return tls_accept(l, ret);
        return accept_socket(l, !l->nonblocking, conduit__deadline(l->timeout_ms), ret);
}

const conduit_endp *conduit_listener_endp(const conduit_listener *l)
{
        if (!l)
                return NULL;
        return l->tls_bound ? l->tls_bound : l->s.bound;
}

int conduit_listener_fd(const conduit_listener *l)
{
        return l ? l->s.fd : -1;
}

int conduit_listener_set_nonblocking(conduit_listener *l, bool nonblocking)
{
        if (!l)
                return -EINVAL;
        l->nonblocking = nonblocking;
        return 0;
}

int conduit_listener_set_timeout(conduit_listener *l, int ms)
{
        if (!l)
                return -EINVAL;
        l->timeout_ms = ms < 0 ? -1 : ms;
        return 0;
}

const char *conduit_listener_error_message(const conduit_listener *l)
{
        return l && l->errmsg ? l->errmsg : "";
}

conduit_listener *conduit_listener_free(conduit_listener *l)
{
        if (!l)
                return NULL;
        if (l->s.own_fd)
                close(l->s.fd);
        if (l->s.unlink_path) {
                /* Remove the socket file only if it is still the one we made. */
                struct stat st;
                if (getpid() == l->s.unlink_pid && stat(l->s.unlink_path, &st) == 0 &&
                    (uint64_t)st.st_dev == l->s.unlink_dev &&
                    (uint64_t)st.st_ino == l->s.unlink_ino)
                        unlink(l->s.unlink_path);
                free(l->s.unlink_path);
        }
        for (size_t i = 0; i < l->npend; i++)
                conduit_flow_free(l->pend[i].f);
        conduit_endp_free(l->tls);
        conduit_endp_free(l->tls_bound);
        conduit_endp_free(l->s.bound);
        conduit_ctx_free(l->ctx);
        free(l->errmsg);
        free(l);
        return NULL;
}
