/* SPDX-License-Identifier: MIT */
/* libconduit: error codes.
 *
 * Every function that can fail returns a negative number: either a negated
 * errno value (-ECONNREFUSED, -ETIMEDOUT, -EPIPE, -ECONNRESET, -ENAMETOOLONG,
 * ...) or one of the library codes below, which all lie below -4000 so they
 * never collide with an errno. Nothing in libconduit reads or sets errno for
 * the caller. */
#ifndef CONDUIT_ERROR_H
#define CONDUIT_ERROR_H

#include "conduit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum conduit_error {
        /* The URI is not well formed (syntax, bad number, bad GUID, bad
         * percent-encoding, ...). A path or name too long to ever fit is
         * -ENAMETOOLONG instead. */
        CONDUIT_E_URI = -4001,
        /* The URI scheme is neither built in nor in the service table. */
        CONDUIT_E_SCHEME = -4002,
        /* A query option is unknown, or does not apply to this transport. */
        CONDUIT_E_OPTION = -4003,
        /* A known option has a value it cannot take. */
        CONDUIT_E_OPTION_VALUE = -4004,
        /* The host name does not resolve (no such name, no address). */
        CONDUIT_E_NOT_FOUND = -4005,
        /* The transport is not available in this build or on this system. */
        CONDUIT_E_UNSUPPORTED = -4006,
        /* TLS protocol failure (handshake, alert, bad record). */
        CONDUIT_E_TLS = -4007,
        /* The TLS peer failed verification (chain, name, pin, dates). */
        CONDUIT_E_TLS_VERIFY = -4008,
        /* The TLS peer closed the transport without close_notify. */
        CONDUIT_E_TLS_TRUNCATED = -4009,
        /* A transport-level handshake (e.g. hybrid vsock) was violated. */
        CONDUIT_E_PROTOCOL = -4010
};

/* Names any error this library returns: library codes and negated errno
 * values alike (a positive errno is accepted too). Never NULL; the string is
 * static and must not be freed. Thread-safe. */
CONDUIT_EXPORT const char *conduit_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
