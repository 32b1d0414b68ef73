/* SPDX-License-Identifier: MIT */
/* Internal to the resolver: the query option table, host name and GUID
 * helpers shared by the URI parser (uri.c) and printer (format.c). */
#ifndef CONDUIT_RESOLVER_OPTIONS_H
#define CONDUIT_RESOLVER_OPTIONS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endp-private.h"

/* Longest Unix path (PATH_MAX - 1) and abstract name (sun_path minus the
 * leading NUL) the parser accepts. */
#define CONDUIT__UNIX_PATH_MAX     4095
#define CONDUIT__UNIX_ABSTRACT_MAX 107

/* Where an option may appear: one bit per kind of endp, with Unix paths
 * (the unnamed socket included) and abstract names told apart because the
 * file-system options only make sense for paths. */
enum {
        CONDUIT__ON_TCP = 1u << 0,
        CONDUIT__ON_UNIX_PATH = 1u << 1,
        CONDUIT__ON_UNIX_ABSTRACT = 1u << 2,
        CONDUIT__ON_VSOCK = 1u << 3,
        CONDUIT__ON_HYPERV = 1u << 4,
        CONDUIT__ON_VSOCK_MUX = 1u << 5,
        CONDUIT__ON_FD = 1u << 6,
        CONDUIT__ON_VCHAN = 1u << 7,
        CONDUIT__ON_UNKNOWN = 1u << 8,
        CONDUIT__ON_TLS = 1u << 9,
};

/* Finds an option by its key: lower case, '_' for '-', no "inner."
 * prefix; aliases (sni, snihost) included. */
bool conduit__opt_lookup(const char *key, size_t len, enum conduit__opt *ret);

/* True for options that live on TLS endps. */
static inline bool conduit__opt_is_tls(enum conduit__opt o)
{
        return o >= CONDUIT__OPT_FIRST_TLS;
}

/* Whether option o may be set on e itself. */
bool conduit__opt_applies(enum conduit__opt o, const conduit_endp *e);

/* A short description of e's kind for messages ("tcp", "abstract unix"). */
const char *conduit__endp_desc(const conduit_endp *e);

/* Validates a decoded option value (NUL-terminated at len, no NUL inside)
 * and returns its canonical string in *ret (malloc'd). value NULL means the
 * key came without '=' (only booleans and keepalive take that, as 1). Returns 0, CONDUIT_E_OPTION_VALUE, -ENAMETOOLONG (a file
 * name longer than PATH_MAX - 1) or -ENOMEM; on failure a message (without
 * the URI) is in err. */
int conduit__opt_canon(enum conduit__opt o, const char *value, size_t len, char **ret, char *err,
                       size_t errlen);

/* Checks a decoded host name (not an address literal): letters, digits,
 * '-', '.', '_', '~' and non-ASCII bytes; no empty label; a numeric last
 * label is reserved for IPv4 literals. Returns 0, CONDUIT_E_URI or
 * -ENAMETOOLONG (a label over 63 bytes or a name over 253), with the
 * reason in *why. */
int conduit__host_name_check(const char *s, size_t len, const char **why);

/* GUIDs: 8-4-4-4-12 hex digits, optionally in braces, bytes in the order
 * they are written (RFC 4122). */
bool conduit__guid_parse(const char *s, size_t len, uint8_t ret[16]);
/* Writes the lower-case text form and a NUL into out[37]. */
void conduit__guid_format(const uint8_t g[16], char out[37]);

/* Well-known Hyper-V VM ids by name (case-insensitive) and back; the name
 * lookup returns NULL for other GUIDs. */
bool conduit__hv_vm_lookup(const char *name, size_t len, uint8_t ret[16]);
const char *conduit__hv_vm_name(const uint8_t vmid[16]);
/* The service GUID a vsock port stands for. */
void conduit__hv_service_from_port(uint32_t port, uint8_t ret[16]);

/* True for scheme names the URI grammar claims for itself (transports,
 * socat keywords, "tls"); a service table entry must not shadow them. */
bool conduit__uri_scheme_reserved(const char *scheme);

/* snprintf into err[errlen] (which may be NULL/0) that turns control
 * characters into '?', so a detail message stays one printable line. */
void conduit__errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void conduit__verrf(char *err, size_t errlen, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static inline int conduit__hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

#endif
