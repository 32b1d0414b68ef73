/* SPDX-License-Identifier: MIT */
/* Name resolution: a parsed endp becomes the ordered list of endps to try.
 * Rewrite rules first, then static hosts, then getaddrinfo(). */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctx-private.h"
#include "resolver/resolve-private.h"
#include "endp-private.h"
#include "util.h"

#define MAX_REWRITE_DEPTH 8

struct list {
        conduit_endp **v;
        size_t n, cap;
};

static int push(struct list *l, conduit_endp *e)
{
        if (l->n + 2 > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                conduit_endp **v = realloc(l->v, cap * sizeof(*v));
                if (!v) {
                        conduit_endp_free(e);
                        return -ENOMEM;
                }
                l->v = v;
                l->cap = cap;
        }
        l->v[l->n++] = e;
        l->v[l->n] = NULL;
        return 0;
}

static void list_clear(struct list *l)
{
        for (size_t i = 0; i < l->n; i++)
                conduit_endp_free(l->v[i]);
        free(l->v);
        *l = (struct list){ 0 };
}

conduit_endp **conduit_endp_list_free(conduit_endp **list)
{
        if (!list)
                return NULL;
        for (conduit_endp **p = list; *p; p++)
                conduit_endp_free(*p);
        free(list);
        return NULL;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
        if (a->ss_family != b->sa_family)
                return false;
        if (b->sa_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* A copy of the TCP endp e with address sa (no port) filled in. Without a
 * zone, that of sa's scope id: a link-local address from getaddrinfo() (as
 * nss-mdns gives for NAME.local) is reachable only through it. */
static int push_addr(struct list *l, const conduit_endp *e, const struct sockaddr *sa,
                     const char *zone)
{
        char scope[IF_NAMESIZE];
        uint32_t id =
                sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_scope_id : 0;
        if (!zone && id) {
                if (!if_indextoname(id, scope))
                        snprintf(scope, sizeof(scope), "%u", id);
                zone = scope;
        }
        for (size_t i = 0; i < l->n; i++) {
                /* getaddrinfo may list one address several times */
                const conduit_endp *o = l->v[i];
                if (o->kind == CONDUIT_ENDP_TCP && o->has_addr && same_addr(&o->addr, sa) &&
                    conduit__streq(o->zone, zone))
                        return 0;
        }
        conduit_endp *c;
        if (conduit_endp_copy(e, &c) < 0)
                return -ENOMEM;
        memset(&c->addr, 0, sizeof(c->addr));
        if (sa->sa_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&c->addr;
                in->sin_family = AF_INET;
                in->sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->addr;
                in6->sin6_family = AF_INET6;
                in6->sin6_addr = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        }
        c->has_addr = true;
        c->family = AF_UNSPEC; /* the address says it */
        free(c->zone);
        c->zone = NULL;
        if (zone && !(c->zone = strdup(zone))) {
                conduit_endp_free(c);
                return -ENOMEM;
        }
        return push(l, c);
}

/* The rewrite rule whose suffix matches host by whole labels, longest
 * first. *label gets the length of the labels before the suffix. */
static const struct conduit__rewrite *find_rewrite(const conduit_ctx *ctx, const char *host,
                                                   size_t *label)
{
        const struct conduit__rewrite *best = NULL;
        size_t hl = strlen(host);
        if (hl && host[hl - 1] == '.')
                hl--;
        for (size_t i = 0; i < ctx->n_rewrites; i++) {
                const struct conduit__rewrite *rw = &ctx->rewrites[i];
                size_t sl = strlen(rw->suffix);
                if (sl > hl || strncasecmp(host + hl - sl, rw->suffix, sl) != 0)
                        continue;
                if (sl < hl && host[hl - sl - 1] != '.')
                        continue;
                if (!best || sl > strlen(best->suffix)) {
                        best = rw;
                        *label = sl < hl ? hl - sl - 1 : 0;
                }
        }
        return best;
}

/* Fills the template of a rewrite rule. */
static char *fill_template(const char *tmpl, const char *host, size_t label_len, uint32_t port)
{
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        for (const char *p = tmpl; *p; p++) {
                if (strncmp(p, "{host}", 6) == 0) {
                        fputs(host, f);
                        p += 5;
                } else if (strncmp(p, "{label}", 7) == 0) {
                        fwrite(host, 1, label_len, f);
                        p += 6;
                } else if (strncmp(p, "{port}", 6) == 0) {
                        fprintf(f, "%u", port);
                        p += 5;
                } else {
                        fputc(*p, f);
                }
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

/* How the one DNS lookup a URI may need is done: by getaddrinfo() (NULL
 * hook), not at all (probe: note the name and stop), or with an answer
 * obtained elsewhere (evdns, for the event API). */
struct dns_hook {
        bool probe;
        char *name; /* probe: the name to look up */
        int family;
        const struct addrinfo *answer; /* answer mode */
        int err;                       /* answer mode: the lookup failed */
        const char *errmsg;
};

static int expand(conduit_ctx *ctx, const conduit_endp *e, struct list *out, int depth,
                  struct dns_hook *hook);

/* Addresses of a hosts(5)-format file for name, like static hosts. */
static int hosts_file(const conduit_ctx *ctx, const conduit_endp *e, struct list *out)
{
        if (!ctx->hosts_file)
                return 0;
        FILE *f = fopen(ctx->hosts_file, "re");
        if (!f)
                return 0;
        size_t hl = strlen(e->host);
        if (hl && e->host[hl - 1] == '.')
                hl--;
        char *line = NULL;
        size_t cap = 0;
        int r = 0;
        while (r == 0 && getline(&line, &cap, f) > 0) {
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *save = NULL;
                char *addr = strtok_r(line, " \t\r\n", &save);
                if (!addr)
                        continue;
                struct sockaddr_storage ss = { 0 };
                char *zone = strchr(addr, '%');
                if (zone)
                        *zone++ = '\0';
                if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
                        ss.ss_family = AF_INET;
                else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
                        ss.ss_family = AF_INET6;
                else
                        continue;
                if (e->family != AF_UNSPEC && e->family != ss.ss_family)
                        continue;
                for (char *n = strtok_r(NULL, " \t\r\n", &save); n;
                     n = strtok_r(NULL, " \t\r\n", &save))
                        if (strlen(n) == hl && strncasecmp(n, e->host, hl) == 0) {
                                r = push_addr(out, e, (struct sockaddr *)&ss, zone);
                                break;
                        }
        }
        free(line);
        fclose(f);
        return r;
}

static int expand_name(conduit_ctx *ctx, const conduit_endp *e, struct list *out, int depth,
                       struct dns_hook *hook)
{
        size_t label = 0;
        const struct conduit__rewrite *rw = find_rewrite(ctx, e->host, &label);
        if (rw) {
                if (depth >= MAX_REWRITE_DEPTH)
                        return conduit__set_error(CONDUIT_E_NOT_FOUND, "rewrite rules loop on '%s'",
                                                  e->host);
                char *uri = fill_template(rw->target, e->host, label, e->port);
                if (!uri)
                        return -ENOMEM;
                conduit__log(ctx, CONDUIT_LOG_DEBUG, "rewrite %s (rule *.%s) -> %s", e->host,
                             rw->suffix, uri);
                conduit_endp *t = NULL;
                int r = conduit_ctx_parse(ctx, uri, &t);
                if (r < 0) {
                        conduit__set_error(r, "rewrite of '%s' gave '%s': %s", e->host, uri,
                                           conduit__error_message());
                        free(uri);
                        return r;
                }
                free(uri);
                r = expand(ctx, t, out, depth + 1, hook);
                conduit_endp_free(t);
                return r;
        }

        size_t before = out->n;
        for (size_t i = 0; i < ctx->n_hosts; i++) {
                const struct conduit__host *h = &ctx->hosts[i];
                size_t hl = strlen(e->host);
                if (hl && e->host[hl - 1] == '.')
                        hl--;
                if (strlen(h->name) != hl || strncasecmp(h->name, e->host, hl) != 0)
                        continue;
                char addr[INET6_ADDRSTRLEN + 64];
                snprintf(addr, sizeof(addr), "%s", h->address);
                char *zone = strchr(addr, '%');
                if (zone)
                        *zone++ = '\0';
                struct sockaddr_storage ss = { 0 };
                if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
                        ss.ss_family = AF_INET;
                else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
                        ss.ss_family = AF_INET6;
                else
                        continue;
                if (e->family != AF_UNSPEC && e->family != ss.ss_family)
                        continue;
                int r = push_addr(out, e, (struct sockaddr *)&ss, zone);
                if (r < 0)
                        return r;
        }
        /* the event API hands the hosts file to evdns instead */
        int hr = out->n == before && !hook ? hosts_file(ctx, e, out) : 0;
        if (hr < 0)
                return hr;
        if (out->n > before) {
                conduit__log(ctx, CONDUIT_LOG_DEBUG, "'%s': %zu static address(es)", e->host,
                             out->n - before);
                return 0;
        }

        if (hook && hook->probe) {
                /* "name." is the same name (evdns wants it without the dot) */
                size_t hl = strlen(e->host);
                hook->name = strndup(e->host, hl > 1 && e->host[hl - 1] == '.' ? hl - 1 : hl);
                hook->family = e->family;
                return hook->name ? CONDUIT__NEED_DNS : -ENOMEM;
        }
        struct addrinfo *own = NULL;
        const struct addrinfo *res;
        if (hook) {
                if (hook->err < 0)
                        return conduit__set_error(hook->err, "cannot resolve '%s': %s", e->host,
                                                  hook->errmsg ? hook->errmsg : "");
                res = hook->answer;
        } else {
                struct addrinfo hints = { .ai_family = e->family, .ai_socktype = SOCK_STREAM };
                int g = getaddrinfo(e->host, NULL, &hints, &own);
                if (g != 0) {
                        int r = g == EAI_MEMORY            ? -ENOMEM
                                : g == EAI_SYSTEM && errno ? -errno
                                                           : CONDUIT_E_NOT_FOUND;
                        return conduit__set_error(r, "cannot resolve '%s': %s", e->host,
                                                  g == EAI_SYSTEM ? conduit_strerror(r)
                                                                  : gai_strerror(g));
                }
                res = own;
        }
        if (!res)
                return conduit__set_error(CONDUIT_E_NOT_FOUND, "'%s' has no address", e->host);
        /* RFC 8305 §4: interleave the families, starting with the family
         * of the first address getaddrinfo() prefers. */
        int first = res->ai_family;
        size_t count[2] = { 0, 0 };
        for (const struct addrinfo *a = res; a; a = a->ai_next)
                if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
                        count[a->ai_family == first ? 0 : 1]++;
        const struct addrinfo **v[2];
        v[0] = calloc(count[0] + 1, sizeof(*v[0]));
        v[1] = calloc(count[1] + 1, sizeof(*v[1]));
        int r = 0;
        if (!v[0] || !v[1]) {
                r = -ENOMEM;
                goto out;
        }
        count[0] = count[1] = 0;
        for (const struct addrinfo *a = res; a; a = a->ai_next)
                if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
                        int k = a->ai_family == first ? 0 : 1;
                        v[k][count[k]++] = a;
                }
        for (size_t i = 0; r == 0 && (i < count[0] || i < count[1]); i++)
                for (int k = 0; k < 2 && r == 0; k++)
                        if (i < count[k])
                                r = push_addr(out, e, v[k][i]->ai_addr, NULL);
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "'%s' resolved to %zu address(es)", e->host,
                     out->n - before);
out:
        free(v[0]);
        free(v[1]);
        if (own)
                freeaddrinfo(own);
        return r;
}

static int expand(conduit_ctx *ctx, const conduit_endp *e, struct list *out, int depth,
                  struct dns_hook *hook)
{
        if (e->kind == CONDUIT_ENDP_TCP && e->host && !e->has_addr)
                return expand_name(ctx, e, out, depth, hook);
        if (e->kind != CONDUIT_ENDP_TLS) {
                conduit_endp *c;
                if (conduit_endp_copy(e, &c) < 0)
                        return -ENOMEM;
                return push(out, c);
        }
        /* TLS: resolve the inner endp and wrap every result. A host name
         * that resolution turns into an address becomes the server name. */
        struct list inner = { 0 };
        int r = expand(ctx, e->inner, &inner, depth, hook);
        const char *name = NULL;
        if (e->inner->kind == CONDUIT_ENDP_TCP && !e->inner->has_addr)
                name = e->inner->host;
        for (size_t i = 0; r == 0 && i < inner.n; i++) {
                /* a rewrite onto a tls+ URI adds layers: no more than the
                 * parser allows, or the result would not print to a URI
                 * that parses back */
                if (conduit__tls_depth(inner.v[i]) >= CONDUIT__TLS_DEPTH_MAX) {
                        r = conduit__set_error(CONDUIT_E_URI,
                                               "a rewrite gives more than %d TLS layers",
                                               CONDUIT__TLS_DEPTH_MAX);
                        break;
                }
                conduit_endp *w = conduit__endp_new(CONDUIT_ENDP_TLS);
                bool ok = w != NULL;
                for (size_t k = 0; ok && k < CONDUIT__OPT_COUNT; k++)
                        w->opt[k] = conduit__strdup_null(e->opt[k], &ok);
                if (ok && name && !w->opt[CONDUIT__OPT_SERVERNAME])
                        w->opt[CONDUIT__OPT_SERVERNAME] = conduit__strdup_null(name, &ok);
                if (!ok) {
                        conduit_endp_free(w);
                        r = -ENOMEM;
                        break;
                }
                w->inner = inner.v[i];
                inner.v[i] = NULL;
                r = push(out, w);
        }
        list_clear(&inner);
        return r;
}

static int resolve(conduit_ctx *ctx, const conduit_endp *e, struct dns_hook *hook,
                   conduit_endp ***ret)
{
        if (!e || !ret)
                return conduit__set_error(-EINVAL, "no endpoint");
        conduit_ctx *c = conduit__ctx_get(ctx);
        if (!c)
                return -ENOMEM;
        struct list out = { 0 };
        int r = expand(c, e, &out, 0, hook);
        conduit_ctx_free(c);
        if (r == 0 && out.n == 0)
                r = conduit__set_error(CONDUIT_E_NOT_FOUND, "no address found");
        if (r != 0) {
                list_clear(&out);
                return r;
        }
        *ret = out.v;
        return (int)out.n;
}

int conduit_resolve_endp(conduit_ctx *ctx, const conduit_endp *e, conduit_endp ***ret)
{
        return resolve(ctx, e, NULL, ret);
}

int conduit__resolve_probe(conduit_ctx *ctx, const conduit_endp *e, conduit_endp ***ret,
                           char **ret_name, int *ret_family)
{
        struct dns_hook hook = { .probe = true };
        int r = resolve(ctx, e, &hook, ret);
        if (r == CONDUIT__NEED_DNS) {
                *ret_name = hook.name;
                *ret_family = hook.family;
        } else {
                free(hook.name);
        }
        return r;
}

int conduit__resolve_answer(conduit_ctx *ctx, const conduit_endp *e, const struct addrinfo *answer,
                            int err, const char *errmsg, conduit_endp ***ret)
{
        struct dns_hook hook = { .answer = answer, .err = err, .errmsg = errmsg };
        return resolve(ctx, e, &hook, ret);
}

int conduit_resolve(conduit_ctx *ctx, const char *uri, conduit_endp ***ret)
{
        conduit_endp *e = NULL;
        if (!ret)
                return -EINVAL;
        int r = conduit_ctx_parse(ctx, uri, &e);
        if (r < 0)
                return r;
        r = conduit_resolve_endp(ctx, e, ret);
        conduit_endp_free(e);
        return r;
}
