/* SPDX-License-Identifier: MIT */
/* Listeners: bind any transport, accept flows. */
#include <errno.h>
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
#include "util.h"

struct conduit_listener {
        conduit_ctx *ctx;
        struct conduit__listen_result s;
        int timeout_ms;
        bool nonblocking;
        bool fd_nonblocking; /* the socket's O_NONBLOCK, as last set */
        char *errmsg;
};

static conduit__listen_fn *const listeners[] = {
        [CONDUIT_ENDP_TCP] = conduit__tcp_listen,
        [CONDUIT_ENDP_UNIX] = conduit__unix_listen,
        [CONDUIT_ENDP_FD] = conduit__fd_listen,
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
        if (e->kind == CONDUIT_ENDP_TLS) {
                r = conduit__set_error(CONDUIT_E_UNSUPPORTED,
                                       "this build of libconduit has no tls backend");
                goto out;
        }
        /* A host name listens on the first address it resolves to. */
        if ((r = conduit_resolve_endp(c, e, &list)) < 0)
                goto out;
        const conduit_endp *b = list[0];
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
        char *s = conduit__endp_str(l->s.bound);
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

int conduit_listener_accept(conduit_listener *l, conduit_flow **ret)
{
        if (!l || !ret)
                return -EINVAL;
        /* Blocking without a timeout sleeps in accept4(); otherwise the
         * socket is non-blocking and poll() carries the deadline. */
        bool nb = l->nonblocking || l->timeout_ms >= 0;
        if (nb != l->fd_nonblocking) {
                int r = conduit__set_nonblock(l->s.fd, nb);
                if (r < 0)
                        return set_error(l, r, "fcntl: %s", conduit_strerror(r));
                l->fd_nonblocking = nb;
        }
        int64_t deadline = conduit__deadline(l->timeout_ms);
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
                        if (len > 0)
                                conduit_endp_from_sockaddr((struct sockaddr *)&ss, len, &peer);
                        /* getsockname() would show the /proc detour of a
                         * long path: the local end is the path bound */
                        if (l->s.bound->kind == CONDUIT_ENDP_UNIX)
                                conduit_endp_copy(l->s.bound, &local);
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
                        if (l->nonblocking)
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

const conduit_endp *conduit_listener_endp(const conduit_listener *l)
{
        return l ? l->s.bound : NULL;
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
        else if (l->fd_nonblocking)
                conduit__set_nonblock(l->s.fd, false); /* hand it back as it came */
        if (l->s.unlink_path) {
                /* Remove the socket file only if it is still the one we made. */
                struct stat st;
                if (stat(l->s.unlink_path, &st) == 0 && (uint64_t)st.st_dev == l->s.unlink_dev &&
                    (uint64_t)st.st_ino == l->s.unlink_ino)
                        unlink(l->s.unlink_path);
                free(l->s.unlink_path);
        }
        conduit_endp_free(l->s.bound);
        conduit_ctx_free(l->ctx);
        free(l->errmsg);
        free(l);
        return NULL;
}
