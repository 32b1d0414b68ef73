/* SPDX-License-Identifier: MIT */
/* Flows over inherited descriptors. A socket becomes a socket flow (named
 * "fd"); anything else (a tty, a pipe pair, a character device) gets the
 * flow below, which never changes the descriptor's file status flags: it
 * may be shared with other processes (a shell's terminal), so "try once"
 * is a zero-timeout poll() before the call instead of O_NONBLOCK. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "util.h"

struct fd_flow {
        conduit_flow base;
        int rfd;
        int wfd;
        bool own;
        bool wfd_is_socket;
        bool wfd_is_fifo;
};

static struct fd_flow *fdf(conduit_flow *f)
{
        return conduit__container_of(f, struct fd_flow, base);
}

static bool ready(int fd, short ev)
{
        struct pollfd p = { .fd = fd, .events = ev };
        return poll(&p, 1, 0) != 0; /* errors count as ready: the call reports them */
}

static ssize_t fd_read(conduit_flow *f, void *buf, size_t len)
{
        struct fd_flow *d = fdf(f);
        if (conduit__flow_dontwait(f, CONDUIT_WANT_READ) && !ready(d->rfd, POLLIN))
                return -EAGAIN;
        ssize_t n = read(d->rfd, buf, len);
        if (n >= 0)
                return n;
        if (errno == EWOULDBLOCK)
                return -EAGAIN;
        /* a tty whose other side hung up reads as end of stream */
        if (errno == EIO)
                return 0;
        return conduit_flow_set_error(f, -errno, "read: %s", conduit_strerror(-errno));
}

/* writev() on a pipe without a reader raises SIGPIPE, which a library must
 * not do: block it in this thread for the call and consume the one the call
 * raised, unless one was already pending before. The kernel raises it also
 * when the reader goes away during a blocking write that had already moved
 * some bytes, and then returns that count, not -EPIPE: look at what is
 * pending, not at the result. */
static ssize_t writev_nosigpipe(int fd, const struct iovec *iov, int iovcnt)
{
        sigset_t pipe_set, old, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigpending(&pending);
        bool was_pending = sigismember(&pending, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        ssize_t n = writev(fd, iov, iovcnt);
        int err = errno;
        if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
                struct timespec zero = { 0, 0 };
                while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = err;
        return n;
}

static ssize_t fd_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        struct fd_flow *d = fdf(f);
        if (d->wfd < 0)
                return -EPIPE;
        struct iovec one;
        if (conduit__flow_dontwait(f, CONDUIT_WANT_WRITE)) {
                if (!ready(d->wfd, POLLOUT))
                        return -EAGAIN;
                /* POLLOUT on a pipe promises room for PIPE_BUF bytes only */
                if (d->wfd_is_fifo) {
                        one = iov[0];
                        if (one.iov_len > PIPE_BUF)
                                one.iov_len = PIPE_BUF;
                        iov = &one;
                        iovcnt = 1;
                }
        }
        ssize_t n;
        if (d->wfd_is_socket) {
                struct msghdr msg = { .msg_iov = (struct iovec *)iov,
                                      .msg_iovlen = (size_t)iovcnt };
                int fl = MSG_NOSIGNAL;
                if (conduit__flow_dontwait(f, CONDUIT_WANT_WRITE))
                        fl |= MSG_DONTWAIT;
                n = sendmsg(d->wfd, &msg, fl);
        } else {
                n = writev_nosigpipe(d->wfd, iov, iovcnt);
        }
        if (n >= 0)
                return n;
        if (errno == EWOULDBLOCK)
                return -EAGAIN;
        return conduit_flow_set_error(f, -errno, "write: %s", conduit_strerror(-errno));
}

static int fd_shutdown(conduit_flow *f, int how)
{
        struct fd_flow *d = fdf(f);
        if (how != CONDUIT_SHUT_WR || d->wfd < 0)
                return 0;
        if (d->wfd_is_socket) {
                if (shutdown(d->wfd, SHUT_WR) < 0 && errno != ENOTCONN)
                        return -errno;
                return 0;
        }
        /* A pipe or tty has no half-close: the reader sees EOF when the
         * write end is closed, which only an owner may do, and only when
         * reading does not go through the same descriptor. */
        if (d->own && d->wfd != d->rfd) {
                close(d->wfd);
                d->wfd = -1;
        }
        return 0;
}

static int fd_get_fd(conduit_flow *f, int want)
{
        struct fd_flow *d = fdf(f);
        return want == CONDUIT_WANT_WRITE ? d->wfd : d->rfd;
}

static int fd_query(conduit_flow *f, int what, void *ret)
{
        struct fd_flow *d = fdf(f);
        switch (what) {
        case CONDUIT_QUERY_FD: *(int *)ret = d->rfd; return 0;
        case CONDUIT_QUERY_PEER_ENDP: return conduit_endp_new_fd(d->rfd, (conduit_endp **)ret);
        default: return -ENOPROTOOPT;
        }
}

static void fd_destroy(conduit_flow *f)
{
        struct fd_flow *d = fdf(f);
        if (!d->own)
                return;
        if (d->wfd >= 0 && d->wfd != d->rfd)
                close(d->wfd);
        close(d->rfd);
}

static const conduit_flow_ops fd_ops = {
        .name = "fd",
        .read = fd_read,
        .writev = fd_writev,
        .shutdown = fd_shutdown,
        .get_fd = fd_get_fd,
        .query = fd_query,
        .destroy = fd_destroy,
};

static bool is_socket(int fd)
{
        int type;
        socklen_t len = sizeof(type);
        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

static int from_fds(conduit_ctx *ctx, int rfd, int wfd, unsigned flags, conduit_flow **ret)
{
        if (!ret || (flags & ~CONDUIT_FD_OWN))
                return -EINVAL;
        if (rfd < 0 || wfd < 0 || fcntl(rfd, F_GETFD) < 0 || fcntl(wfd, F_GETFD) < 0)
                return -EBADF;
        bool own = flags & CONDUIT_FD_OWN;
        if (rfd == wfd && is_socket(rfd))
                return conduit__sock_flow_new(ctx, &conduit__fd_sock_ops, rfd, own, ret);
        struct fd_flow *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        conduit__flow_init(&d->base, &fd_ops, ctx);
        struct stat st;
        d->rfd = rfd;
        d->wfd = wfd;
        d->own = own;
        d->wfd_is_socket = is_socket(wfd);
        d->wfd_is_fifo = fstat(wfd, &st) == 0 && S_ISFIFO(st.st_mode);
        *ret = &d->base;
        return 0;
}

int conduit_flow_from_fd(int fd, unsigned flags, conduit_flow **ret)
{
        return from_fds(NULL, fd, fd, flags, ret);
}

int conduit_flow_from_fds(int rfd, int wfd, unsigned flags, conduit_flow **ret)
{
        return from_fds(NULL, rfd, wfd, flags, ret);
}

int conduit_flow_socketpair(conduit_flow **ret_a, conduit_flow **ret_b)
{
        int sv[2];
        conduit_flow *a = NULL, *b = NULL;
        if (!ret_a || !ret_b)
                return -EINVAL;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        if (conduit__sock_flow_new(NULL, &conduit__unix_ops, sv[0], true, &a) < 0) {
                close(sv[0]);
                close(sv[1]);
                return -ENOMEM;
        }
        if (conduit__sock_flow_new(NULL, &conduit__unix_ops, sv[1], true, &b) < 0) {
                conduit_flow_free(a);
                close(sv[1]);
                return -ENOMEM;
        }
        *ret_a = a;
        *ret_b = b;
        return 0;
}

/* fd:N through the connector: the descriptor stays the caller's. */
int conduit__fd_connect(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                        conduit_flow **ret)
{
        (void)deadline;
        int r = from_fds(ctx, e->fd, e->fd, 0, ret);
        if (r < 0)
                return conduit__set_error(r, "fd:%d: %s", e->fd, conduit_strerror(r));
        return 0;
}

/* fd:N as a listener: an inherited listening socket (socket activation). */
int conduit__fd_listen(conduit_ctx *ctx, const conduit_endp *e, struct conduit__listen_result *ret)
{
        (void)ctx;
        int acc = 0;
        socklen_t len = sizeof(acc);
        if (getsockopt(e->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0) {
                int r = -errno;
                return conduit__set_error(r, "fd:%d cannot listen: %s", e->fd, conduit_strerror(r));
        }
        if (!acc)
                return conduit__set_error(-EINVAL, "fd:%d is not a listening socket", e->fd);
        int domain = AF_UNSPEC;
        len = sizeof(domain);
        getsockopt(e->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
        conduit_endp *bound;
        if (conduit_endp_copy(e, &bound) < 0)
                return -ENOMEM;
        *ret = (struct conduit__listen_result){
                .fd = e->fd,
                .own_fd = false,
                .bound = bound,
                .ops = domain == AF_UNIX                         ? &conduit__unix_ops
                       : domain == AF_INET || domain == AF_INET6 ? &conduit__tcp_ops
                                                                 : &conduit__fd_sock_ops,
        };
        return 0;
}
