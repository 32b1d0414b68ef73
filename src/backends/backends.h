/* SPDX-License-Identifier: MIT */
/* Internal: what the connector and the listener know of the backends. */
#ifndef CONDUIT_BACKENDS_H
#define CONDUIT_BACKENDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conduit/conduit.h"
#include "flow-private.h"

/* Flow ops tables of the socket-backed flows; they differ only in name. */
extern const conduit_flow_ops conduit__tcp_ops;
extern const conduit_flow_ops conduit__unix_ops;
extern const conduit_flow_ops conduit__fd_sock_ops;
extern const conduit_flow_ops conduit__vsock_ops;
extern const conduit_flow_ops conduit__hyperv_ops;
extern const conduit_flow_ops conduit__vsock_mux_ops;

/* Wraps a connected stream socket (blocking mode, CLOEXEC) in a flow that
 * closes it on free when own is set. On failure the descriptor is left to
 * the caller. */
int conduit__sock_flow_new(conduit_ctx *ctx, const conduit_flow_ops *ops, int fd, bool own,
                           conduit_flow **ret);

/* The endp of a socket address, as flows of ops report it: a Hyper-V
 * flow's AF_VSOCK addresses are Hyper-V endps where the CID is a well-known
 * VM id (1 loopback, 2 parent, any wildcard); else
 * conduit_endp_from_sockaddr(). For the peer address accept() returns. */
int conduit__sock_endp(const conduit_flow_ops *ops, const struct sockaddr *sa, socklen_t len,
                       conduit_endp **ret);

/* Lenient hybrid vsock: the first read of f first drops an "OK <n>\n" line
 * the multiplexer may have sent (conduit__vsock_mux_strip_ok()). */
void conduit__sock_flow_strip_ok(conduit_flow *f);

/* Consumes a complete "OK <n>\n" line at the head of fd's data, if one is
 * there; anything else is left as data. 0, -EAGAIN (recv flags had
 * MSG_DONTWAIT and nothing has arrived) or an error. */
int conduit__vsock_mux_strip_ok(int fd, int recv_flags);

/* Connects one resolved candidate of the backend's kind before deadline
 * (absolute ms, -1 none). Sets the thread's detail message on failure. */
typedef int conduit__connect_fn(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                                conduit_flow **ret);

/* Binds and listens on one resolved endp, filling the listener's socket. */
struct conduit__listen_result {
        int fd;                      /* listening socket */
        bool own_fd;                 /* closed when the listener is freed */
        conduit_endp *bound;         /* the bound endp (real port) */
        const conduit_flow_ops *ops; /* ops for accepted flows */
        char *unlink_path;           /* socket file to remove on free, or NULL */
        uint64_t unlink_dev, unlink_ino;
        long unlink_pid; /* only this process removes it */
};
typedef int conduit__listen_fn(conduit_ctx *ctx, const conduit_endp *e,
                               struct conduit__listen_result *ret);

conduit__connect_fn conduit__tcp_connect, conduit__unix_connect, conduit__fd_connect,
        conduit__vsock_connect, conduit__vsock_mux_connect;
conduit__listen_fn conduit__tcp_listen, conduit__unix_listen, conduit__fd_listen,
        conduit__vsock_listen, conduit__vsock_mux_listen;

struct sockaddr_vm;
/* The AF_VSOCK address of a vsock or Hyper-V endp (Hyper-V ids mapped as
 * Linux does). Refuses "any" CID or port unless listening. */
int conduit__vsock_sockaddr(const conduit_endp *e, bool listening, struct sockaddr_vm *ret);

/* -EPERM (with the detail message) when CONDUIT_FORBID_VSOCK is set: no
 * AF_VSOCK socket may be made (the build host of the test suite). */
int conduit__vsock_forbidden(void);

/* True for a hybrid-vsock reply line "OK <digits>" (without its newline). */
bool conduit__vsock_mux_reply_ok(const char *line, size_t len);

/* Hybrid vsock, for the event-driven connector: the Unix endp of the
 * multiplexer's socket (borrowing e's path); the detail message for a
 * failed handshake (line: the answer, NULL if none or too long; returns
 * r); turning a socket flow whose OK arrived into a vsock-mux flow. */
conduit_endp conduit__vsock_mux_unix_endp(const conduit_endp *e);
int conduit__vsock_mux_error(const conduit_endp *e, int r, const char *line, size_t len);
void conduit__vsock_mux_connected(conduit_flow *f, const conduit_endp *e);

/* This machine's CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock). */
int conduit__vsock_local_cid(unsigned *ret);

/* Happy Eyeballs over n TCP candidates (RFC 8305 §5): the next attempt
 * starts after delay_ms or when one fails; the first to connect wins. */
int conduit__tcp_connect_many(conduit_ctx *ctx, const conduit_endp *const *cands, size_t n,
                              int64_t deadline, conduit_flow **ret);

/* Applies the TCP transport options of e (nodelay, keepalive) to a flow. */
int conduit__tcp_apply_options(conduit_flow *f, const conduit_endp *e);

/* ---- socket helpers (src/sockutil.c) ------------------------------------ */

/* Fills a Unix address for e. A path longer than sun_path is reached
 * through its directory: *ret_dirfd is then an O_PATH descriptor the caller
 * closes after connect/bind (else -1). -ENAMETOOLONG if even that cannot
 * fit; never truncates. */
int conduit__unix_sockaddr(const conduit_endp *e, struct sockaddr_storage *ret, socklen_t *ret_len,
                           int *ret_dirfd);

/* Sets or clears O_NONBLOCK. */
int conduit__set_nonblock(int fd, bool on);

/* Formats an endp for messages into a malloc'd string ("?" on ENOMEM).
 * Caller frees. */
char *conduit__endp_str(const conduit_endp *e);

#endif
