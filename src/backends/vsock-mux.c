/* SPDX-License-Identifier: MIT */
/* Hybrid vsock, as Firecracker and Cloud Hypervisor expose a guest's vsock
 * to the host: a Unix socket on which the host writes "CONNECT <port>\n"
 * and the multiplexer answers "OK <host port>\n" once the guest accepted
 * (or closes the socket when nothing listens on that port). Connections the
 * guest makes to the host arrive on a Unix socket at "<path>_<port>". */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "util.h"

/* The longest reply line we accept, newline included. */
#define LINE_MAX_LEN 64

/* A Unix endp for path (borrowed: do not free its path). */
static conduit_endp unix_endp(const char *path, size_t len)
{
        conduit_endp u;
        memset(&u, 0, sizeof(u));
        u.kind = CONDUIT_ENDP_UNIX;
        u.fd = -1;
        u.path = (char *)path;
        u.path_len = len;
        return u;
}

bool conduit__vsock_mux_reply_ok(const char *line, size_t len)
{
        /* "OK <digits>" (the newline already cut) */
        if (len < 4 || memcmp(line, "OK ", 3) != 0)
                return false;
        for (size_t i = 3; i < len; i++)
                if (line[i] < '0' || line[i] > '9')
                        return false;
        return true;
}

conduit_endp conduit__vsock_mux_unix_endp(const conduit_endp *e)
{
        return unix_endp(e->path, e->path_len);
}

int conduit__vsock_mux_error(const conduit_endp *e, int r, const char *line, size_t len)
{
        char *s = conduit__endp_str(e);
        if (r == CONDUIT_E_PROTOCOL && line)
                conduit__set_error(r, "%s: the multiplexer answered '%.*s', not 'OK <port>'",
                                   s ? s : "?", (int)len, line);
        else
                conduit__set_error(
                        r, "%s: %s", s ? s : "?",
                        r == -ECONNREFUSED ? "connection refused (the multiplexer closed "
                                             "before OK: nothing listens on that port)"
                        : r == -ETIMEDOUT  ? "no answer to CONNECT within the handshake timeout"
                        : r == CONDUIT_E_PROTOCOL ? "the multiplexer's answer is too long"
                                                  : conduit_strerror(r));
        free(s);
        return r;
}

void conduit__vsock_mux_connected(conduit_flow *f, const conduit_endp *e)
{
        /* from now on a stream to the guest's port: the same socket flow,
         * under its own name */
        f->ops = &conduit__vsock_mux_ops;
        conduit_endp *peer;
        if (conduit_endp_copy(e, &peer) == 0)
                conduit__flow_set_endps(f, peer, NULL);
}

int conduit__vsock_mux_strip_ok(int fd, int recv_flags)
{
        char peek[LINE_MAX_LEN];
        ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK | recv_flags);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        const char *nl = memchr(peek, '\n', (size_t)n);
        if (nl && conduit__vsock_mux_reply_ok(peek, (size_t)(nl - peek))) {
                size_t line = (size_t)(nl - peek) + 1;
                if (recv(fd, peek, line, 0) != (ssize_t)line)
                        return -EIO;
        }
        return 0;
}

/* Reads the multiplexer's reply one byte at a time, so that no byte of the
 * stream that follows it is taken. */
static int read_reply(int fd, int64_t deadline, char *line, size_t *len)
{
        size_t n = 0;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int left = conduit__remaining(deadline);
                int pr = deadline >= 0 && left == 0 ? 0 : poll(&p, 1, left);
                if (pr == 0)
                        return -ETIMEDOUT;
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                ssize_t r = recv(fd, line + n, 1, MSG_DONTWAIT);
                if (r == 0)
                        return -ECONNREFUSED; /* closed before OK: nobody listens */
                if (r < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        return errno == ECONNRESET ? -ECONNREFUSED : -errno;
                }
                if (line[n] == '\n') {
                        *len = n;
                        line[n] = '\0';
                        return 0;
                }
                /* room for the newline (cut into the NUL) in line[] */
                if (++n >= LINE_MAX_LEN)
                        return CONDUIT_E_PROTOCOL;
        }
}

int conduit__vsock_mux_connect(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                               conduit_flow **ret)
{
        conduit_endp u = unix_endp(e->path, e->path_len);
        conduit_flow *f = NULL;
        char *s = conduit__endp_str(e);
        int r = conduit__unix_connect(ctx, &u, deadline, &f);
        if (r < 0) {
                /* a copy: the message is formatted into the buffer it quotes */
                char why[512];
                snprintf(why, sizeof(why), "%s", conduit__error_message());
                conduit__set_error(r, "%s: multiplexer socket: %s", s ? s : "?", why);
                free(s);
                return r;
        }
        int fd = conduit_flow_fd(f);
        char cmd[32];
        int n = snprintf(cmd, sizeof(cmd), "CONNECT %u\n", e->port);
        bool lenient = e->opt[CONDUIT__OPT_HANDSHAKE] &&
                       strcmp(e->opt[CONDUIT__OPT_HANDSHAKE], "lenient") == 0;
        if (send(fd, cmd, (size_t)n, MSG_NOSIGNAL) != n) {
                r = errno == EPIPE || errno == ECONNRESET ? -ECONNREFUSED : -errno;
                goto fail;
        }
        if (lenient) {
                /* no waiting for an OK that may never come; one that does
                 * come is dropped by the first read */
                conduit__sock_flow_strip_ok(f);
        } else {
                int64_t hs = conduit__deadline(ctx->timeouts[CONDUIT_TIMEOUT_HANDSHAKE]);
                if (hs < 0 || (deadline >= 0 && deadline < hs))
                        hs = deadline;
                char line[LINE_MAX_LEN];
                size_t len = 0;
                if ((r = read_reply(fd, hs, line, &len)) < 0)
                        goto fail;
                if (!conduit__vsock_mux_reply_ok(line, len)) {
                        r = CONDUIT_E_PROTOCOL;
                        conduit_flow_free(f);
                        free(s);
                        return conduit__vsock_mux_error(e, r, line, len);
                }
        }
        conduit__vsock_mux_connected(f, e);
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "connected to %s", s ? s : "?");
        free(s);
        *ret = f;
        return 0;
fail:
        conduit_flow_free(f);
        free(s);
        return conduit__vsock_mux_error(e, r, NULL, 0);
}

int conduit__vsock_mux_listen(conduit_ctx *ctx, const conduit_endp *e,
                              struct conduit__listen_result *ret)
{
        /* guest-initiated connections arrive on "<path>_<port>" */
        char *path = NULL;
        int n = asprintf(&path, "%.*s_%u", (int)e->path_len, e->path, e->port);
        if (n < 0)
                return -ENOMEM;
        if (n > 4095) {
                free(path);
                return conduit__set_error(-ENAMETOOLONG, "%s_%u is too long", e->path, e->port);
        }
        conduit_endp u = unix_endp(path, (size_t)n);
        u.opt[CONDUIT__OPT_UNLINK] = e->opt[CONDUIT__OPT_UNLINK];
        u.opt[CONDUIT__OPT_MODE] = e->opt[CONDUIT__OPT_MODE];
        int r = conduit__unix_listen(ctx, &u, ret);
        free(path);
        if (r < 0)
                return r;
        conduit_endp *bound;
        if (conduit_endp_copy(e, &bound) < 0) {
                /* the caller frees nothing on failure */
                close(ret->fd);
                if (ret->unlink_path)
                        unlink(ret->unlink_path);
                free(ret->unlink_path);
                conduit_endp_free(ret->bound);
                return -ENOMEM;
        }
        conduit_endp_free(ret->bound);
        ret->bound = bound;
        ret->ops = &conduit__vsock_mux_ops;
        return 0;
}
