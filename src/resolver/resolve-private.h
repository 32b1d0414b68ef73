/* SPDX-License-Identifier: MIT */
/* Internal: resolution in two phases, for the event API, whose DNS lookups
 * go through evdns instead of a blocking getaddrinfo(). */
#ifndef CONDUIT_RESOLVE_PRIVATE_H
#define CONDUIT_RESOLVE_PRIVATE_H

#include <netdb.h>

#include "conduit/conduit.h"

/* conduit__resolve_probe() needs a DNS answer first (not an error code:
 * neither an errno nor a library code). */
#define CONDUIT__NEED_DNS (-3999)

/* Resolves e as far as it can without DNS: a count > 0 and the list as
 * conduit_resolve_endp() gives, or CONDUIT__NEED_DNS with the one name to
 * look up (malloc'd) and its family (AF_UNSPEC, AF_INET, AF_INET6), or an
 * error. */
int conduit__resolve_probe(conduit_ctx *ctx, const conduit_endp *e, conduit_endp ***ret,
                           char **ret_name, int *ret_family);

/* Resolves e with answer as the result of looking that name up (err < 0:
 * the lookup failed, errmsg saying why). */
int conduit__resolve_answer(conduit_ctx *ctx, const conduit_endp *e, const struct addrinfo *answer,
                            int err, const char *errmsg, conduit_endp ***ret);

#endif
