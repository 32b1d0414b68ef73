/* SPDX-License-Identifier: MIT */
/* libconduit: the context.
 *
 * A conduit_ctx holds the resolver configuration (service table, rewrite
 * rules, static host entries), default timeouts, the Happy Eyeballs delay
 * and an optional log callback. Configure it from one thread, then share it
 * read-only between threads. Flows and listeners keep a reference, so a
 * context may be freed while they live. */
#ifndef CONDUIT_CONTEXT_H
#define CONDUIT_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "conduit/common.h"
#include "conduit/endp.h"
#include "conduit/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct conduit_ctx conduit_ctx;

/* Log levels (syslog numbering). */
#define CONDUIT_LOG_ERR     3
#define CONDUIT_LOG_WARNING 4
#define CONDUIT_LOG_INFO    6
#define CONDUIT_LOG_DEBUG   7

typedef void conduit_log_fn(void *userdata, int level, const char *message);

/* Creates a context with the built-in service table, /etc/services as the
 * fallback, no rewrites, no static hosts, no read/write/connect timeouts,
 * 10 s close and handshake timeouts and a 250 ms Happy Eyeballs attempt
 * delay.
 * Errors: -ENOMEM. */
CONDUIT_EXPORT int conduit_ctx_new(conduit_ctx **ret);

/* Drops the caller's reference. Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_ctx *conduit_ctx_free(conduit_ctx *ctx);

/* Adds (or replaces) a URI scheme in the service table: SCHEME://HOST[:PORT]
 * then means tcp://HOST:PORT, wrapped in TLS if tls is true. User entries
 * take precedence over built-in ones. Errors: -EINVAL (bad scheme name or
 * port 0), -EEXIST (a transport scheme such as "tcp"), -ENOMEM. */
CONDUIT_EXPORT int conduit_ctx_add_service(conduit_ctx *ctx, const char *scheme, uint16_t port,
                                           bool tls);

/* Looks a scheme up the way the resolver does: user entries, built-in
 * entries, then the services file. Errors: CONDUIT_E_SCHEME. */
CONDUIT_EXPORT int conduit_ctx_lookup_service(conduit_ctx *ctx, const char *scheme,
                                              uint16_t *ret_port, bool *ret_tls);

/* Replaces /etc/services as the fallback file (NULL disables it). */
CONDUIT_EXPORT int conduit_ctx_set_services_file(conduit_ctx *ctx, const char *path);

/* Adds a rewrite rule: a TCP host name equal to suffix, or ending in
 * ".suffix" (compared by DNS labels, case-insensitively, a trailing dot
 * ignored), resolves to target instead. The longest matching suffix wins.
 * target is a URI template in which {host} stands for the whole host name,
 * {label} for the labels before the suffix and {port} for the port, e.g.
 * conduit_ctx_add_rewrite(ctx, "vm.internal", "vsock://{label}:{port}").
 * A TLS layer of the original URI is kept, with the original host as its
 * server name. Errors: -EINVAL, CONDUIT_E_URI (the template cannot parse),
 * -ENOMEM. */
CONDUIT_EXPORT int conduit_ctx_add_rewrite(conduit_ctx *ctx, const char *suffix,
                                           const char *target);

/* Adds a static host entry: name resolves to address (an IPv4 or IPv6
 * literal, with %zone) without asking DNS. Several calls for one name give
 * several addresses, tried in the order added. Errors: -EINVAL. */
CONDUIT_EXPORT int conduit_ctx_add_host(conduit_ctx *ctx, const char *name, const char *address);

/* A hosts(5)-format file whose names resolve before DNS is asked (after
 * static hosts). The blocking resolver reads it at each resolution, so it
 * may change, and stops there for the names it lists; the event API hands
 * it to a loop's evdns once, when the loop first resolves a name, ahead of
 * /etc/hosts (docs/event.md). NULL removes it. Errors: -EINVAL, -ENOMEM. */
CONDUIT_EXPORT int conduit_ctx_set_hosts_file(conduit_ctx *ctx, const char *path);

/* Default timeout for flows and connects made with this context, in ms;
 * negative means none. Errors: -EINVAL. */
CONDUIT_EXPORT int conduit_ctx_set_timeout(conduit_ctx *ctx, conduit_timeout which, int ms);
CONDUIT_EXPORT int conduit_ctx_get_timeout(const conduit_ctx *ctx, conduit_timeout which);

/* Delay before the next Happy Eyeballs attempt starts (RFC 8305; 250 ms by
 * default). Errors: -EINVAL (negative). */
CONDUIT_EXPORT int conduit_ctx_set_happy_eyeballs_delay(conduit_ctx *ctx, int ms);

/* Debug traces (resolution, connect attempts, handshakes) go to fn; NULL
 * turns them off (the default). The library never prints on its own. */
CONDUIT_EXPORT void conduit_ctx_set_log(conduit_ctx *ctx, conduit_log_fn *fn, void *userdata);

/* Parses a URI like conduit_endp_parse(), with this context's service
 * table. Errors as conduit_endp_parse(). */
CONDUIT_EXPORT int conduit_ctx_parse(conduit_ctx *ctx, const char *uri, conduit_endp **ret);

/* The detail message of the last failed call on ctx in the calling thread
 * (which address was refused, which option was unknown, ...); "" if none. */
CONDUIT_EXPORT const char *conduit_ctx_error_message(const conduit_ctx *ctx);

static inline void conduit_ctx_freep(conduit_ctx **ctx)
{
        conduit_ctx_free(*ctx);
}

#ifdef __cplusplus
}
#endif

#endif
