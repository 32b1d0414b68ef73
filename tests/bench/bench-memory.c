/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "memory": not written yet (issue 6). */
#include <stdio.h>

#include "bench.h"

void bench_memory(const struct bench_opts *o)
{
        (void)o;
        printf("(group memory: not measured yet)\n");
}
