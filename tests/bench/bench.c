/* SPDX-License-Identifier: MIT */
/* conduit-bench: libconduit against what it replaces, measured side by side
 * in one run. Each figure alternates baseline and libconduit for several
 * repetitions and reports both medians and the ratio libconduit/baseline
 * (higher is better for rates, lower for times and memory; the table says
 * which). docs/performance.md describes the cases and the method.
 *
 *   conduit-bench [--reps N] [--json FILE] [--quick] [--smoke] [GROUP...]
 *
 * --smoke: one quick repetition of every case, as TAP (the table as
 * comments): the test suite runs it to keep the benchmark working; its
 * figures mean nothing.
 *
 * GROUPs: flow tls event relay memory (default: all of them). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "conduit/conduit.h"

#ifndef BENCH_CONDUIT_CAT
#define BENCH_CONDUIT_CAT "conduit-cat"
#endif
#ifndef BENCH_SRCDIR
#define BENCH_SRCDIR "."
#endif

double bench_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *what, int err)
{
        fprintf(stderr, "conduit-bench: %s: %s (%s)\n", what, conduit_strerror(err),
                conduit_ctx_error_message(NULL));
        exit(1);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
        qsort(v, (size_t)n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct result {
        char name[64];
        char against[32];
        const char *unit;
        double base, conduit;
        bool higher_better;
};

static struct result results[128];
static int nresults;
static bool tap; /* --smoke: TAP, the table rows as comments */

void bench_record(const char *name, const char *against, const char *unit, bool higher_better,
                  double *base, double *cond, int reps)
{
        if (nresults == (int)(sizeof(results) / sizeof(results[0])))
                bench_die("too many results", -ENOSPC);
        struct result *r = &results[nresults++];
        snprintf(r->name, sizeof(r->name), "%s", name);
        snprintf(r->against, sizeof(r->against), "%s", against);
        r->unit = unit;
        r->higher_better = higher_better;
        r->base = bench_median(base, reps);
        r->conduit = bench_median(cond, reps);
        printf("%s%-34s %-14s %12.1f %12.1f %-7s %6.3f %s\n", tap ? "# " : "", r->name, r->against,
               r->base, r->conduit, unit, r->conduit / r->base,
               higher_better ? "(higher)" : "(lower)");
        fflush(stdout);
}

static void write_json(const char *path, int reps)
{
        FILE *f = fopen(path, "w");
        if (!f)
                bench_die(path, -errno);
        fprintf(f, "{\"reps\": %d, \"results\": [\n", reps);
        for (int i = 0; i < nresults; i++) {
                const struct result *r = &results[i];
                fprintf(f,
                        "  {\"case\": \"%s\", \"baseline_is\": \"%s\", \"unit\": \"%s\", "
                        "\"baseline\": %.3f, \"libconduit\": %.3f, \"ratio\": %.4f, "
                        "\"higher_is_better\": %s}%s\n",
                        r->name, r->against, r->unit, r->base, r->conduit, r->conduit / r->base,
                        r->higher_better ? "true" : "false", i + 1 < nresults ? "," : "");
        }
        fprintf(f, "]}\n");
        if (fclose(f) != 0)
                bench_die(path, -errno);
}

static char scratch[] = "/tmp/conduit-bench-XXXXXX";

static void remove_scratch(void)
{
        bench_rmtree(scratch);
}

static const struct {
        const char *name;
        void (*run)(const struct bench_opts *o);
} groups[] = {
        { "flow", bench_flow },   { "tls", bench_tls },       { "event", bench_event },
        { "relay", bench_relay }, { "memory", bench_memory },
};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

static void usage(FILE *out, const char *prog)
{
        fprintf(out, "usage: %s [--reps N] [--json FILE] [--quick] [--smoke] [GROUP...]\n", prog);
        fprintf(out, "groups:");
        for (size_t g = 0; g < NGROUPS; g++)
                fprintf(out, " %s", groups[g].name);
        fprintf(out, " (default: all)\n");
}

int main(int argc, char **argv)
{
        struct bench_opts o = { .reps = 7 };
        const char *json = NULL;
        bool want[NGROUPS] = { false }, any = false;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
                        o.reps = atoi(argv[++i]);
                        if (o.reps < 1 || o.reps > 99) {
                                fprintf(stderr, "conduit-bench: --reps: 1 to 99\n");
                                return 2;
                        }
                } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
                        json = argv[++i];
                } else if (strcmp(argv[i], "--quick") == 0) {
                        o.quick = true;
                } else if (strcmp(argv[i], "--smoke") == 0) {
                        o.quick = tap = true;
                } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                        usage(stdout, argv[0]);
                        return 0;
                } else {
                        size_t g = 0;
                        while (g < NGROUPS && strcmp(argv[i], groups[g].name) != 0)
                                g++;
                        if (g == NGROUPS) {
                                usage(stderr, argv[0]);
                                return 2;
                        }
                        want[g] = any = true;
                }
        }
        if (o.quick && o.reps > 3)
                o.reps = 3;
        if (tap)
                o.reps = 1;
        signal(SIGPIPE, SIG_IGN); /* raw baselines write to sockets too */
        if (!mkdtemp(scratch))
                bench_die("mkdtemp", -errno);
        atexit(remove_scratch);
        o.dir = scratch;
        o.cat = getenv("CONDUIT_CAT") ? getenv("CONDUIT_CAT") : BENCH_CONDUIT_CAT;
        o.srcdir = BENCH_SRCDIR;
        int ngroups = 0, done = 0;
        for (size_t g = 0; g < NGROUPS; g++)
                ngroups += !any || want[g];
        if (tap)
                printf("1..%d\n", ngroups);
        printf("%s%-34s %-14s %12s %12s %-7s %6s\n", tap ? "# " : "", "case", "baseline is",
               "baseline", "libconduit", "unit", "ratio");
        for (size_t g = 0; g < NGROUPS; g++) {
                if (any && !want[g])
                        continue;
                groups[g].run(&o);
                if (tap) /* a group that fails exits through bench_die() */
                        printf("ok %d - conduit-bench %s\n", ++done, groups[g].name);
                fflush(stdout);
        }
        if (json)
                write_json(json, o.reps);
        return 0;
}
