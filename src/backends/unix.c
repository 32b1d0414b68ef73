/* SPDX-License-Identifier: MIT */
/* Unix domain sockets: paths (of any length up to PATH_MAX), abstract
 * names of exact length. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "util.h"

/* A Unix connect does not return EINPROGRESS: a blocking connect waits for
 * room in the listener's backlog, bounded by SO_SNDTIMEO. Nor does it go on
 * in the background when a signal interrupts that wait (unlike TCP): the
 * socket is left unconnected (it polls writable at once), so it is simply
 * tried again. */
static int connect_deadline(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
        for (;;) {
                if (deadline >= 0) {
                        int left = conduit__remaining(deadline);
                        if (left == 0)
                                return -ETIMEDOUT;
                        struct timeval tv = { .tv_sec = left / 1000,
                                              .tv_usec = (left % 1000) * 1000 };
                        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                }
                if (connect(fd, sa, len) == 0)
                        break;
                if (errno == EAGAIN)
                        return -ETIMEDOUT; /* SO_SNDTIMEO expired */
                if (errno != EINTR)
                        return -errno;
        }
        if (deadline >= 0) {
                struct timeval zero = { 0, 0 };
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero));
        }
        return 0;
}

int conduit__unix_connect(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                          conduit_flow **ret)
{
        if (!e->abstract && e->path_len == 0)
                return conduit__set_error(-EDESTADDRREQ,
                                          "cannot connect to an unnamed Unix socket");
        /* the name is formatted for traces and errors only */
        char *s = conduit__log_enabled(ctx) ? conduit__endp_str(e) : NULL;
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "connecting to %s", s ? s : "?");
        struct sockaddr_storage ss;
        socklen_t len;
        int dirfd, fd = -1;
        int r = conduit__unix_sockaddr(e, &ss, &len, &dirfd);
        if (r < 0)
                goto fail;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = fd < 0 ? -errno : connect_deadline(fd, (struct sockaddr *)&ss, len, deadline);
        if (dirfd >= 0)
                close(dirfd);
        if (r < 0)
                goto fail;
        conduit_flow *f;
        if ((r = conduit__sock_flow_new(ctx, &conduit__unix_ops, fd, true, &f)) < 0)
                goto fail;
        /* getpeername would show the /proc path of a long-path connect: keep
         * what was asked for. */
        conduit_endp *peer;
        if (conduit_endp_copy(e, &peer) == 0)
                conduit__flow_set_endps(f, peer, NULL);
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "connected to %s", s ? s : "?");
        free(s);
        *ret = f;
        return 0;
fail:
        if (!s)
                s = conduit__endp_str(e);
        conduit__set_error(r, "%s: %s", s ? s : "?", conduit_strerror(r));
        free(s);
        if (fd >= 0)
                close(fd);
        return r;
}

/* chmod of the socket just bound, never of what a symlink swapped in for
 * it points to: the file is opened without following links, checked to be
 * a socket, and changed through its /proc/self/fd name. */
static int chmod_socket(const char *path, mode_t mode)
{
        int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        char proc[64];
        int r = 0;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISSOCK(st.st_mode))
                r = -EEXIST;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (r == 0 && chmod(proc, mode) < 0)
                r = -errno;
        close(fd);
        return r;
}

int conduit__unix_listen(conduit_ctx *ctx, const conduit_endp *e,
                         struct conduit__listen_result *ret)
{
        (void)ctx;
        char *s = conduit__endp_str(e);
        int fd = -1, dirfd = -1, r;
        struct sockaddr_storage ss;
        socklen_t len;
        if (!e->abstract && e->path_len == 0) {
                r = -EINVAL;
                conduit__set_error(r, "cannot listen on an unnamed Unix socket");
                goto out;
        }
        if ((r = conduit__unix_sockaddr(e, &ss, &len, &dirfd)) < 0) {
                conduit__set_error(r, "%s: %s", s ? s : "?", conduit_strerror(r));
                goto out;
        }
        if (!e->abstract && conduit__endp_opt_bool(e, CONDUIT__OPT_UNLINK, 0)) {
                /* Remove a stale socket, never anything else. */
                struct stat st;
                if (lstat(e->path, &st) == 0) {
                        if (!S_ISSOCK(st.st_mode)) {
                                r = -EADDRINUSE;
                                conduit__set_error(r, "%s exists and is not a socket: not removed",
                                                   e->path);
                                goto out;
                        }
                        /* A socket somebody still listens on is not stale. */
                        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                        int pr = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&ss, len);
                        int perr = errno;
                        if (probe >= 0)
                                close(probe);
                        if (probe < 0 || pr == 0 || perr != ECONNREFUSED) {
                                r = -EADDRINUSE;
                                conduit__set_error(r,
                                                   "%s: a listener is still live on it: "
                                                   "not removed",
                                                   e->path);
                                goto out;
                        }
                        unlink(e->path);
                }
        }
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            bind(fd, (struct sockaddr *)&ss, len) < 0) {
                r = -errno;
                conduit__set_error(r, "cannot bind %s: %s", s ? s : "?", conduit_strerror(r));
                goto out;
        }
        struct stat st = { 0 };
        if (!e->abstract) {
                /* Between bind and listen nobody can connect yet, so the
                 * mode is in place before the first client arrives. */
                const char *mode = e->opt[CONDUIT__OPT_MODE];
                if (mode && (r = chmod_socket(e->path, (mode_t)strtoul(mode, NULL, 8))) < 0) {
                        conduit__set_error(r, "chmod %s: %s", e->path, conduit_strerror(r));
                        unlink(e->path);
                        goto out;
                }
                stat(e->path, &st);
        }
        if (listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                conduit__set_error(r, "listen %s: %s", s ? s : "?", conduit_strerror(r));
                if (!e->abstract)
                        unlink(e->path);
                goto out;
        }
        conduit_endp *bound = NULL;
        char *path = NULL;
        if (conduit_endp_copy(e, &bound) < 0 || (!e->abstract && !(path = strdup(e->path)))) {
                conduit_endp_free(bound);
                if (!e->abstract)
                        unlink(e->path);
                r = -ENOMEM;
                goto out;
        }
        *ret = (struct conduit__listen_result){ .fd = fd,
                                                .own_fd = true,
                                                .bound = bound,
                                                .ops = &conduit__unix_ops,
                                                .unlink_path = path,
                                                .unlink_dev = st.st_dev,
                                                .unlink_ino = st.st_ino,
                                                .unlink_pid = getpid() };
        fd = -1;
        r = 0;
out:
        if (fd >= 0)
                close(fd);
        if (dirfd >= 0)
                close(dirfd);
        free(s);
        return r;
}
