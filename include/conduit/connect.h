/* SPDX-License-Identifier: MIT */
/* libconduit: resolving and connecting (blocking API).
 *
 * ctx may be NULL in every function here: the process's default context is
 * then used (one for every call given NULL, made on first use with
 * conduit_ctx_new()'s defaults and never freed; it cannot be configured,
 * and it keeps TLS configurations and client sessions like any context,
 * so clients connecting with NULL resume their TLS sessions). */
#ifndef CONDUIT_CONNECT_H
#define CONDUIT_CONNECT_H

#include "conduit/common.h"
#include "conduit/context.h"
#include "conduit/endp.h"
#include "conduit/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Resolves a URI into the ordered list of endps a connect would try: the
 * service table, rewrite rules, static hosts, then getaddrinfo() (all
 * addresses, IPv6 and IPv4 interleaved as RFC 8305 recommends). Endps that
 * need no resolution come back as parsed. On success *ret is a
 * NULL-terminated array (free it with conduit_endp_list_free()) and the
 * return value its length (>= 1). Errors: those of conduit_endp_parse(),
 * CONDUIT_E_NOT_FOUND, -ENOMEM; details in conduit_ctx_error_message(). */
CONDUIT_EXPORT int conduit_resolve(conduit_ctx *ctx, const char *uri, conduit_endp ***ret);

/* As conduit_resolve(), starting from a parsed endp. */
CONDUIT_EXPORT int conduit_resolve_endp(conduit_ctx *ctx, const conduit_endp *e,
                                        conduit_endp ***ret);

/* Frees a list returned by conduit_resolve(). Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_endp **conduit_endp_list_free(conduit_endp **list);

/* Resolves uri and connects to the first candidate that answers (Happy
 * Eyeballs for TCP: the next attempt starts after the context's attempt
 * delay or as soon as one fails; other transports in order), within the
 * connect timeout (from the URI's connect_timeout option, else the context).
 * Blocks. On success *ret is a blocking flow with the context's default
 * timeouts. Errors: resolve errors, -ECONNREFUSED, -ETIMEDOUT,
 * -ENOENT (no such Unix socket), -ENAMETOOLONG, CONDUIT_E_UNSUPPORTED (a
 * transport this build has no backend for), other negated errno values;
 * details in conduit_ctx_error_message(). */
CONDUIT_EXPORT int conduit_connect(conduit_ctx *ctx, const char *uri, conduit_flow **ret);

/* As conduit_connect(), starting from a parsed (or resolved) endp. */
CONDUIT_EXPORT int conduit_connect_endp(conduit_ctx *ctx, const conduit_endp *e,
                                        conduit_flow **ret);

#ifdef __cplusplus
}
#endif

#endif
