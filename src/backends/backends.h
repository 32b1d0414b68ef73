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

/* Wraps a connected stream socket (blocking mode, CLOEXEC) in a flow that
 * closes it on free when own is set. On failure the descriptor is left to
 * the caller. */
int conduit__sock_flow_new(conduit_ctx *ctx, const conduit_flow_ops *ops, int fd, bool own,
                           conduit_flow **ret);

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

conduit__connect_fn conduit__tcp_connect, conduit__unix_connect, conduit__fd_connect;
conduit__listen_fn conduit__tcp_listen, conduit__unix_listen, conduit__fd_listen;

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
