/* SPDX-License-Identifier: MIT */
/* Internal: what the event API's listener uses of conduit_listener. */
#ifndef CONDUIT_LISTENER_PRIVATE_H
#define CONDUIT_LISTENER_PRIVATE_H

#include <stdbool.h>

#include "conduit/conduit.h"

/* Accepts one queued connection without waiting and without its TLS
 * handshake: 0, -EAGAIN when none is queued, or an error of the listening
 * socket (-EMFILE, ...) with the listener's message set. */
int conduit__listener_accept_raw(conduit_listener *l, conduit_flow **ret);

/* True when accepted flows get TLS layers. */
bool conduit__listener_has_tls(const conduit_listener *l);

/* Wraps a raw accepted flow in the listener's TLS layers (server side,
 * handshakes not started). Frees raw on failure. */
int conduit__listener_wrap_tls(conduit_listener *l, conduit_flow *raw, conduit_flow **ret);

/* Records a detail message for conduit_listener_error_message(). */
void conduit__listener_note(conduit_listener *l, const char *msg);

#endif
