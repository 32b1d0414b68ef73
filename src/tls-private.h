/* SPDX-License-Identifier: MIT */
/* Internal: the TLS backend's entry points for the connector and the
 * listener, and the per-context SSL_CTX cache. */
#ifndef CONDUIT_TLS_PRIVATE_H
#define CONDUIT_TLS_PRIVATE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "conduit/conduit.h"
#include "endp-private.h"

/* The TLS settings of one layer: the layer's own options, else the
 * context's defaults. Strings point into the endp or the context. */
struct conduit__tls_config {
        bool server;
        int verify; /* -1 unset, 0, 1 */
        const char *opt[CONDUIT__OPT_COUNT];
};

void conduit__tls_config(conduit_ctx *ctx, const conduit_endp *tls, bool server,
                         struct conduit__tls_config *ret);

/* An SSL_CTX for a configuration, from ctx's cache or built (then cached).
 * Returns a new reference (SSL_CTX_free it), or NULL with a message in
 * err. Thread-safe. */
SSL_CTX *conduit__tls_sslctx(conduit_ctx *ctx, const struct conduit__tls_config *c, char *err,
                             size_t errlen);

/* "h2,http/1.1" in ALPN wire format (length-prefixed), followed by a NUL.
 * Caller frees. NULL on ENOMEM. */
unsigned char *conduit__tls_alpn_wire(const char *list, unsigned *ret_len);

/* Client session resumption. The key names the peer and every setting of
 * the connection that shapes verification or identity (server name,
 * transport peer, verify, CAs, pins, client certificate, ALPN, versions):
 * a session is only ever offered where it was made. NULL when the cache is
 * off for this connection (session_cache=0, no transport peer) or on
 * ENOMEM. Caller frees. */
char *conduit__tls_session_key(const struct conduit__tls_config *c, const char *name,
                               const conduit_endp *peer);

/* The newest session under key, as a new reference (SSL_SESSION_free it),
 * or NULL. A TLS 1.3 session leaves the cache (tickets are single use).
 * Thread-safe. */
SSL_SESSION *conduit__tls_session_get(conduit_ctx *ctx, const char *key);

/* Stores a session under key, taking over the caller's reference when it
 * returns true (false: not resumable, or ENOMEM). Thread-safe. */
bool conduit__tls_session_put(conduit_ctx *ctx, const char *key, SSL_SESSION *sess);

/* The new-session callback of client SSL_CTXs (defined by the TLS flow,
 * which knows the context and key of its SSL). */
int conduit__tls_new_session(SSL *ssl, SSL_SESSION *sess);

/* Frees a context's caches. */
void conduit__tls_ctx_cleanup(conduit_ctx *ctx);

/* Wraps inner in a TLS flow for the TLS endp `tls` (its options; its inner
 * endp, if any, names the transport peer). On success the TLS flow owns
 * inner. Sets the thread's detail message on failure. */
int conduit__tls_wrap(conduit_ctx *ctx, conduit_flow *inner, const conduit_endp *tls, bool server,
                      conduit_flow **ret);

/* Advances the handshake once (never waits): 0 done, -EAGAIN (see wants),
 * or an error with the detail on the flow. */
int conduit__tls_handshake_step(conduit_flow *f);

/* Runs the handshake to the end or the deadline (absolute ms, -1 none). */
int conduit__tls_handshake(conduit_flow *f, int64_t deadline);

/* True for a TLS flow. */
bool conduit__is_tls(const conduit_flow *f);

#endif
