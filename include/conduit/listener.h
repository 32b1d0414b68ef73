/* SPDX-License-Identifier: MIT */
/* libconduit: listeners (blocking API).
 *
 * ctx may be NULL: the process's default context (see conduit/connect.h). */
#ifndef CONDUIT_LISTENER_H
#define CONDUIT_LISTENER_H

#include <stdbool.h>

#include "conduit/common.h"
#include "conduit/context.h"
#include "conduit/endp.h"
#include "conduit/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct conduit_listener conduit_listener;

/* Binds and listens on uri:
 *  - tcp://HOST:PORT (the first address HOST resolves to), tcp://:PORT
 *    (dual-stack wildcard), tcp4://:PORT, tcp6://:PORT (IPv6 only); port 0
 *    picks a free port, readable back with conduit_listener_endp();
 *  - unix:///path (options mode=0660 and unlink=1, which removes a stale
 *    socket first; the socket file the listener created is removed when it
 *    is freed), unix-abstract:NAME;
 *  - fd:N, an inherited listening socket (borrowed, not closed on free).
 * Errors: resolve errors, -EADDRINUSE, -EACCES, -ENAMETOOLONG,
 * CONDUIT_E_UNSUPPORTED, other negated errno values; details in
 * conduit_ctx_error_message(). */
CONDUIT_EXPORT int conduit_listen(conduit_ctx *ctx, const char *uri, conduit_listener **ret);

/* As conduit_listen(), from a parsed endp. */
CONDUIT_EXPORT int conduit_listen_endp(conduit_ctx *ctx, const conduit_endp *e,
                                       conduit_listener **ret);

/* Waits for the next connection and returns it as a blocking flow with the
 * context's default timeouts. Errors: -EAGAIN (non-blocking, nothing
 * pending), -ETIMEDOUT (accept timeout), -EMFILE/-ENFILE (descriptor limit:
 * the connection stays queued; returned at once, never retried in a loop),
 * other negated errno values. */
CONDUIT_EXPORT int conduit_listener_accept(conduit_listener *l, conduit_flow **ret);

/* The bound endpoint (with the real port when 0 was asked). Owned by l. */
CONDUIT_EXPORT const conduit_endp *conduit_listener_endp(const conduit_listener *l);

/* The listening descriptor, for event loops. */
CONDUIT_EXPORT int conduit_listener_fd(const conduit_listener *l);

CONDUIT_EXPORT int conduit_listener_set_nonblocking(conduit_listener *l, bool nonblocking);

/* Accept timeout in ms; negative means none (the default). */
CONDUIT_EXPORT int conduit_listener_set_timeout(conduit_listener *l, int ms);

/* Detail message of the last failure on l ("" if none). */
CONDUIT_EXPORT const char *conduit_listener_error_message(const conduit_listener *l);

/* Stops listening and frees l. Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_listener *conduit_listener_free(conduit_listener *l);

static inline void conduit_listener_freep(conduit_listener **l)
{
        conduit_listener_free(*l);
}

#ifdef __cplusplus
}
#endif

#endif
