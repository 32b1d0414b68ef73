/* SPDX-License-Identifier: MIT */
/* Internal: the context, and the per-thread detail message. */
#ifndef CONDUIT_CTX_PRIVATE_H
#define CONDUIT_CTX_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conduit/conduit.h"
#include "endp-private.h"
#include "flow-private.h"

struct conduit__service {
        char *scheme; /* lower case */
        uint16_t port;
        bool tls;
};

struct conduit__rewrite {
        char *suffix; /* lower case, no trailing dot */
        char *target; /* URI template */
};

struct conduit__host {
        char *name; /* lower case, no trailing dot */
        char *address;
};

struct conduit_ctx {
        atomic_int refs;
        bool immortal; /* the default context: never freed, not counted */
        struct conduit__service *services;
        size_t n_services;
        struct conduit__rewrite *rewrites;
        size_t n_rewrites;
        struct conduit__host *hosts;
        size_t n_hosts;
        char *services_file; /* NULL: no fallback file */
        char *hosts_file;    /* extra hosts(5) file, read before DNS; NULL: none */
        /* entries read from services_file, loaded once on first need */
        pthread_mutex_t file_lock;
        bool file_loaded;
        struct conduit__service *file_services;
        size_t n_file_services;
        int timeouts[CONDUIT__TIMEOUT_COUNT];
        int he_delay_ms;
        conduit_log_fn *log_fn;
        void *log_userdata;
        /* TLS defaults (indices of the TLS options only), the SSL_CTXs
         * this context built and the client sessions it may resume
         * (newest first), the last two guarded by tls_lock */
        char *tls_opt[CONDUIT__OPT_COUNT];
        conduit_tls_passphrase_fn *passphrase_fn;
        void *passphrase_userdata;
        pthread_mutex_t tls_lock;
        struct conduit__sslctx *sslctx_cache;
        struct conduit__tls_session *sessions;
};

/* Looks a scheme up: ctx's own entries, built-in entries, then (ctx only)
 * the services file. scheme is compared case-insensitively. Returns 0 or
 * CONDUIT_E_SCHEME. ctx may be NULL: built-in entries only. */
int conduit__service_lookup(conduit_ctx *ctx, const char *scheme, uint16_t *ret_port,
                            bool *ret_tls);

/* Takes a reference (ctx may be NULL: returns NULL). */
conduit_ctx *conduit__ctx_ref(conduit_ctx *ctx);

/* Returns ctx with a new reference, or the process's default context when
 * ctx is NULL (shared, never freed, not counted). Caller drops it with
 * conduit_ctx_free(). NULL on ENOMEM. */
conduit_ctx *conduit__ctx_get(conduit_ctx *ctx);

/* Whether ctx has a log callback: what a trace would format (a URI, say)
 * is only worth formatting then. */
static inline bool conduit__log_enabled(const conduit_ctx *ctx)
{
        return ctx && ctx->log_fn;
}

/* Sends a debug trace through ctx's log callback, if any. */
void conduit__log(const conduit_ctx *ctx, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Sets the calling thread's detail message (what conduit_ctx_error_message()
 * returns) and returns err unchanged. */
int conduit__set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's detail message buffer and its size. */
const char *conduit__error_message(void);

#endif
