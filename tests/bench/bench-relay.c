/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "relay": not written yet (issue 6). */
#include <stdio.h>

#include "bench.h"

void bench_relay(const struct bench_opts *o)
{
        (void)o;
        printf("(group relay: not measured yet)\n");
}
