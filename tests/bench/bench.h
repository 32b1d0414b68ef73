/* SPDX-License-Identifier: MIT */
/* conduit-bench's harness: each group of cases lives in its own file
 * (bench-flow.c, bench-tls.c, ...) and reports through bench_record(). */
#ifndef CONDUIT_BENCH_H
#define CONDUIT_BENCH_H

#include <stdbool.h>
#include <stddef.h>

struct bench_opts {
        int reps;           /* repetitions per figure (alternating) */
        bool quick;         /* smaller transfers and counts */
        const char *dir;    /* a scratch directory, removed at exit */
        const char *cat;    /* the conduit-cat to run (relay cases) */
        const char *srcdir; /* the source tree */
};

/* Seconds on the monotonic clock. */
double bench_now(void);

/* Prints what failed (err: a negative errno or CONDUIT_E_*) and exits 1. */
void bench_die(const char *what, int err) __attribute__((noreturn));

/* The median of v[0..n) (sorts v). */
double bench_median(double *v, int n);

/* Records one figure: name, what the baseline is ("raw", "socat", ...),
 * the unit, whether higher is better, and reps measurements of each side
 * (alternating). Prints the table row at once. */
void bench_record(const char *name, const char *against, const char *unit, bool higher_better,
                  double *base, double *cond, int reps);

/* Writes a self-signed certificate for localhost and 127.0.0.1 (its own
 * trust anchor: the client's cafile) and its key: EC P-256, or RSA-2048. */
void bench_make_cert(const char *cert_path, const char *key_path, bool rsa);

/* Removes a scratch directory and what is in it (no shell; symbolic links
 * are removed, not followed). Reports what it could not remove. */
void bench_rmtree(const char *dir);

/* The groups, in the order a full run takes them. */
void bench_flow(const struct bench_opts *o);
void bench_tls(const struct bench_opts *o);
void bench_event(const struct bench_opts *o);
void bench_relay(const struct bench_opts *o);
void bench_memory(const struct bench_opts *o);

#endif
