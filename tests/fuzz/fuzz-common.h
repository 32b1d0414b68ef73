/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer targets of tests/fuzz/: a failed invariant
 * prints what broke and aborts, which libFuzzer reports as a crash with
 * the input that caused it. */
#ifndef CONDUIT_FUZZ_COMMON_H
#define CONDUIT_FUZZ_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

__attribute__((format(printf, 1, 2), noreturn)) static inline void fuzz_fail(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("fuzz invariant broken: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        abort();
}

#define FUZZ_CHECK(cond, ...)                   \
        do {                                    \
                if (!(cond))                    \
                        fuzz_fail(__VA_ARGS__); \
        } while (0)

#endif
