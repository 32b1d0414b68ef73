/* SPDX-License-Identifier: MIT */
/* The connector: resolve, then dispatch each candidate to its backend by
 * endp kind. TCP candidates race with Happy Eyeballs; others go in order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backends/backends.h"
#include "connect-private.h"
#include "ctx-private.h"
#include "endp-private.h"
#include "tls-private.h"
#include "util.h"

static conduit__connect_fn *const connectors[] = {
        [CONDUIT_ENDP_TCP] = conduit__tcp_connect,
        [CONDUIT_ENDP_UNIX] = conduit__unix_connect,
        [CONDUIT_ENDP_FD] = conduit__fd_connect,
        [CONDUIT_ENDP_VSOCK] = conduit__vsock_connect,
        [CONDUIT_ENDP_HYPERV] = conduit__vsock_connect,
        [CONDUIT_ENDP_VSOCK_MUX] = conduit__vsock_mux_connect,
};

bool conduit__connect_supported(const conduit_endp *e)
{
        return (size_t)e->kind < CONDUIT__ARRAY_SIZE(connectors) && connectors[e->kind];
}

/* Why a kind has no connector in this build. */
int conduit__connect_unsupported(const conduit_endp *e)
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
        if (!conduit__connect_supported(e))
                return conduit__connect_unsupported(e);
        return connectors[e->kind](ctx, e, deadline, ret);
}

/* Connects the transports of the candidates (TLS layers stripped). */
static int connect_transports(conduit_ctx *ctx, const conduit_endp **t, size_t n, int64_t deadline,
                              conduit_flow **ret)
{
        bool all_tcp = true;
        for (size_t i = 0; i < n; i++)
                all_tcp = all_tcp && t[i]->kind == CONDUIT_ENDP_TCP && t[i]->has_addr;
        if (all_tcp)
                return conduit__tcp_connect_many(ctx, t, n, deadline, ret);
        int r = CONDUIT_E_NOT_FOUND;
        for (size_t i = 0; i < n; i++) {
                r = connect_one(ctx, t[i], deadline, ret);
                if (r == 0 || r == CONDUIT_E_UNSUPPORTED || r == -ETIMEDOUT)
                        break;
        }
        return r;
}

/* Wraps a connected transport in the TLS layers of e, innermost first,
 * each handshake bounded by the handshake timeout and the connect
 * deadline. Frees f on failure. */
static int add_tls_layers(conduit_ctx *ctx, const conduit_endp *e, conduit_flow *f,
                          int64_t deadline, conduit_flow **ret)
{
        const conduit_endp *layers[17];
        size_t n = 0;
        for (const conduit_endp *l = e; l->kind == CONDUIT_ENDP_TLS && n < 17; l = l->inner)
                layers[n++] = l;
        while (n-- > 0) {
                conduit_flow *t = NULL;
                int r = conduit__tls_wrap(ctx, f, layers[n], false, &t);
                if (r < 0) {
                        conduit_flow_free(f);
                        return r;
                }
                f = t;
                int64_t hs = conduit__deadline(ctx->timeouts[CONDUIT_TIMEOUT_HANDSHAKE]);
                if (hs < 0 || (deadline >= 0 && deadline < hs))
                        hs = deadline;
                bool nb = f->nonblocking;
                f->nonblocking = false;
                r = conduit__tls_handshake(f, hs);
                f->nonblocking = nb;
                if (r < 0) {
                        char *s = conduit__endp_str(layers[n]);
                        conduit__set_error(r, "%s: %s", s ? s : "?", conduit_flow_error_message(f));
                        free(s);
                        conduit_flow_free(f);
                        return r;
                }
        }
        *ret = f;
        return 0;
}

static int connect_list(conduit_ctx *ctx, conduit_endp **list, size_t n, int64_t until,
                        conduit_flow **ret)
{
        const conduit_endp *few[4];
        const conduit_endp **t = n <= 4 ? few : calloc(n, sizeof(*t));
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                t[i] = conduit__endp_transport(list[i]);
        int timeout = conduit__endp_opt_ms(t[0], CONDUIT__OPT_CONNECT_TIMEOUT,
                                           ctx->timeouts[CONDUIT_TIMEOUT_CONNECT]);
        int64_t deadline = conduit__deadline(timeout);
        if (until >= 0 && (deadline < 0 || until < deadline))
                deadline = until;
        conduit_flow *f = NULL;
        int r = connect_transports(ctx, t, n, deadline, &f);
        const char *max_io = t[0]->opt[CONDUIT__OPT_MAX_IO];
        if (r == 0 && max_io)
                conduit_flow_set_max_io(f, strtoul(max_io, NULL, 10));
        if (r == 0 && list[0]->kind == CONDUIT_ENDP_TLS) {
                /* the TLS layers of the candidate that answered */
                size_t w = 0;
                for (size_t i = 0; i < n; i++)
                        if (conduit_endp_equal(t[i], conduit_flow_peer(f))) {
                                w = i;
                                break;
                        }
                r = add_tls_layers(ctx, list[w], f, deadline, &f);
        }
        if (t != few)
                free(t);
        if (r == 0)
                *ret = f;
        return r;
}

bool conduit__connect_retryable(int r)
{
        return r == -ECONNREFUSED || r == -ECONNRESET || r == -ENOENT;
}

/* Connects, retrying with backoff while the peer is not up yet, for as
 * long as the retry option (else the context's CONDUIT_TIMEOUT_RETRY)
 * allows. */
static int connect_retrying(conduit_ctx *ctx, conduit_endp **list, size_t n, conduit_flow **ret)
{
        int retry = conduit__endp_opt_ms(conduit__endp_transport(list[0]), CONDUIT__OPT_RETRY,
                                         ctx->timeouts[CONDUIT_TIMEOUT_RETRY]);
        if (retry <= 0)
                return connect_list(ctx, list, n, -1, ret);
        int64_t until = conduit__deadline(retry);
        int backoff = 20;
        char last[512] = "";
        for (int attempt = 1;; attempt++) {
                int r = connect_list(ctx, list, n, until, ret);
                if (r == 0)
                        return r;
                int left = conduit__remaining(until);
                /* an attempt cut short by the retry deadline after earlier
                 * ones found the peer not up: the peer is still not up */
                bool cut = r == -ETIMEDOUT && left == 0 && attempt > 1;
                if (!conduit__connect_retryable(r) && !cut)
                        return r;
                snprintf(last, sizeof(last), "%s", conduit__error_message());
                if (left == 0)
                        return conduit__set_error(-ETIMEDOUT,
                                                  "not up after %d ms and %d attempts (last: %s)",
                                                  retry, attempt, last);
                int wait = backoff < left ? backoff : left;
                conduit__log(ctx, CONDUIT_LOG_DEBUG, "attempt %d: %s; retrying in %d ms", attempt,
                             conduit_strerror(r), wait);
                struct timespec ts = { wait / 1000, (long)(wait % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
                /* no attempt that would start with no time left */
                if (conduit__remaining(until) == 0)
                        return conduit__set_error(-ETIMEDOUT,
                                                  "not up after %d ms and %d attempts (last: %s)",
                                                  retry, attempt, last);
                backoff = backoff >= 500 ? 1000 : backoff * 2;
        }
}

int conduit_connect_endp(conduit_ctx *ctx, const conduit_endp *e, conduit_flow **ret)
{
        if (!e || !ret)
                return conduit__set_error(-EINVAL, "no endpoint");
        conduit_ctx *c = conduit__ctx_get(ctx);
        if (!c)
                return -ENOMEM;
        /* An endpoint that names no host (a path, an address, a CID) is
         * its own resolution: no list to build and copy. */
        if (e->kind != CONDUIT_ENDP_TLS &&
            !(e->kind == CONDUIT_ENDP_TCP && e->host && !e->has_addr)) {
                conduit_endp *one = (conduit_endp *)e; /* connecting only reads it */
                conduit_flow *f = NULL;
                int r = connect_retrying(c, &one, 1, &f);
                if (r == 0)
                        *ret = f;
                conduit_ctx_free(c);
                return r;
        }
        conduit_endp **list = NULL;
        int n = conduit_resolve_endp(c, e, &list);
        int r = n;
        if (n > 0) {
                conduit_flow *f = NULL;
                r = connect_retrying(c, list, (size_t)n, &f);
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
