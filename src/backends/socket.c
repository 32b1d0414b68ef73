/* SPDX-License-Identifier: MIT */
/* The stream-socket flow shared by the TCP, Unix and fd backends (and later
 * vsock): one recv/sendmsg system call per operation. The descriptor stays
 * in blocking mode; a try-once operation passes MSG_DONTWAIT, so a blocking
 * flow without timeouts sleeps in the kernel like a hand-written loop. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backends.h"
#include "endp-private.h"
#include "resolver/options.h"
#include "util.h"

struct sock_flow {
        conduit_flow base;
        int fd;
        bool own;
        bool strip_ok; /* lenient hybrid vsock: drop a leading "OK <n>\n" */
};

static struct sock_flow *sock(conduit_flow *f)
{
        return conduit__container_of(f, struct sock_flow, base);
}

static ssize_t sock_read(conduit_flow *f, void *buf, size_t len)
{
        int flags = conduit__flow_dontwait(f, CONDUIT_WANT_READ) ? MSG_DONTWAIT : 0;
        if (sock(f)->strip_ok) {
                int r = conduit__vsock_mux_strip_ok(sock(f)->fd, flags);
                if (r < 0)
                        return r;
                sock(f)->strip_ok = false;
        }
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

/* The AF_VSOCK address of one end of a connected socket (peer: the other
 * end's). A socket bound to any CID — every client: connect() binds it so —
 * speaks from the CID of the transport that carries the connection, which
 * is what its peer sees: the loopback transport's (1) for a peer on this
 * machine (CID 1, or this machine's own CID), this machine's CID
 * (IOCTL_VM_SOCKETS_GET_LOCAL_CID) otherwise. Left at any when /dev/vsock
 * cannot tell. */
static int vsock_name(int fd, bool peer, struct sockaddr_vm *ret)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                     : getsockname(fd, (struct sockaddr *)&ss, &len);
        if (r < 0)
                return -errno;
        if (ss.ss_family != AF_VSOCK || len < (socklen_t)sizeof(*ret))
                return -ENOPROTOOPT;
        memcpy(ret, &ss, sizeof(*ret));
        if (peer || ret->svm_cid != VMADDR_CID_ANY)
                return 0;
        struct sockaddr_vm other;
        socklen_t ol = sizeof(other);
        unsigned own = VMADDR_CID_ANY;
        bool have_own = conduit__vsock_local_cid(&own) == 0;
        if (getpeername(fd, (struct sockaddr *)&other, &ol) == 0 &&
            (other.svm_cid == VMADDR_CID_LOCAL || (have_own && other.svm_cid == own)))
                ret->svm_cid = VMADDR_CID_LOCAL;
        else if (have_own)
                ret->svm_cid = own;
        return 0;
}

/* A Hyper-V flow's endps are Hyper-V endps: the CID as the well-known VM
 * id Linux maps to it (1 loopback, 2 parent, any wildcard), the port as its
 * service GUID. Another CID names a partition only a Windows host knows by
 * GUID: that end is shown as the vsock endp it is. */
static int hyperv_endp(const struct sockaddr_vm *vm, conduit_endp **ret)
{
        const uint8_t *vmid = vm->svm_cid == VMADDR_CID_LOCAL  ? conduit__hv_loopback
                              : vm->svm_cid == VMADDR_CID_HOST ? conduit__hv_parent
                              : vm->svm_cid == VMADDR_CID_ANY  ? conduit__hv_wildcard
                                                               : NULL;
        if (!vmid)
                return conduit_endp_from_sockaddr((const struct sockaddr *)vm, sizeof(*vm), ret);
        conduit_endp *e = conduit__endp_new(CONDUIT_ENDP_HYPERV);
        if (!e)
                return -ENOMEM;
        memcpy(e->vmid, vmid, 16);
        conduit__hv_service_from_port(vm->svm_port, e->service);
        *ret = e;
        return 0;
}

int conduit__sock_endp(const conduit_flow_ops *ops, const struct sockaddr *sa, socklen_t len,
                       conduit_endp **ret)
{
        if (ops == &conduit__hyperv_ops && sa->sa_family == AF_VSOCK &&
            len >= (socklen_t)sizeof(struct sockaddr_vm))
                return hyperv_endp((const struct sockaddr_vm *)sa, ret);
        return conduit_endp_from_sockaddr(sa, len, ret);
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
        case CONDUIT_QUERY_VSOCK_PEER_CID:
        case CONDUIT_QUERY_VSOCK_PEER_PORT:
        case CONDUIT_QUERY_VSOCK_LOCAL_CID:
        case CONDUIT_QUERY_VSOCK_LOCAL_PORT: {
                bool peer = what == CONDUIT_QUERY_VSOCK_PEER_CID ||
                            what == CONDUIT_QUERY_VSOCK_PEER_PORT;
                struct sockaddr_vm vm;
                int r = vsock_name(fd, peer, &vm);
                if (r < 0)
                        return r;
                bool cid = what == CONDUIT_QUERY_VSOCK_PEER_CID ||
                           what == CONDUIT_QUERY_VSOCK_LOCAL_CID;
                if (cid && vm.svm_cid == VMADDR_CID_ANY)
                        return -ENOPROTOOPT; /* no /dev/vsock to ask */
                *(unsigned *)ret = cid ? vm.svm_cid : vm.svm_port;
                return 0;
        }
        case CONDUIT_QUERY_PEER_ENDP:
        case CONDUIT_QUERY_LOCAL_ENDP: {
                int r = what == CONDUIT_QUERY_PEER_ENDP
                                ? getpeername(fd, (struct sockaddr *)&ss, &len)
                                : getsockname(fd, (struct sockaddr *)&ss, &len);
                if (r < 0)
                        return -errno;
                if (ss.ss_family == AF_VSOCK) {
                        struct sockaddr_vm vm;
                        if ((r = vsock_name(fd, what == CONDUIT_QUERY_PEER_ENDP, &vm)) < 0)
                                return r;
                        memcpy(&ss, &vm, sizeof(vm));
                        len = sizeof(vm);
                }
                return conduit__sock_endp(f->ops, (struct sockaddr *)&ss, len,
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
const conduit_flow_ops conduit__vsock_ops = SOCK_OPS("vsock");
const conduit_flow_ops conduit__hyperv_ops = SOCK_OPS("hyperv");
const conduit_flow_ops conduit__vsock_mux_ops = SOCK_OPS("vsock-mux");

void conduit__sock_flow_strip_ok(conduit_flow *f)
{
        sock(f)->strip_ok = true;
}

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
