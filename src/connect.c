/* SPDX-License-Identifier: MIT */
/* The connector: resolve, then dispatch each candidate to its backend by
 * endp kind. TCP candidates race with Happy Eyeballs; others go in order. */
#include <errno.h>
#include <stdlib.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "util.h"

static conduit__connect_fn *const connectors[] = {
        [CONDUIT_ENDP_TCP] = conduit__tcp_connect,
        [CONDUIT_ENDP_UNIX] = conduit__unix_connect,
        [CONDUIT_ENDP_FD] = conduit__fd_connect,
};

/* Why a kind has no connector in this build. */
static int unsupported(const conduit_endp *e)
{
        switch (e->kind) {
        case CONDUIT_ENDP_VCHAN:
                return conduit__set_error(CONDUIT_E_UNSUPPORTED,
                                          "this build has no Xen vchan support");
        case CONDUIT_ENDP_UNKNOWN:
                return conduit__set_error(CONDUIT_E_NOT_FOUND, "unknown endpoint: %s",
                                          e->host ? e->host : "");
        default:
                return conduit__set_error(CONDUIT_E_UNSUPPORTED,
                                          "this build of libconduit has no %s backend",
                                          conduit_endp_kind_name(e->kind));
        }
}

static int connect_one(conduit_ctx *ctx, const conduit_endp *e, int64_t deadline,
                       conduit_flow **ret)
{
        if ((size_t)e->kind >= CONDUIT__ARRAY_SIZE(connectors) || !connectors[e->kind])
                return unsupported(e);
        return connectors[e->kind](ctx, e, deadline, ret);
}

static int connect_list(conduit_ctx *ctx, conduit_endp **list, size_t n, conduit_flow **ret)
{
        const conduit_endp *first = conduit__endp_transport(list[0]);
        int timeout = conduit__endp_opt_ms(first, CONDUIT__OPT_CONNECT_TIMEOUT,
                                           ctx->timeouts[CONDUIT_TIMEOUT_CONNECT]);
        int64_t deadline = conduit__deadline(timeout);

        for (size_t i = 0; i < n; i++)
                if (list[i]->kind == CONDUIT_ENDP_TLS)
                        return unsupported(list[i]);

        bool all_tcp = true;
        for (size_t i = 0; i < n; i++)
                all_tcp = all_tcp && list[i]->kind == CONDUIT_ENDP_TCP && list[i]->has_addr;
        if (all_tcp)
                return conduit__tcp_connect_many(ctx, (const conduit_endp *const *)list, n,
                                                 deadline, ret);
        int r = CONDUIT_E_NOT_FOUND;
        for (size_t i = 0; i < n; i++) {
                r = connect_one(ctx, list[i], deadline, ret);
                if (r == 0 || r == CONDUIT_E_UNSUPPORTED || r == -ETIMEDOUT)
                        break;
        }
        return r;
}

int conduit_connect_endp(conduit_ctx *ctx, const conduit_endp *e, conduit_flow **ret)
{
        if (!e || !ret)
                return conduit__set_error(-EINVAL, "no endpoint");
        conduit_ctx *c = conduit__ctx_get(ctx);
        if (!c)
                return -ENOMEM;
        conduit_endp **list = NULL;
        int n = conduit_resolve_endp(c, e, &list);
        int r = n;
        if (n > 0) {
                conduit_flow *f = NULL;
                r = connect_list(c, list, (size_t)n, &f);
                if (r == 0)
                        *ret = f;
        }
        conduit_endp_list_free(list);
        conduit_ctx_free(c);
        return r;
}

int conduit_connect(conduit_ctx *ctx, const char *uri, conduit_flow **ret)
{
        conduit_endp *e = NULL;
        if (!ret)
                return -EINVAL;
        int r = conduit_ctx_parse(ctx, uri, &e);
        if (r < 0)
                return r;
        r = conduit_connect_endp(ctx, e, ret);
        conduit_endp_free(e);
        return r;
}
