/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "tls": not written yet (issue 6). */
#include <stdio.h>

#include "bench.h"

void bench_tls(const struct bench_opts *o)
{
        (void)o;
        printf("(group tls: not measured yet)\n");
}
