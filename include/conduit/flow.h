/* SPDX-License-Identifier: MIT */
/* libconduit: flows.
 *
 * A flow is a connected, reliable, ordered, bidirectional byte stream. Every
 * backend (TCP, Unix, fd, and later TLS, vsock, ...) and every flow a program
 * implements itself obeys the same contract, described in docs/flow.md:
 *
 *  - read returns > 0 bytes, 0 at end of stream, or a negative error; EOF
 *    and fatal errors are sticky;
 *  - write/writev in blocking mode return only when every byte has been
 *    handed to the transport; in non-blocking mode they return the number
 *    of bytes accepted or -EAGAIN;
 *  - writing after a local write shutdown, or to a peer that went away,
 *    gives -EPIPE (a reset peer -ECONNRESET) and never raises SIGPIPE;
 *  - timeouts give -ETIMEDOUT and leave the flow usable.
 *
 * Threads: one thread may read a flow while another writes to it (a
 * blocking full-duplex copy); two threads must not read, or write, the same
 * flow at once, and set-up calls (mode, timeouts, shutdown, close) must not
 * race with I/O. */
#ifndef CONDUIT_FLOW_H
#define CONDUIT_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "conduit/common.h"
#include "conduit/endp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct conduit_flow conduit_flow;

/* Directions, for conduit_flow_shutdown() and conduit_flow_wants(). */
#define CONDUIT_SHUT_RD   1
#define CONDUIT_SHUT_WR   2
#define CONDUIT_SHUT_RDWR 3

#define CONDUIT_WANT_READ  1
#define CONDUIT_WANT_WRITE 2

/* Which timeout, for conduit_flow_set_timeout() and conduit_ctx_set_timeout(). */
typedef enum conduit_timeout {
        CONDUIT_TIMEOUT_READ = 0,      /* one read call */
        CONDUIT_TIMEOUT_WRITE = 1,     /* one write/writev call, all bytes */
        CONDUIT_TIMEOUT_CONNECT = 2,   /* the whole connect, all candidates */
        CONDUIT_TIMEOUT_CLOSE = 3,     /* conduit_flow_close() waiting for the peer */
        CONDUIT_TIMEOUT_HANDSHAKE = 4, /* TLS / hybrid-vsock handshakes */
        /* connect: keep retrying a peer that is not up yet (refused,
         * reset, no such socket) until this much time has passed; negative
         * (the default) tries once */
        CONDUIT_TIMEOUT_RETRY = 5
} conduit_timeout;

/* ---- I/O ---------------------------------------------------------------- */

/* Reads up to len bytes. Returns the number read (> 0), 0 at end of stream
 * (sticky), or a negative error: -EINVAL for len == 0, -EAGAIN in
 * non-blocking mode, -ETIMEDOUT when the read timeout expires (not sticky),
 * -ECONNRESET and other transport errors (sticky). After
 * conduit_flow_shutdown(f, CONDUIT_SHUT_RD) it returns 0. */
CONDUIT_EXPORT ssize_t conduit_flow_read(conduit_flow *f, void *buf, size_t len);

/* Writes len bytes; see conduit_flow_writev(). */
CONDUIT_EXPORT ssize_t conduit_flow_write(conduit_flow *f, const void *buf, size_t len);

/* Writes the buffers in order. Blocking mode: returns the total only when
 * every byte has been handed to the transport (the buffers may be reused at
 * once), or a negative error (then an unknown prefix may have been sent).
 * Non-blocking mode: returns the number of bytes accepted (> 0, possibly
 * fewer than asked) or -EAGAIN. A write of zero bytes returns 0.
 * Errors: -EPIPE after a local write shutdown or when the peer is gone,
 * -ECONNRESET, -ETIMEDOUT (write timeout), -EINVAL. Never raises SIGPIPE. */
CONDUIT_EXPORT ssize_t conduit_flow_writev(conduit_flow *f, const struct iovec *iov, int iovcnt);

/* how = CONDUIT_SHUT_WR: flushes what the flow buffers and tells the peer no
 * more data comes (its reads then return 0 once drained); reading goes on.
 * CONDUIT_SHUT_RD: later local reads return 0. Idempotent.
 * Errors: -EINVAL (bad how), transport errors. */
CONDUIT_EXPORT int conduit_flow_shutdown(conduit_flow *f, int how);

/* Graceful end: shuts down the write side, waits until the peer has shut
 * down its side (discarding what it still sends), bounded by the close
 * timeout, then releases everything, inner flows included. The flow is freed
 * whatever the result. Accepts NULL (returns 0). Returns 0, or -ETIMEDOUT if
 * the peer did not finish in time, or the transport error that ended the
 * wait. Blocks even on a non-blocking flow. */
CONDUIT_EXPORT int conduit_flow_close(conduit_flow *f);

/* Releases the flow at once, without waiting for the peer, inner flows
 * included. Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_flow *conduit_flow_free(conduit_flow *f);

/* ---- mode, timeouts, attributes ----------------------------------------- */

/* Switches between blocking (the default) and non-blocking mode. In
 * non-blocking mode read/write return -EAGAIN instead of waiting, and
 * conduit_flow_wants() says which readiness of conduit_flow_poll_fd() to
 * wait for. */
CONDUIT_EXPORT int conduit_flow_set_nonblocking(conduit_flow *f, bool nonblocking);
CONDUIT_EXPORT bool conduit_flow_get_nonblocking(const conduit_flow *f);

/* Sets a timeout in milliseconds; a negative value means none (the default
 * for read and write; close defaults to 10000 ms unless the context says
 * otherwise). Errors: -EINVAL. */
CONDUIT_EXPORT int conduit_flow_set_timeout(conduit_flow *f, conduit_timeout which, int ms);
CONDUIT_EXPORT int conduit_flow_get_timeout(const conduit_flow *f, conduit_timeout which);

/* After -EAGAIN: CONDUIT_WANT_READ and/or CONDUIT_WANT_WRITE, the readiness
 * the flow waits for (TLS may want the opposite direction of the call). */
CONDUIT_EXPORT int conduit_flow_wants(const conduit_flow *f);

/* Bytes already buffered inside the flow that a read returns without
 * waiting for the descriptor (TLS plaintext). Drain them before polling. */
CONDUIT_EXPORT size_t conduit_flow_pending(const conduit_flow *f);

/* TCP_NODELAY on the transport socket. Errors: -ENOTSUP where the transport
 * has no such attribute. */
CONDUIT_EXPORT int conduit_flow_set_nodelay(conduit_flow *f, bool on);

/* TCP keepalive: idle seconds before the first probe, seconds between
 * probes, probes before the connection is dropped (then reads return
 * -ETIMEDOUT). idle_s == 0 turns keepalive off. Errors: -EINVAL, -ENOTSUP. */
CONDUIT_EXPORT int conduit_flow_set_keepalive(conduit_flow *f, int idle_s, int interval_s,
                                              int probes);

/* Kernel socket buffer sizes in bytes (0 leaves one unchanged). */
CONDUIT_EXPORT int conduit_flow_set_buffer_sizes(conduit_flow *f, int rcvbuf, int sndbuf);

/* Largest number of bytes handed to the transport in one system call
 * (hvsock's message_size); 0 means unlimited. Larger writes are split. */
CONDUIT_EXPORT int conduit_flow_set_max_io(conduit_flow *f, size_t max);

/* ---- introspection ------------------------------------------------------- */

/* The peer's and the local endpoint, owned by the flow (NULL if unknown). For
 * TLS, the TLS endp wrapping the inner one. */
CONDUIT_EXPORT const conduit_endp *conduit_flow_peer(conduit_flow *f);
CONDUIT_EXPORT const conduit_endp *conduit_flow_local(conduit_flow *f);

/* The transport descriptor, or -1 (TLS flows, in-memory flows): reading or
 * writing it directly would bypass the flow. */
CONDUIT_EXPORT int conduit_flow_fd(conduit_flow *f);

/* The descriptor to poll for the readiness conduit_flow_wants() reported,
 * for event loops: want is CONDUIT_WANT_READ or CONDUIT_WANT_WRITE (the two
 * differ only for a flow over two descriptors, such as stdin/stdout).
 * -1 if the flow has none. Never read or write it directly. */
CONDUIT_EXPORT int conduit_flow_poll_fd(conduit_flow *f, int want);

/* "tcp", "unix", "fd", ... or the name of a user flow's ops table. */
CONDUIT_EXPORT const char *conduit_flow_backend(const conduit_flow *f);

/* What conduit_flow_query() can answer. */
typedef enum conduit_query {
        CONDUIT_QUERY_BYTES_IN = 1,    /* uint64_t: bytes read so far */
        CONDUIT_QUERY_BYTES_OUT = 2,   /* uint64_t: bytes written so far */
        CONDUIT_QUERY_PEER_CRED = 3,   /* struct conduit_peer_cred (Unix) */
        CONDUIT_QUERY_PEER_ENDP = 4,   /* conduit_endp *: new, caller frees */
        CONDUIT_QUERY_LOCAL_ENDP = 5,  /* conduit_endp *: new, caller frees */
        CONDUIT_QUERY_FD = 6,          /* int: as conduit_flow_fd() */
        CONDUIT_QUERY_SOCKET_TYPE = 7, /* int: SOCK_STREAM... of the socket */
        /* vsock and Hyper-V flows (AF_VSOCK) */
        CONDUIT_QUERY_VSOCK_PEER_CID = 8,    /* unsigned int */
        CONDUIT_QUERY_VSOCK_PEER_PORT = 9,   /* unsigned int */
        CONDUIT_QUERY_VSOCK_LOCAL_CID = 10,  /* unsigned int: this machine's CID */
        CONDUIT_QUERY_VSOCK_LOCAL_PORT = 11, /* unsigned int */
        /* TLS flows (after the handshake). Strings are owned by the flow. */
        CONDUIT_QUERY_TLS_VERSION = 16,       /* const char *: "TLSv1.3" */
        CONDUIT_QUERY_TLS_CIPHER = 17,        /* const char *: "TLS_AES_256_GCM_SHA384" */
        CONDUIT_QUERY_TLS_ALPN = 18,          /* const char *: agreed protocol, NULL if none */
        CONDUIT_QUERY_TLS_PEER_SUBJECT = 19,  /* const char *: RFC 2253, NULL if no certificate */
        CONDUIT_QUERY_TLS_VERIFY_RESULT = 20, /* long: X509_V_OK (0) or the X509_V_ERR_* code */
        CONDUIT_QUERY_TLS_SERVERNAME = 21,    /* const char *: SNI sent (client) or received */
        CONDUIT_QUERY_TLS_SSL = 22,           /* void *: the OpenSSL SSL object, for experts */
        CONDUIT_QUERY_TLS_RESUMED = 23 /* int: 1 if the handshake resumed a session, else 0 */
} conduit_query;

struct conduit_peer_cred {
        long pid;
        long uid;
        long gid;
};

/* Answers question what into *ret (type as listed above). Layered flows pass
 * questions they cannot answer to their inner flow. Errors: -ENOPROTOOPT
 * (not known for this flow), -EINVAL, transport errors. */
CONDUIT_EXPORT int conduit_flow_query(conduit_flow *f, int what, void *ret);

/* A message describing the calling thread's last failure on this flow (""
 * if none): a reader thread and a writer thread each see their own. Owned
 * by the flow, valid until the next call on it. */
CONDUIT_EXPORT const char *conduit_flow_error_message(const conduit_flow *f);

/* ---- construction --------------------------------------------------------- */

/* Flags for conduit_flow_from_fd(). */
#define CONDUIT_FD_OWN 1u /* the flow closes the descriptor(s) when freed */

/* Wraps an open, connected descriptor (a socket, a tty, a character device)
 * in a flow. Without CONDUIT_FD_OWN the descriptor stays the caller's: it is
 * not closed when the flow is freed and its file status flags are left alone.
 * Errors: -EBADF, -EINVAL (unknown flag), -ENOMEM. */
CONDUIT_EXPORT int conduit_flow_from_fd(int fd, unsigned flags, conduit_flow **ret);

/* As conduit_flow_from_fd() with separate descriptors for reading and
 * writing (stdin/stdout, two pipes). Write shutdown of a non-socket write
 * descriptor closes it if owned. */
CONDUIT_EXPORT int conduit_flow_from_fds(int rfd, int wfd, unsigned flags, conduit_flow **ret);

/* Two connected flows over socketpair(AF_UNIX, SOCK_STREAM). */
CONDUIT_EXPORT int conduit_flow_socketpair(conduit_flow **ret_a, conduit_flow **ret_b);

/* ---- flows implemented by the program ------------------------------------- */

/* Each operation receives the flow; conduit_flow_impl() returns the pointer
 * given to conduit_flow_new().
 *
 * read/writev try the operation once. When it cannot proceed without waiting
 * they return -EAGAIN and report the direction through wants. In blocking
 * mode libconduit then waits for poll_fd's readiness (bounded by the flow's
 * timeouts) and calls again; a flow without a descriptor must instead block
 * itself, honouring conduit_flow_get_timeout(). libconduit handles sticky
 * EOF/errors, shutdown bookkeeping, byte counts, zero-length calls and
 * partial-write loops: an operation sees only real work. */

/* Returns > 0 bytes read, 0 at EOF, or a negative errno. */
typedef ssize_t conduit_flow_read_fn(conduit_flow *f, void *buf, size_t len);
/* Returns > 0 bytes accepted (a prefix of iov), or a negative errno. */
typedef ssize_t conduit_flow_writev_fn(conduit_flow *f, const struct iovec *iov, int iovcnt);
/* Shuts down one direction (CONDUIT_SHUT_RD or CONDUIT_SHUT_WR). */
typedef int conduit_flow_shutdown_fn(conduit_flow *f, int how);
/* CONDUIT_WANT_* after the last -EAGAIN. */
typedef int conduit_flow_wants_fn(conduit_flow *f);
/* Bytes readable without waiting on the descriptor. */
typedef size_t conduit_flow_pending_fn(conduit_flow *f);
/* The descriptor to poll for readiness in direction want
 * (CONDUIT_WANT_READ or CONDUIT_WANT_WRITE), or -1. */
typedef int conduit_flow_get_fd_fn(conduit_flow *f, int want);
/* As conduit_flow_query(); -ENOPROTOOPT for what it does not know. */
typedef int conduit_flow_query_fn(conduit_flow *f, int what, void *ret);
/* Called once by conduit_flow_close()/free(): release the implementation. */
typedef void conduit_flow_destroy_fn(conduit_flow *f);

typedef struct conduit_flow_ops {
        const char *name;                   /* backend name, e.g. "memory" */
        conduit_flow_read_fn *read;         /* required */
        conduit_flow_writev_fn *writev;     /* required */
        conduit_flow_shutdown_fn *shutdown; /* NULL: nothing to do */
        conduit_flow_wants_fn *wants;       /* NULL: the direction of the call */
        conduit_flow_pending_fn *pending;   /* NULL: 0 */
        conduit_flow_get_fd_fn *get_fd;     /* NULL: -1 */
        conduit_flow_query_fn *query;       /* NULL: -ENOPROTOOPT */
        conduit_flow_destroy_fn *destroy;   /* NULL: nothing to release */
} conduit_flow_ops;

/* Creates a flow driven by ops (which must outlive the flow) with impl as
 * its private pointer. The flow is usable everywhere a built-in flow is
 * (TLS, relays). Errors: -EINVAL (missing read or writev), -ENOMEM. */
CONDUIT_EXPORT int conduit_flow_new(const conduit_flow_ops *ops, void *impl, conduit_flow **ret);

/* The impl pointer given to conduit_flow_new(). */
CONDUIT_EXPORT void *conduit_flow_impl(const conduit_flow *f);

/* For implementations: records a detail message (printf format) for
 * conduit_flow_error_message() and returns err unchanged, so that an
 * operation can `return conduit_flow_set_error(f, -EIO, "...")`. */
CONDUIT_EXPORT int conduit_flow_set_error(conduit_flow *f, int err, const char *fmt, ...)
        CONDUIT_PRINTF(3, 4);

static inline void conduit_flow_freep(conduit_flow **f)
{
        conduit_flow_free(*f);
}

#ifdef __cplusplus
}
#endif

#endif
