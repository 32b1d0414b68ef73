/* SPDX-License-Identifier: MIT */
/* libconduit: TLS over any flow (OpenSSL 3).
 *
 * Most programs never call these: a "tls+" URI (tls+tcp://h:443,
 * tls+unix:///run/a.sock?servername=agent, https://h) makes
 * conduit_connect() and conduit_listen() do TLS. The functions here set
 * context-wide defaults and wrap a flow the program already has.
 *
 * Secure by default (docs/tls.md): chain verification against the system
 * trust store (or cafile/capath), the host name checked (DNS names with SNI,
 * IP literals against IP SANs), TLS 1.2 at least. Over a transport without
 * a host name (Unix, abstract, vsock, fd, a user flow) a servername, a pin
 * or an explicit verify=0 is required. */
#ifndef CONDUIT_TLS_H
#define CONDUIT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "conduit/common.h"
#include "conduit/context.h"
#include "conduit/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets a context-wide default for a TLS option, with the names and values
 * of the URI options: "verify", "cafile", "capath", "cert", "key", "alpn",
 * "min_version", "max_version", "pin", "session_cache" ("0" turns session
 * resumption off; docs/tls.md), "ciphersuites" (TLS 1.3 suites, preferred
 * first) ("servername" too, though it rarely makes
 * sense for every peer). A URI's own option wins. value NULL removes
 * the default. Errors: CONDUIT_E_OPTION (unknown or not a TLS option),
 * CONDUIT_E_OPTION_VALUE, -ENAMETOOLONG, -EINVAL, -ENOMEM. */
CONDUIT_EXPORT int conduit_ctx_set_tls_option(conduit_ctx *ctx, const char *key, const char *value);

/* Supplies the passphrase of encrypted private keys: writes it (not
 * NUL-terminated) into buf[size] and returns its length, or -1 to fail. */
typedef int conduit_tls_passphrase_fn(void *userdata, char *buf, int size);

CONDUIT_EXPORT void conduit_ctx_set_tls_passphrase(conduit_ctx *ctx, conduit_tls_passphrase_fn *fn,
                                                   void *userdata);

/* Wraps inner in a TLS client (or server) flow. options are TLS URI options
 * as a query string without the '?' ("servername=agent&cafile=/ca.pem",
 * "cert=/s.pem&key=/s.key"); NULL or "" uses the context's defaults only.
 * A server needs cert and key; cafile/capath on a server request and
 * require client certificates (mTLS).
 * The handshake is not done here: it runs on the first read or write, or
 * explicitly with conduit_tls_handshake(). On success the new flow owns
 * inner (freeing it frees inner); on failure inner is left to the caller.
 * The TLS flow starts in inner's blocking mode with inner's timeouts.
 * Errors: option errors as conduit_ctx_set_tls_option(), CONDUIT_E_TLS
 * (certificates or keys that do not load), -EINVAL (over a transport
 * without a host name and neither servername, pin nor verify=0 given),
 * -ENOMEM. Details in conduit_ctx_error_message(). */
CONDUIT_EXPORT int conduit_tls_client(conduit_ctx *ctx, conduit_flow *inner, const char *options,
                                      conduit_flow **ret);
CONDUIT_EXPORT int conduit_tls_server(conduit_ctx *ctx, conduit_flow *inner, const char *options,
                                      conduit_flow **ret);

/* Runs (or, non-blocking, advances) the handshake of a TLS flow, bounded by
 * its CONDUIT_TIMEOUT_HANDSHAKE. Returns 0 once done (at once if it was),
 * -EAGAIN (non-blocking; see conduit_flow_wants()), CONDUIT_E_TLS_VERIFY
 * (the peer failed verification: conduit_flow_error_message() says why:
 * expired, host name mismatch, unknown CA, pin mismatch, ...), CONDUIT_E_TLS,
 * -ETIMEDOUT, transport errors; -EINVAL for a flow that is not TLS. */
CONDUIT_EXPORT int conduit_tls_handshake(conduit_flow *f);

/* By default an EOF of the transport without the peer's close_notify reads
 * as CONDUIT_E_TLS_TRUNCATED (an attacker may have cut the stream). Allowing
 * truncation makes it a plain EOF (for peers known to close that way).
 * Errors: -EINVAL (not a TLS flow). */
CONDUIT_EXPORT int conduit_tls_set_allow_truncation(conduit_flow *f, bool allow);

#ifdef __cplusplus
}
#endif

#endif
