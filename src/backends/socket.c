/* SPDX-License-Identifier: MIT */
/* The stream-socket flow shared by the TCP, Unix and fd backends (and later
 * vsock): one recv/sendmsg system call per operation. The descriptor stays
 * in blocking mode; a try-once operation passes MSG_DONTWAIT, so a blocking
 * flow without timeouts sleeps in the kernel like a hand-written loop. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backends.h"
#include "util.h"

struct sock_flow {
        conduit_flow base;
        int fd;
        bool own;
};

static struct sock_flow *sock(conduit_flow *f)
{
        return conduit__container_of(f, struct sock_flow, base);
}

static ssize_t sock_read(conduit_flow *f, void *buf, size_t len)
{
        int flags = conduit__flow_dontwait(f, CONDUIT_WANT_READ) ? MSG_DONTWAIT : 0;
        ssize_t n = recv(sock(f)->fd, buf, len, flags);
        if (n >= 0)
                return n;
        if (errno == EWOULDBLOCK)
                return -EAGAIN;
        return conduit_flow_set_error(f, -errno, "recv: %s", conduit_strerror(-errno));
}

static ssize_t sock_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        int flags = MSG_NOSIGNAL;
        if (conduit__flow_dontwait(f, CONDUIT_WANT_WRITE))
                flags |= MSG_DONTWAIT;
        ssize_t n;
        if (iovcnt == 1) {
                n = send(sock(f)->fd, iov[0].iov_base, iov[0].iov_len, flags);
        } else {
                struct msghdr msg = { .msg_iov = (struct iovec *)iov,
                                      .msg_iovlen = (size_t)iovcnt };
                n = sendmsg(sock(f)->fd, &msg, flags);
        }
        if (n >= 0)
                return n;
        /* ENOBUFS on a stream socket means "try again", like EAGAIN. */
        if (errno == EWOULDBLOCK || errno == ENOBUFS)
                return -EAGAIN;
        return conduit_flow_set_error(f, -errno, "send: %s", conduit_strerror(-errno));
}

static int sock_shutdown(conduit_flow *f, int how)
{
        if (shutdown(sock(f)->fd, how == CONDUIT_SHUT_WR ? SHUT_WR : SHUT_RD) == 0)
                return 0;
        /* A peer that already went away has nothing left to be told. */
        if (errno == ENOTCONN)
                return 0;
        return conduit_flow_set_error(f, -errno, "shutdown: %s", conduit_strerror(-errno));
}

static int sock_get_fd(conduit_flow *f, int want)
{
        (void)want;
        return sock(f)->fd;
}

static int sock_query(conduit_flow *f, int what, void *ret)
{
        int fd = sock(f)->fd;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        switch (what) {
        case CONDUIT_QUERY_FD: *(int *)ret = fd; return 0;
        case CONDUIT_QUERY_SOCKET_TYPE: {
                int type;
                socklen_t tl = sizeof(type);
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
                        return -errno;
                *(int *)ret = type;
                return 0;
        }
        case CONDUIT_QUERY_PEER_CRED: {
                /* Only Unix sockets have a peer process; others report
                 * placeholder credentials that must not be mistaken. */
                int domain = 0;
                socklen_t dl = sizeof(domain);
                if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0 || domain != AF_UNIX)
                        return -ENOPROTOOPT;
                struct ucred uc;
                socklen_t ul = sizeof(uc);
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0)
                        return errno == ENOPROTOOPT || errno == EOPNOTSUPP ? -ENOPROTOOPT : -errno;
                *(struct conduit_peer_cred *)ret =
                        (struct conduit_peer_cred){ .pid = uc.pid, .uid = uc.uid, .gid = uc.gid };
                return 0;
        }
        case CONDUIT_QUERY_PEER_ENDP:
        case CONDUIT_QUERY_LOCAL_ENDP: {
                int r = what == CONDUIT_QUERY_PEER_ENDP
                                ? getpeername(fd, (struct sockaddr *)&ss, &len)
                                : getsockname(fd, (struct sockaddr *)&ss, &len);
                if (r < 0)
                        return -errno;
                return conduit_endp_from_sockaddr((struct sockaddr *)&ss, len,
                                                  (conduit_endp **)ret);
        }
        default: return -ENOPROTOOPT;
        }
}

static void sock_destroy(conduit_flow *f)
{
        if (sock(f)->own)
                close(sock(f)->fd);
}

#define SOCK_OPS(n)                                                                             \
        {                                                                                       \
                .name = n, .read = sock_read, .writev = sock_writev, .shutdown = sock_shutdown, \
                .get_fd = sock_get_fd, .query = sock_query, .destroy = sock_destroy,            \
        }

const conduit_flow_ops conduit__tcp_ops = SOCK_OPS("tcp");
const conduit_flow_ops conduit__unix_ops = SOCK_OPS("unix");
const conduit_flow_ops conduit__fd_sock_ops = SOCK_OPS("fd");

int conduit__sock_flow_new(conduit_ctx *ctx, const conduit_flow_ops *ops, int fd, bool own,
                           conduit_flow **ret)
{
        struct sock_flow *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        conduit__flow_init(&s->base, ops, ctx);
        s->fd = fd;
        s->own = own;
        *ret = &s->base;
        return 0;
}
