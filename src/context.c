/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctx-private.h"
#include "endp-private.h"
#include "resolver/options.h"
#include "tls-private.h"
#include "util.h"

int conduit_ctx_new(conduit_ctx **ret)
{
        if (!ret)
                return -EINVAL;
        conduit_ctx *ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
                return -ENOMEM;
        atomic_init(&ctx->refs, 1);
        ctx->services_file = strdup("/etc/services");
        if (!ctx->services_file) {
                free(ctx);
                return -ENOMEM;
        }
        pthread_mutex_init(&ctx->file_lock, NULL);
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(ctx->timeouts); i++)
                ctx->timeouts[i] = -1;
        ctx->timeouts[CONDUIT_TIMEOUT_CLOSE] = 10000;
        ctx->timeouts[CONDUIT_TIMEOUT_HANDSHAKE] = 10000;
        pthread_mutex_init(&ctx->tls_lock, NULL);
        ctx->he_delay_ms = 250;
        *ret = ctx;
        return 0;
}

conduit_ctx *conduit__ctx_ref(conduit_ctx *ctx)
{
        if (ctx && !ctx->immortal)
                atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
        return ctx;
}

/* The context every call given NULL shares: made on first use, never
 * freed (it holds what a default context caches: the services file, TLS
 * configurations and client sessions). */
static _Atomic(conduit_ctx *) default_ctx;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

conduit_ctx *conduit__ctx_get(conduit_ctx *ctx)
{
        if (ctx)
                return conduit__ctx_ref(ctx);
        ctx = atomic_load_explicit(&default_ctx, memory_order_acquire);
        if (ctx)
                return ctx;
        pthread_mutex_lock(&default_lock);
        ctx = atomic_load_explicit(&default_ctx, memory_order_relaxed);
        if (!ctx && conduit_ctx_new(&ctx) == 0) { /* else NULL: try again next time */
                ctx->immortal = true;
                atomic_store_explicit(&default_ctx, ctx, memory_order_release);
        }
        pthread_mutex_unlock(&default_lock);
        return ctx;
}

static void free_services(struct conduit__service *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(s[i].scheme);
        free(s);
}

conduit_ctx *conduit_ctx_free(conduit_ctx *ctx)
{
        if (!ctx || ctx->immortal)
                return NULL;
        if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
                return NULL;
        free_services(ctx->services, ctx->n_services);
        free_services(ctx->file_services, ctx->n_file_services);
        for (size_t i = 0; i < ctx->n_rewrites; i++) {
                free(ctx->rewrites[i].suffix);
                free(ctx->rewrites[i].target);
        }
        free(ctx->rewrites);
        for (size_t i = 0; i < ctx->n_hosts; i++) {
                free(ctx->hosts[i].name);
                free(ctx->hosts[i].address);
        }
        free(ctx->hosts);
        free(ctx->services_file);
        free(ctx->hosts_file);
        pthread_mutex_destroy(&ctx->file_lock);
        for (size_t i = 0; i < CONDUIT__OPT_COUNT; i++)
                free(ctx->tls_opt[i]);
        conduit__tls_ctx_cleanup(ctx);
        pthread_mutex_destroy(&ctx->tls_lock);
        free(ctx);
        return NULL;
}

static bool valid_scheme(const char *s)
{
        /* RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
        if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == '.'))
                        return false;
        return true;
}

int conduit_ctx_add_service(conduit_ctx *ctx, const char *scheme, uint16_t port, bool tls)
{
        if (!ctx || !valid_scheme(scheme) || port == 0)
                return conduit__set_error(-EINVAL, "invalid service scheme or port");
        if (strncasecmp(scheme, "tls+", 4) == 0 || conduit__uri_scheme_reserved(scheme))
                return conduit__set_error(-EEXIST, "'%s' is a scheme of the URI grammar", scheme);
        for (size_t i = 0; i < ctx->n_services; i++)
                if (strcasecmp(ctx->services[i].scheme, scheme) == 0) {
                        ctx->services[i].port = port;
                        ctx->services[i].tls = tls;
                        return 0;
                }
        char *dup = strdup(scheme);
        struct conduit__service *grown =
                dup ? realloc(ctx->services, (ctx->n_services + 1) * sizeof(*grown)) : NULL;
        if (!grown) {
                free(dup);
                return -ENOMEM;
        }
        conduit__ascii_lower(dup);
        ctx->services = grown;
        grown[ctx->n_services++] = (struct conduit__service){ dup, port, tls };
        return 0;
}

int conduit_ctx_lookup_service(conduit_ctx *ctx, const char *scheme, uint16_t *ret_port,
                               bool *ret_tls)
{
        uint16_t port;
        bool tls;
        int r = conduit__service_lookup(ctx, scheme, &port, &tls);
        if (r < 0)
                return conduit__set_error(r, "unknown scheme '%s'", scheme ? scheme : "");
        if (ret_port)
                *ret_port = port;
        if (ret_tls)
                *ret_tls = tls;
        return 0;
}

int conduit_ctx_set_services_file(conduit_ctx *ctx, const char *path)
{
        if (!ctx)
                return -EINVAL;
        char *dup = NULL;
        if (path && !(dup = strdup(path)))
                return -ENOMEM;
        pthread_mutex_lock(&ctx->file_lock);
        free(ctx->services_file);
        ctx->services_file = dup;
        free_services(ctx->file_services, ctx->n_file_services);
        ctx->file_services = NULL;
        ctx->n_file_services = 0;
        ctx->file_loaded = false;
        pthread_mutex_unlock(&ctx->file_lock);
        return 0;
}

int conduit_ctx_set_hosts_file(conduit_ctx *ctx, const char *path)
{
        if (!ctx)
                return -EINVAL;
        char *dup = NULL;
        if (path && !(dup = strdup(path)))
                return -ENOMEM;
        free(ctx->hosts_file);
        ctx->hosts_file = dup;
        return 0;
}

/* Normalises a DNS name for suffix matching: lower case, no trailing dot. */
static char *dns_norm(const char *name)
{
        size_t n = strlen(name);
        if (n > 0 && name[n - 1] == '.')
                n--;
        char *d = strndup(name, n);
        conduit__ascii_lower(d);
        return d;
}

/* Parses target with {host}/{label} replaced by word and {port} by 1. */
static int probe_template(conduit_ctx *ctx, const char *target, const char *word)
{
        size_t cap = strlen(target) * 2 + 16;
        char *probe = malloc(cap);
        if (!probe)
                return -ENOMEM;
        size_t o = 0;
        for (const char *p = target; *p; p++) {
                if (strncmp(p, "{port}", 6) == 0) {
                        probe[o++] = '1';
                        p += 5;
                } else if (strncmp(p, "{host}", 6) == 0) {
                        probe[o++] = word[0];
                        p += 5;
                } else if (strncmp(p, "{label}", 7) == 0) {
                        probe[o++] = word[0];
                        p += 6;
                } else
                        probe[o++] = *p;
        }
        probe[o] = '\0';
        conduit_endp *e = NULL;
        int r = conduit_ctx_parse(ctx, probe, &e);
        free(probe);
        conduit_endp_free(e);
        return r;
}

int conduit_ctx_add_rewrite(conduit_ctx *ctx, const char *suffix, const char *target)
{
        if (!ctx || !suffix || !target || !*suffix || strcmp(suffix, ".") == 0)
                return conduit__set_error(-EINVAL, "rewrite needs a suffix and a target");
        if (suffix[0] == '*' && suffix[1] == '.')
                suffix += 2; /* "*.vm.internal" reads as "vm.internal" */
        else if (suffix[0] == '.')
                suffix++;
        /* The template must parse once its placeholders are filled in,
         * with a number or a name (vsock CIDs take the one, hosts the
         * other). */
        int r = 0;
        for (int attempt = 0; attempt < 2; attempt++) {
                r = probe_template(ctx, target, attempt ? "a" : "1");
                if (r != CONDUIT_E_URI || attempt == 1)
                        break;
        }
        if (r < 0)
                return r;
        char *s = dns_norm(suffix), *t = strdup(target);
        struct conduit__rewrite *grown =
                s && t ? realloc(ctx->rewrites, (ctx->n_rewrites + 1) * sizeof(*grown)) : NULL;
        if (!grown) {
                free(s);
                free(t);
                return -ENOMEM;
        }
        ctx->rewrites = grown;
        grown[ctx->n_rewrites++] = (struct conduit__rewrite){ s, t };
        return 0;
}

int conduit_ctx_add_host(conduit_ctx *ctx, const char *name, const char *address)
{
        if (!ctx || !name || !*name || !address)
                return conduit__set_error(-EINVAL, "static host needs a name and an address");
        /* Validate the literal now, so resolution cannot fail on it later. */
        char buf[INET6_ADDRSTRLEN + 64];
        const char *pct = strchr(address, '%');
        size_t alen = pct ? (size_t)(pct - address) : strlen(address);
        struct in6_addr a6;
        if (alen >= sizeof(buf) || (pct && pct[1] == '\0'))
                return conduit__set_error(-EINVAL, "'%s' is not an IP address", address);
        memcpy(buf, address, alen);
        buf[alen] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1 && (pct || inet_pton(AF_INET, buf, &a6) != 1))
                return conduit__set_error(-EINVAL, "'%s' is not an IP address", address);
        char *n = dns_norm(name), *a = strdup(address);
        struct conduit__host *grown =
                n && a ? realloc(ctx->hosts, (ctx->n_hosts + 1) * sizeof(*grown)) : NULL;
        if (!grown) {
                free(n);
                free(a);
                return -ENOMEM;
        }
        ctx->hosts = grown;
        grown[ctx->n_hosts++] = (struct conduit__host){ n, a };
        return 0;
}

int conduit_ctx_set_timeout(conduit_ctx *ctx, conduit_timeout which, int ms)
{
        if (!ctx || (unsigned)which >= CONDUIT__ARRAY_SIZE(ctx->timeouts))
                return -EINVAL;
        ctx->timeouts[which] = ms < 0 ? -1 : ms;
        return 0;
}

int conduit_ctx_get_timeout(const conduit_ctx *ctx, conduit_timeout which)
{
        if (!ctx || (unsigned)which >= CONDUIT__ARRAY_SIZE(ctx->timeouts))
                return -EINVAL;
        return ctx->timeouts[which];
}

int conduit_ctx_set_happy_eyeballs_delay(conduit_ctx *ctx, int ms)
{
        if (!ctx || ms < 0)
                return -EINVAL;
        ctx->he_delay_ms = ms;
        return 0;
}

void conduit_ctx_set_log(conduit_ctx *ctx, conduit_log_fn *fn, void *userdata)
{
        if (!ctx)
                return;
        ctx->log_fn = fn;
        ctx->log_userdata = userdata;
}

void conduit__log(const conduit_ctx *ctx, int level, const char *fmt, ...)
{
        if (!ctx || !ctx->log_fn)
                return;
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n >= 0) {
                ctx->log_fn(ctx->log_userdata, level, msg);
                free(msg);
        }
}

int conduit_ctx_parse(conduit_ctx *ctx, const char *uri, conduit_endp **ret)
{
        char err[1024];
        if (!uri || !ret)
                return conduit__set_error(-EINVAL, "no URI");
        err[0] = '\0';
        int r = conduit__uri_parse(ctx, uri, ret, err, sizeof(err));
        if (r < 0)
                return conduit__set_error(r, "%s", err[0] ? err : conduit_strerror(r));
        return 0;
}

int conduit_endp_parse(const char *uri, conduit_endp **ret)
{
        return conduit_ctx_parse(NULL, uri, ret);
}
