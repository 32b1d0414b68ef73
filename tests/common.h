/* SPDX-License-Identifier: MIT */
/* Shared fixtures for the Check suites. */
#ifndef CONDUIT_TESTS_COMMON_H
#define CONDUIT_TESTS_COMMON_H

#include <check.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "conduit/conduit.h"

/* Asserts r >= 0, printing conduit_strerror(r) and the thread's detail
 * message otherwise. */
#define tc_ok(expr)                                                                           \
        do {                                                                                  \
                long long tc_r_ = (long long)(expr);                                          \
                ck_assert_msg(tc_r_ >= 0, "%s failed: %lld (%s) [%s]", #expr, tc_r_,          \
                              conduit_strerror((int)tc_r_), conduit_ctx_error_message(NULL)); \
        } while (0)

/* Asserts expr == want (negative codes), naming both. */
#define tc_err(expr, want)                                                                       \
        do {                                                                                     \
                long long tc_r_ = (long long)(expr);                                             \
                ck_assert_msg(tc_r_ == (long long)(want), "%s = %lld (%s), want %lld (%s) [%s]", \
                              #expr, tc_r_, conduit_strerror((int)tc_r_), (long long)(want),     \
                              conduit_strerror((int)(want)), conduit_ctx_error_message(NULL));   \
        } while (0)

/* Number of open descriptors of this process (/proc/self/fd). */
int tc_fd_count(void);

/* A fresh private directory under $TMPDIR (or /tmp); removed with its
 * contents by tc_rmtree(). Returns a malloc'd path. */
char *tc_tmpdir(void);
void tc_rmtree(const char *path);

/* A unique abstract socket name for this process and call. */
char *tc_abstract_name(void);

/* Listens on uri and returns the listener; *ret_uri (malloc'd) is the URI a
 * client connects to (the bound endp, with the real port). */
conduit_listener *tc_listen(const char *uri, char **ret_uri);

/* Connects a client to a fresh listener on uri and accepts it. */
void tc_pair(const char *uri, conduit_flow **client, conduit_flow **server);

/* Deterministic pseudo-random bytes. */
void tc_fill(uint8_t *buf, size_t n, uint32_t seed);

/* Writes all of buf (blocking flow), asserting success. */
void tc_write_all(conduit_flow *f, const void *buf, size_t n);

/* Reads until EOF into a malloc'd buffer; *len gets the size. Asserts no
 * error. */
uint8_t *tc_read_all(conduit_flow *f, size_t *len);

pthread_t tc_spawn(void *(*fn)(void *), void *arg);
void *tc_join(pthread_t t);

/* Call first in main(): under the valgrind test setup
 * (CONDUIT_TEST_VALGRIND=1) it re-runs the program under memcheck. */
void tc_init(int argc, char **argv);

/* Runs the suite with TAP output on stdout; returns the exit status. */
int tc_run(Suite *s);

#endif
