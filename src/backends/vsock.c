/* SPDX-License-Identifier: MIT */
/* AF_VSOCK, and Hyper-V sockets carried over it (the Linux hv_sock model:
 * a service GUID XXXXXXXX-facb-11e6-bd58-64006a7986d3 is vsock port
 * 0xXXXXXXXX). The flow itself is the shared socket flow. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "resolver/options.h"
#include "util.h"

/* The test suite sets this on the build host, where an AF_VSOCK connect
 * would reach the hypervisor running that machine: the backend then fails
 * before any socket exists. */
int conduit__vsock_forbidden(void)
{
        const char *v = getenv("CONDUIT_FORBID_VSOCK");
        if (v && *v && strcmp(v, "0") != 0)
                return conduit__set_error(-EPERM, "AF_VSOCK sockets are disabled "
                                                  "(CONDUIT_FORBID_VSOCK is set)");
        return 0;
}

int conduit__vsock_sockaddr(const conduit_endp *e, bool listening, struct sockaddr_vm *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->svm_family = AF_VSOCK;
        if (e->kind == CONDUIT_ENDP_VSOCK) {
                ret->svm_cid = e->cid;
                ret->svm_port = e->port;
                if (conduit__endp_opt_bool(e, CONDUIT__OPT_TO_HOST, 0))
                        ret->svm_flags = VMADDR_FLAG_TO_HOST;
        } else {
                /* Hyper-V: the well-known VM ids are the CIDs Linux uses */
                if (memcmp(e->vmid, conduit__hv_loopback, 16) == 0)
                        ret->svm_cid = VMADDR_CID_LOCAL;
                else if (memcmp(e->vmid, conduit__hv_parent, 16) == 0 ||
                         memcmp(e->vmid, conduit__hv_silohost, 16) == 0)
                        ret->svm_cid = VMADDR_CID_HOST;
                else if (memcmp(e->vmid, conduit__hv_wildcard, 16) == 0 ||
                         memcmp(e->vmid, conduit__hv_children, 16) == 0)
                        ret->svm_cid = VMADDR_CID_ANY;
                else
                        return conduit__set_error(CONDUIT_E_UNSUPPORTED,
                                                  "a Hyper-V VM GUID names a partition only on "
                                                  "Windows hosts; on Linux use loopback, parent, "
                                                  "silohost, wildcard or children");
                long long port = conduit__hv_service_port(e->service);
                if (port < 0)
                        return conduit__set_error(CONDUIT_E_UNSUPPORTED,
                                                  "only service GUIDs of the form "
                                                  "XXXXXXXX-facb-11e6-bd58-64006a7986d3 exist on "
                                                  "Linux (they are vsock ports); generic service "
                                                  "GUIDs exist only on Windows");
                ret->svm_port = (unsigned)port;
        }
        if (!listening && ret->svm_cid == VMADDR_CID_ANY)
                return conduit__set_error(-EDESTADDRREQ,
                                          "cannot connect to any CID (that is for listening)");
        if (!listening && ret->svm_port == VMADDR_PORT_ANY)
                return conduit__set_error(-EDESTADDRREQ,
                                          "cannot connect to any port (that is for listening)");
        return 0;
}

int conduit__vsock_connect(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                           conduit_flow **ret)
{
        struct sockaddr_vm vm;
        int r = conduit__vsock_sockaddr(e, false, &vm);
        if (r < 0 || (r = conduit__vsock_forbidden()) < 0)
                return r;
        char *s = conduit__endp_str(e);
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "connecting to %s (cid %u port %u)", s ? s : "?",
                     vm.svm_cid, vm.svm_port);
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        if (deadline >= 0) {
                /* the kernel's own connect timer (2 s by default) follows the
                 * deadline, so neither cuts the other short */
                int left = conduit__remaining(deadline);
                struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };
                setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv));
        }
        if (connect(fd, (struct sockaddr *)&vm, sizeof(vm)) < 0) {
                if (errno != EINPROGRESS && errno != EINTR) {
                        r = -errno;
                        goto fail;
                }
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                for (;;) {
                        int left = conduit__remaining(deadline);
                        int pr = deadline >= 0 && left == 0 ? 0 : poll(&p, 1, left);
                        if (pr > 0)
                                break;
                        if (pr == 0) {
                                r = -ETIMEDOUT;
                                goto fail;
                        }
                        if (errno != EINTR) {
                                r = -errno;
                                goto fail;
                        }
                }
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr) {
                        r = -soerr;
                        goto fail;
                }
        }
        if ((r = conduit__set_nonblock(fd, false)) < 0)
                goto fail;
        conduit_flow *f;
        if ((r = conduit__sock_flow_new(ctx,
                                        e->kind == CONDUIT_ENDP_HYPERV ? &conduit__hyperv_ops
                                                                       : &conduit__vsock_ops,
                                        fd, true, &f)) < 0)
                goto fail;
        conduit_endp *peer;
        if (conduit_endp_copy(e, &peer) == 0)
                conduit__flow_set_endps(f, peer, NULL);
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "connected to %s", s ? s : "?");
        free(s);
        *ret = f;
        return 0;
fail:
        if (fd >= 0)
                close(fd);
        /* A vsock peer with no listener answers with a reset: to the
         * caller that is a refusal, as for every other transport. */
        if (r == -ECONNRESET)
                r = -ECONNREFUSED;
        conduit__set_error(r, "%s: %s", s ? s : "?",
                           r == -ECONNREFUSED ? "connection refused (no listener on that port)"
                           : r == -ETIMEDOUT  ? "connect timed out"
                                              : conduit_strerror(r));
        free(s);
        return r;
}

int conduit__vsock_listen(conduit_ctx *ctx, const conduit_endp *e,
                          struct conduit__listen_result *ret)
{
        (void)ctx;
        struct sockaddr_vm vm;
        int r = conduit__vsock_sockaddr(e, true, &vm);
        if (r < 0 || (r = conduit__vsock_forbidden()) < 0)
                return r;
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char *s = conduit__endp_str(e);
        if (fd < 0 || bind(fd, (struct sockaddr *)&vm, sizeof(vm)) < 0 ||
            listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                conduit__set_error(r, "cannot listen on %s: %s", s ? s : "?", conduit_strerror(r));
                free(s);
                if (fd >= 0)
                        close(fd);
                return r;
        }
        free(s);
        struct sockaddr_vm got;
        socklen_t gl = sizeof(got);
        conduit_endp *bound = NULL;
        if (getsockname(fd, (struct sockaddr *)&got, &gl) < 0)
                r = -errno;
        else if (conduit_endp_copy(e, &bound) < 0)
                r = -ENOMEM;
        if (r < 0) {
                close(fd);
                return r;
        }
        /* the real port when "any" was asked (Hyper-V: its service GUID) */
        if (bound->kind == CONDUIT_ENDP_VSOCK)
                bound->port = got.svm_port;
        else
                conduit__hv_service_from_port(got.svm_port, bound->service);
        *ret = (struct conduit__listen_result){
                .fd = fd,
                .own_fd = true,
                .bound = bound,
                .ops = e->kind == CONDUIT_ENDP_HYPERV ? &conduit__hyperv_ops : &conduit__vsock_ops,
        };
        return 0;
}

int conduit__vsock_local_cid(unsigned *ret)
{
        int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        unsigned cid = 0;
        int r = ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0 ? -errno : 0;
        close(fd);
        if (r == 0)
                *ret = cid;
        return r;
}
