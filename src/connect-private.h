/* SPDX-License-Identifier: MIT */
/* Internal: what the blocking and the event-driven connectors share. */
#ifndef CONDUIT_CONNECT_PRIVATE_H
#define CONDUIT_CONNECT_PRIVATE_H

#include <stdbool.h>

#include "conduit/conduit.h"

/* Whether this build has a connector for e's kind. */
bool conduit__connect_supported(const conduit_endp *e);

/* The error (and detail message) for a kind without a connector. */
int conduit__connect_unsupported(const conduit_endp *e);

/* Errors that mean "not there yet" for retry=: the peer may come up (a VM
 * agent starting, a socket file about to be created). */
bool conduit__connect_retryable(int err);

#endif
