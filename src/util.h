/* SPDX-License-Identifier: MIT */
/* Internal helpers shared across the library. */
#ifndef CONDUIT_UTIL_H
#define CONDUIT_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define CONDUIT__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define conduit__container_of(ptr, type, member) \
        ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Monotonic clock in milliseconds. */
static inline int64_t conduit__now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deadline helpers: a deadline is an absolute conduit__now_ms() value, or -1
 * for none. */
static inline int64_t conduit__deadline(int timeout_ms)
{
        return timeout_ms < 0 ? -1 : conduit__now_ms() + timeout_ms;
}

/* Milliseconds left until deadline for poll(): -1 for none, 0 if passed. */
static inline int conduit__remaining(int64_t deadline)
{
        if (deadline < 0)
                return -1;
        int64_t left = deadline - conduit__now_ms();
        if (left <= 0)
                return 0;
        return left > 1000000000 ? 1000000000 : (int)left;
}

static inline bool conduit__streq(const char *a, const char *b)
{
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* strdup that keeps NULL. Sets *ok to false on ENOMEM. */
char *conduit__strdup_null(const char *s, bool *ok);

/* Parses a decimal (or 0x hexadecimal) unsigned number filling the whole of
 * [s, s+len) into *ret; fails (returns false) on empty input, signs, spaces,
 * overflow beyond max. A leading 0 is decimal. */
bool conduit__parse_uint(const char *s, size_t len, uint64_t max, uint64_t *ret);

/* Lower-cases ASCII in place. */
void conduit__ascii_lower(char *s);

#endif
