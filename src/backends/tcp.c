/* SPDX-License-Identifier: MIT */
/* TCP: connect (Happy Eyeballs across candidates), listen, options. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

int conduit__tcp_apply_options(conduit_flow *f, const conduit_endp *e)
{
        int r = 0;
        int nodelay = conduit__endp_opt_bool(e, CONDUIT__OPT_NODELAY, -1);
        if (nodelay >= 0 && (r = conduit_flow_set_nodelay(f, nodelay)) < 0)
                return r;
        const char *ka = e->opt[CONDUIT__OPT_KEEPALIVE];
        if (!ka)
                return 0;
        int idle = 0, intvl = 0, cnt = 0;
        if (strcmp(ka, "1") == 0) {
                /* keepalive=1 with the kernel's idle/interval/probes */
                int fd = conduit__flow_transport_fd(f), on = 1;
                if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0)
                        return -errno;
                return 0;
        }
        if (strcmp(ka, "0") != 0 && sscanf(ka, "%d,%d,%d", &idle, &intvl, &cnt) != 3)
                return -EINVAL;
        return conduit_flow_set_keepalive(f, idle, intvl, cnt);
}

struct attempt {
        int fd;
        size_t idx;
};

/* Starts a connect: non-blocking, or a blocking one that is done (or
 * failed) on return unless a signal interrupted it. Returns the socket
 * (connect in progress or done), or a negative error. */
static int start_attempt(const conduit_endp *e, bool blocking, bool *done)
{
        struct sockaddr_storage ss;
        socklen_t len;
        int r = conduit_endp_to_sockaddr(e, &ss, &len);
        if (r < 0)
                return r;
        int fd = socket(ss.ss_family, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK) | SOCK_CLOEXEC,
                        IPPROTO_TCP);
        if (fd < 0)
                return -errno;
        *done = false;
        if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
                *done = true;
                return fd;
        }
        /* EINTR: the connect goes on, poll() tells when it is done */
        if (errno == EINPROGRESS || errno == EINTR)
                return fd;
        r = -errno;
        close(fd);
        return r;
}

static void note_failure(char *msg, size_t cap, const conduit_endp *e, int err)
{
        size_t used = strlen(msg);
        if (used + 1 >= cap)
                return;
        char *s = conduit__endp_str(e);
        snprintf(msg + used, cap - used, "%s%s: %s", used ? "; " : "", s ? s : "?",
                 conduit_strerror(err));
        free(s);
}

int conduit__tcp_connect_many(conduit_ctx *ctx, const conduit_endp *const *cands, size_t n,
                              int64_t deadline, conduit_flow **ret)
{
        struct attempt *act = calloc(n, sizeof(*act));
        struct pollfd *pfd = calloc(n, sizeof(*pfd));
        char msg[2048] = "";
        int last_err = -ECONNREFUSED, winner = -1;
        size_t winner_idx = 0, nact = 0, next = 0;
        int64_t next_start = conduit__now_ms();
        /* one address and no deadline: a blocking connect, as a
         * hand-written client would make (no poll, no flag changes) */
        bool blocking = n == 1 && deadline < 0;
        if (!act || !pfd) {
                free(act);
                free(pfd);
                return -ENOMEM;
        }
        while (winner < 0) {
                int64_t now = conduit__now_ms();
                if (deadline >= 0 && now >= deadline) {
                        last_err = -ETIMEDOUT;
                        break;
                }
                /* Start the next attempt when its time has come, or at once
                 * when nothing is in flight. */
                if (next < n && (nact == 0 || now >= next_start)) {
                        const conduit_endp *e = cands[next];
                        if (conduit__log_enabled(ctx)) {
                                char *s = conduit__endp_str(e);
                                conduit__log(ctx, CONDUIT_LOG_DEBUG,
                                             "connecting to %s (attempt %zu of %zu)", s ? s : "?",
                                             next + 1, n);
                                free(s);
                        }
                        bool done = false;
                        int fd = start_attempt(e, blocking, &done);
                        if (fd < 0) {
                                last_err = fd;
                                note_failure(msg, sizeof(msg), e, fd);
                                next++;
                                continue;
                        }
                        if (done) {
                                winner = fd;
                                winner_idx = next;
                                break;
                        }
                        act[nact++] = (struct attempt){ fd, next };
                        next++;
                        next_start = now + (ctx ? ctx->he_delay_ms : 250);
                }
                if (nact == 0) {
                        if (next >= n)
                                break;
                        continue;
                }
                int wait = conduit__remaining(deadline);
                if (next < n) {
                        int64_t until = next_start - conduit__now_ms();
                        if (until < 0)
                                until = 0;
                        if (wait < 0 || until < wait)
                                wait = (int)until;
                }
                for (size_t i = 0; i < nact; i++)
                        pfd[i] = (struct pollfd){ .fd = act[i].fd, .events = POLLOUT };
                int pr = poll(pfd, (nfds_t)nact, wait);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        last_err = -errno;
                        break;
                }
                for (size_t i = 0; i < nact && pr > 0; i++) {
                        if (!pfd[i].revents)
                                continue;
                        int soerr = 0;
                        socklen_t sl = sizeof(soerr);
                        if (getsockopt(act[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                soerr = errno;
                        if (soerr == 0) {
                                winner = act[i].fd;
                                winner_idx = act[i].idx;
                                act[i] = act[--nact];
                                break;
                        }
                        last_err = -soerr;
                        note_failure(msg, sizeof(msg), cands[act[i].idx], -soerr);
                        close(act[i].fd);
                        pfd[i] = pfd[nact - 1];
                        act[i--] = act[--nact];
                        /* a failure lets the next attempt start at once */
                        next_start = conduit__now_ms();
                }
        }
        for (size_t i = 0; i < nact; i++)
                close(act[i].fd);
        free(act);
        free(pfd);
        if (winner < 0) {
                if (last_err == -ETIMEDOUT) {
                        char *s = conduit__endp_str(cands[0]);
                        conduit__set_error(-ETIMEDOUT, "connect to %s%s timed out%s%s", s ? s : "?",
                                           n > 1 ? " (and other addresses)" : "",
                                           msg[0] ? "; " : "", msg);
                        free(s);
                } else {
                        conduit__set_error(last_err, "%s", msg);
                }
                return last_err;
        }
        /* the socket was made with SOCK_NONBLOCK as its only status flag */
        int r = blocking ? 0 : fcntl(winner, F_SETFL, 0) < 0 ? -errno : 0;
        conduit_flow *f = NULL;
        if (r < 0 || (r = conduit__sock_flow_new(ctx, &conduit__tcp_ops, winner, true, &f)) < 0) {
                close(winner);
                return r;
        }
        conduit_endp *peer;
        if (conduit_endp_copy(cands[winner_idx], &peer) == 0)
                conduit__flow_set_endps(f, peer, NULL);
        if ((r = conduit__tcp_apply_options(f, cands[winner_idx])) < 0) {
                conduit__set_error(r, "cannot apply TCP options: %s",
                                   conduit_flow_error_message(f));
                conduit_flow_free(f);
                return r;
        }
        if (conduit__log_enabled(ctx)) {
                char *s = conduit__endp_str(cands[winner_idx]);
                conduit__log(ctx, CONDUIT_LOG_DEBUG, "connected to %s", s ? s : "?");
                free(s);
        }
        *ret = f;
        return 0;
}

int conduit__tcp_connect(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                         conduit_flow **ret)
{
        if (!e->has_addr)
                return conduit__set_error(-EDESTADDRREQ, "cannot connect to a wildcard address "
                                                         "(tcp://:PORT is for listening)");
        return conduit__tcp_connect_many(ctx, &e, 1, deadline, ret);
}

int conduit__tcp_listen(conduit_ctx *ctx, const conduit_endp *e, struct conduit__listen_result *ret)
{
        struct sockaddr_storage ss;
        socklen_t len;
        (void)ctx;
        int r = conduit_endp_to_sockaddr(e, &ss, &len);
        if (r < 0)
                return conduit__set_error(r, "cannot listen on this TCP endpoint: %s",
                                          conduit_strerror(r));
        bool wildcard = !e->has_addr;
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0 && wildcard && errno == EAFNOSUPPORT && ss.ss_family == AF_INET6 &&
            e->family == AF_UNSPEC) {
                /* no IPv6 on this machine: the dual-stack wildcard is 0.0.0.0 */
                memset(&ss, 0, sizeof(ss));
                ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)e->port);
                len = sizeof(struct sockaddr_in);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
        }
        if (fd < 0)
                return conduit__set_error(-errno, "socket: %s", conduit_strerror(-errno));
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ss.ss_family == AF_INET6) {
                /* tcp6:// is IPv6 only; tcp://:P and tcp://[::]:P serve both */
                int v6only = e->family == AF_INET6;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
        }
        char *s = conduit__endp_str(e);
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                conduit__set_error(r, "cannot listen on %s: %s", s ? s : "?", conduit_strerror(r));
                free(s);
                close(fd);
                return r;
        }
        free(s);
        /* The bound endp is the requested one with the real port. */
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);
        conduit_endp *bound = NULL;
        if (getsockname(fd, (struct sockaddr *)&got, &gl) < 0 || conduit_endp_copy(e, &bound) < 0) {
                close(fd);
                return -ENOMEM;
        }
        bound->port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                     : ((struct sockaddr_in6 *)&got)->sin6_port);
        *ret = (struct conduit__listen_result){
                .fd = fd, .own_fd = true, .bound = bound, .ops = &conduit__tcp_ops
        };
        return 0;
}
