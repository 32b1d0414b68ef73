/* SPDX-License-Identifier: MIT */
/* libconduit: macros shared by the public headers. */
#ifndef CONDUIT_COMMON_H
#define CONDUIT_COMMON_H

#if defined(__GNUC__) || defined(__clang__)
#define CONDUIT_EXPORT            __attribute__((visibility("default")))
#define CONDUIT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CONDUIT_EXPORT
#define CONDUIT_PRINTF(fmt, args)
#endif

#define CONDUIT_VERSION_MAJOR  0
#define CONDUIT_VERSION_MINOR  1
#define CONDUIT_VERSION_MICRO  0
#define CONDUIT_VERSION_STRING "0.1.0"

#endif
