/* SPDX-License-Identifier: MIT */
/* libconduit: endpoints.
 *
 * A conduit_endp is an immutable tagged value naming one peer: a TCP address
 * (or a host name still to resolve), a Unix socket path or abstract name, a
 * vsock CID and port, a Hyper-V VM and service GUID, a hybrid-vsock
 * multiplexer socket and port, a file descriptor, a Xen vchan, TLS over an
 * inner endp, or UNKNOWN (carrying the reason a resolution failed).
 *
 * Every endp prints to one canonical URI and parses back to an equal value:
 * conduit_endp_equal(parse(format(e)), e) holds for every kind.
 * The URI grammar is described in docs/uri.md. */
#ifndef CONDUIT_ENDP_H
#define CONDUIT_ENDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conduit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct conduit_endp conduit_endp;

typedef enum conduit_endp_kind {
        CONDUIT_ENDP_UNKNOWN = 0,
        CONDUIT_ENDP_TCP,
        CONDUIT_ENDP_UNIX,
        CONDUIT_ENDP_VSOCK,
        CONDUIT_ENDP_HYPERV,
        CONDUIT_ENDP_VSOCK_MUX,
        CONDUIT_ENDP_FD,
        CONDUIT_ENDP_VCHAN,
        CONDUIT_ENDP_TLS
} conduit_endp_kind;

/* Parses a URI with the built-in grammar and service table only. Pure: no
 * I/O, no name resolution (conduit_ctx_parse() adds a context's service
 * entries; conduit_resolve() resolves names).
 * Errors: CONDUIT_E_URI, CONDUIT_E_SCHEME, CONDUIT_E_OPTION,
 * CONDUIT_E_OPTION_VALUE, -ENAMETOOLONG, -EINVAL (NULL argument), -ENOMEM.
 * On success *ret is a new endp the caller frees with conduit_endp_free(). */
CONDUIT_EXPORT int conduit_endp_parse(const char *uri, conduit_endp **ret);

/* Prints the canonical URI of e into a new NUL-terminated string the caller
 * frees with free(). Returns its length, or -EINVAL / -ENOMEM. */
CONDUIT_EXPORT int conduit_endp_format(const conduit_endp *e, char **ret);

/* True when a and b name the same peer with the same options. Two NULLs are
 * equal. A resolved TCP endp compares by address, not by the name it came
 * from. */
CONDUIT_EXPORT bool conduit_endp_equal(const conduit_endp *a, const conduit_endp *b);

/* Deep copy. Errors: -EINVAL, -ENOMEM. */
CONDUIT_EXPORT int conduit_endp_copy(const conduit_endp *e, conduit_endp **ret);

/* Frees e (and its inner endps). Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_endp *conduit_endp_free(conduit_endp *e);

/* Builds an endp from a kernel address: AF_INET, AF_INET6 (scope id kept as
 * zone), AF_UNIX (path, abstract or unnamed) and AF_VSOCK.
 * Errors: -EINVAL (bad length), -EAFNOSUPPORT, -ENOMEM. */
CONDUIT_EXPORT int conduit_endp_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                                              conduit_endp **ret);

/* Builds an FD endp naming descriptor fd. Errors: -EBADF (fd < 0), -ENOMEM. */
CONDUIT_EXPORT int conduit_endp_new_fd(int fd, conduit_endp **ret);

/* Builds a TLS endp over a copy of inner. servername may be NULL.
 * Errors: -EINVAL (also when inner already has 16 TLS layers, the most a
 * URI may have), -ENOMEM. */
CONDUIT_EXPORT int conduit_endp_new_tls(const conduit_endp *inner, const char *servername,
                                        conduit_endp **ret);

/* Fills *ret with the kernel address of a TCP endp that carries an address,
 * a Unix endp (-ENAMETOOLONG if the path does not fit sun_path) or a vsock
 * endp. Errors: -EDESTADDRREQ (a TCP host name not yet resolved),
 * -EAFNOSUPPORT (other kinds). */
CONDUIT_EXPORT int conduit_endp_to_sockaddr(const conduit_endp *e, struct sockaddr_storage *ret,
                                            socklen_t *ret_len);

CONDUIT_EXPORT conduit_endp_kind conduit_endp_get_kind(const conduit_endp *e);

/* "tcp", "unix", "vsock", "hyperv", "vsock-mux", "fd", "vchan", "tls",
 * "unknown". */
CONDUIT_EXPORT const char *conduit_endp_kind_name(conduit_endp_kind kind);

/* TCP: the host as written or the name it was resolved from (NULL for a
 * wildcard listen address). TLS: the server name, if set. UNKNOWN: the
 * reason. NULL otherwise. Owned by e. */
CONDUIT_EXPORT const char *conduit_endp_get_host(const conduit_endp *e);

/* TCP and vsock-mux: the port. vsock: the port (4294967295 is "any").
 * Hyper-V: the vsock port the service GUID maps to, or -1. vchan: the
 * domain id. TLS: the inner endp's port. -1 otherwise. */
CONDUIT_EXPORT long long conduit_endp_get_port(const conduit_endp *e);

/* vsock: the CID (4294967295 is "any"). -1 otherwise. */
CONDUIT_EXPORT long long conduit_endp_get_cid(const conduit_endp *e);

/* Unix: the path or abstract name (without the leading NUL; it may contain
 * NUL bytes, so use *ret_len). vsock-mux: the multiplexer socket path.
 * vchan: the port name. NULL otherwise. ret_len may be NULL. */
CONDUIT_EXPORT const char *conduit_endp_get_path(const conduit_endp *e, size_t *ret_len);

/* True for a Unix endp naming an abstract socket. */
CONDUIT_EXPORT bool conduit_endp_is_abstract(const conduit_endp *e);

/* FD: the descriptor. -1 otherwise. */
CONDUIT_EXPORT int conduit_endp_get_fd(const conduit_endp *e);

/* Hyper-V: copies the VM id and service GUIDs (RFC 4122 byte order, as
 * printed) into vmid[16] and service[16]. Errors: -EINVAL. */
CONDUIT_EXPORT int conduit_endp_get_hyperv(const conduit_endp *e, uint8_t vmid[16],
                                           uint8_t service[16]);

/* TLS: the endp TLS runs over. NULL otherwise. Owned by e. */
CONDUIT_EXPORT const conduit_endp *conduit_endp_get_inner(const conduit_endp *e);

/* The canonical value of query option key set on e itself (not on its inner
 * endp), as it would be printed; NULL if the option is not set. The string
 * is owned by e. Example: conduit_endp_get_option(e, "nodelay") == "1". */
CONDUIT_EXPORT const char *conduit_endp_get_option(const conduit_endp *e, const char *key);

static inline void conduit_endp_freep(conduit_endp **e)
{
        conduit_endp_free(*e);
}

#ifdef __cplusplus
}
#endif

#endif
