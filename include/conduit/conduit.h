/* SPDX-License-Identifier: MIT */
/* libconduit: one way to open, accept and use reliable byte streams to any
 * peer a Linux machine reaches with kernel sockets. This umbrella header
 * includes the whole public API. */
#ifndef CONDUIT_CONDUIT_H
#define CONDUIT_CONDUIT_H

#include "conduit/common.h"
#include "conduit/error.h"
#include "conduit/endp.h"
#include "conduit/flow.h"
#include "conduit/context.h"
#include "conduit/connect.h"
#include "conduit/listener.h"
#include "conduit/tls.h"
#include "conduit/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, e.g. "0.1.0". */
CONDUIT_EXPORT const char *conduit_version(void);

#ifdef __cplusplus
}
#endif

#endif
