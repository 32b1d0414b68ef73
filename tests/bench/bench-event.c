/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "event": not written yet (issue 6). */
#include <stdio.h>

#include "bench.h"

void bench_event(const struct bench_opts *o)
{
        (void)o;
        printf("(group event: not measured yet)\n");
}
