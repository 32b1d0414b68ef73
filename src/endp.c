/* SPDX-License-Identifier: MIT */
/* The endp object: construction, copy, equality, accessors. Parsing and
 * printing live in src/resolver/. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>

#include "endp-private.h"
#include "resolver/options.h"
#include "util.h"

/* An endp with room for a path of path_len bytes and its NUL right after
 * the struct (path_room > 0): e->path then points there, one allocation
 * for both, as copies and endps made from socket addresses have it (a
 * flow's endps are made for every connection). The parser's endps own a
 * separate path. */
static conduit_endp *endp_alloc(conduit_endp_kind kind, size_t path_room)
{
        conduit_endp *e = calloc(1, sizeof(*e) + path_room);
        if (!e)
                return NULL;
        e->kind = kind;
        e->fd = -1;
        e->family = AF_UNSPEC;
        if (path_room)
                e->path = (char *)(e + 1);
        return e;
}

static bool path_inline(const conduit_endp *e)
{
        return e->path == (const char *)(e + 1);
}

conduit_endp *conduit__endp_new(conduit_endp_kind kind)
{
        return endp_alloc(kind, 0);
}

conduit_endp *conduit_endp_free(conduit_endp *e)
{
        if (!e)
                return NULL;
        free(e->host);
        free(e->zone);
        if (!path_inline(e))
                free(e->path);
        for (size_t i = 0; i < CONDUIT__OPT_COUNT; i++)
                if (e->opt[i]) /* mostly unset: no call for those */
                        free(e->opt[i]);
        conduit_endp_free(e->inner);
        free(e);
        return NULL;
}

int conduit_endp_copy(const conduit_endp *e, conduit_endp **ret)
{
        if (!e || !ret)
                return -EINVAL;
        conduit_endp *c = malloc(sizeof(*c) + (e->path ? e->path_len + 1 : 0));
        if (!c)
                return -ENOMEM;
        *c = *e;
        bool ok = true;
        c->host = conduit__strdup_null(e->host, &ok);
        c->zone = conduit__strdup_null(e->zone, &ok);
        c->path = NULL;
        c->inner = NULL;
        if (e->path) {
                c->path = (char *)(c + 1);
                memcpy(c->path, e->path, e->path_len + 1);
        }
        for (size_t i = 0; i < CONDUIT__OPT_COUNT; i++)
                if (e->opt[i])
                        c->opt[i] = conduit__strdup_null(e->opt[i], &ok);
        if (ok && e->inner && conduit_endp_copy(e->inner, &c->inner) < 0)
                ok = false;
        if (!ok) {
                conduit_endp_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                              &((const struct sockaddr_in6 *)b)->sin6_addr,
                              sizeof(struct in6_addr)) == 0;
        return false;
}

bool conduit_endp_equal(const conduit_endp *a, const conduit_endp *b)
{
        if (a == b)
                return true;
        if (!a || !b || a->kind != b->kind)
                return false;
        for (size_t i = 0; i < CONDUIT__OPT_COUNT; i++)
                if (!conduit__streq(a->opt[i], b->opt[i]))
                        return false;
        switch (a->kind) {
        case CONDUIT_ENDP_TCP:
                if (a->port != b->port || a->family != b->family || a->has_addr != b->has_addr)
                        return false;
                if (a->has_addr)
                        return addr_equal(&a->addr, &b->addr) && conduit__streq(a->zone, b->zone);
                return conduit__streq(a->host, b->host);
        case CONDUIT_ENDP_UNIX:
        case CONDUIT_ENDP_VSOCK_MUX:
        case CONDUIT_ENDP_VCHAN:
                return a->abstract == b->abstract && a->path_len == b->path_len &&
                       a->port == b->port && a->cid == b->cid &&
                       (a->path_len == 0 || memcmp(a->path, b->path, a->path_len) == 0);
        case CONDUIT_ENDP_VSOCK: return a->cid == b->cid && a->port == b->port;
        case CONDUIT_ENDP_HYPERV:
                return memcmp(a->vmid, b->vmid, 16) == 0 && memcmp(a->service, b->service, 16) == 0;
        case CONDUIT_ENDP_FD: return a->fd == b->fd;
        case CONDUIT_ENDP_TLS: return conduit_endp_equal(a->inner, b->inner);
        case CONDUIT_ENDP_UNKNOWN: return conduit__streq(a->host, b->host);
        }
        return false;
}

static char *zone_name(uint32_t scope)
{
        char name[IF_NAMESIZE];
        if (if_indextoname(scope, name))
                return strdup(name);
        char num[16];
        snprintf(num, sizeof(num), "%u", scope);
        return strdup(num);
}

int conduit_endp_from_sockaddr(const struct sockaddr *sa, socklen_t len, conduit_endp **ret)
{
        if (!sa || !ret || len < (socklen_t)sizeof(sa_family_t))
                return -EINVAL;
        conduit_endp *e = NULL;
        char text[INET6_ADDRSTRLEN];
        switch (sa->sa_family) {
        case AF_INET: {
                if (len < (socklen_t)sizeof(struct sockaddr_in))
                        return -EINVAL;
                const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
                if (!(e = conduit__endp_new(CONDUIT_ENDP_TCP)))
                        return -ENOMEM;
                inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
                struct sockaddr_in *a = (struct sockaddr_in *)&e->addr;
                a->sin_family = AF_INET;
                a->sin_addr = in->sin_addr;
                e->has_addr = true;
                e->port = ntohs(in->sin_port);
                if (!(e->host = strdup(text)))
                        goto nomem;
                break;
        }
        case AF_INET6: {
                if (len < (socklen_t)sizeof(struct sockaddr_in6))
                        return -EINVAL;
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
                if (!(e = conduit__endp_new(CONDUIT_ENDP_TCP)))
                        return -ENOMEM;
                inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&e->addr;
                a->sin6_family = AF_INET6;
                a->sin6_addr = in6->sin6_addr;
                e->has_addr = true;
                e->port = ntohs(in6->sin6_port);
                if (!(e->host = strdup(text)))
                        goto nomem;
                if (in6->sin6_scope_id && !(e->zone = zone_name(in6->sin6_scope_id)))
                        goto nomem;
                break;
        }
        case AF_UNIX: {
                const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
                size_t off = offsetof(struct sockaddr_un, sun_path);
                size_t n = (size_t)len - off;
                if (n > sizeof(un->sun_path)) {
                        /* A path that fills sun_path comes back one byte
                         * longer: the kernel counts the NUL it adds. */
                        if (un->sun_path[0] == '\0')
                                return -EINVAL;
                        n = sizeof(un->sun_path);
                }
                const char *p = un->sun_path;
                bool abstract = n > 0 && p[0] == '\0';
                if (abstract) {
                        p++;
                        n--;
                } else {
                        n = strnlen(p, n);
                }
                if (!(e = endp_alloc(CONDUIT_ENDP_UNIX, n + 1)))
                        return -ENOMEM;
                e->abstract = abstract;
                memcpy(e->path, p, n);
                e->path[n] = '\0';
                e->path_len = n;
                break;
        }
        case AF_VSOCK: {
                if (len < (socklen_t)sizeof(struct sockaddr_vm))
                        return -EINVAL;
                const struct sockaddr_vm *vm = (const struct sockaddr_vm *)sa;
                if (!(e = conduit__endp_new(CONDUIT_ENDP_VSOCK)))
                        return -ENOMEM;
                e->cid = vm->svm_cid;
                e->port = vm->svm_port;
                if ((vm->svm_flags & VMADDR_FLAG_TO_HOST) &&
                    !(e->opt[CONDUIT__OPT_TO_HOST] = strdup("1")))
                        goto nomem;
                break;
        }
        default: return -EAFNOSUPPORT;
        }
        *ret = e;
        return 0;
nomem:
        conduit_endp_free(e);
        return -ENOMEM;
}

int conduit_endp_new_fd(int fd, conduit_endp **ret)
{
        if (!ret)
                return -EINVAL;
        if (fd < 0)
                return -EBADF;
        conduit_endp *e = conduit__endp_new(CONDUIT_ENDP_FD);
        if (!e)
                return -ENOMEM;
        e->fd = fd;
        *ret = e;
        return 0;
}

int conduit_endp_new_tls(const conduit_endp *inner, const char *servername, conduit_endp **ret)
{
        if (!inner || !ret || (servername && !*servername))
                return -EINVAL;
        /* one layer more would print to a URI that does not parse */
        if (conduit__tls_depth(inner) >= CONDUIT__TLS_DEPTH_MAX)
                return -EINVAL;
        conduit_endp *e = conduit__endp_new(CONDUIT_ENDP_TLS);
        if (!e)
                return -ENOMEM;
        if (servername) {
                /* the same rules as ?servername=, so the endp round-trips */
                char err[256];
                int r = conduit__opt_canon(CONDUIT__OPT_SERVERNAME, servername, strlen(servername),
                                           &e->opt[CONDUIT__OPT_SERVERNAME], err, sizeof(err));
                if (r < 0) {
                        conduit_endp_free(e);
                        return r == -ENOMEM ? r : -EINVAL;
                }
        }
        if (conduit_endp_copy(inner, &e->inner) < 0) {
                conduit_endp_free(e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

int conduit_endp_to_sockaddr(const conduit_endp *e, struct sockaddr_storage *ret,
                             socklen_t *ret_len)
{
        if (!e || !ret || !ret_len)
                return -EINVAL;
        struct sockaddr_storage ss;
        socklen_t len;
        memset(&ss, 0, sizeof(ss));
        switch (e->kind) {
        case CONDUIT_ENDP_TCP:
                if (e->has_addr) {
                        ss = e->addr;
                } else if (!e->host) {
                        /* the wildcard: IPv6 any serves both families */
                        ss.ss_family = e->family == AF_INET ? AF_INET : AF_INET6;
                } else {
                        return -EDESTADDRREQ;
                }
                if (ss.ss_family == AF_INET) {
                        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)e->port);
                        len = sizeof(struct sockaddr_in);
                } else {
                        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                        in6->sin6_port = htons((uint16_t)e->port);
                        if (e->zone) {
                                uint64_t idx;
                                if (conduit__parse_uint(e->zone, strlen(e->zone), UINT32_MAX, &idx))
                                        in6->sin6_scope_id = (uint32_t)idx;
                                else if (!(in6->sin6_scope_id = if_nametoindex(e->zone)))
                                        return -ENODEV;
                        }
                        len = sizeof(struct sockaddr_in6);
                }
                break;
        case CONDUIT_ENDP_UNIX: {
                struct sockaddr_un *un = (struct sockaddr_un *)&ss;
                size_t off = offsetof(struct sockaddr_un, sun_path);
                un->sun_family = AF_UNIX;
                if (e->abstract) {
                        if (e->path_len + 1 > sizeof(un->sun_path))
                                return -ENAMETOOLONG;
                        memcpy(un->sun_path + 1, e->path, e->path_len);
                        len = (socklen_t)(off + 1 + e->path_len);
                } else {
                        /* Linux takes a full sun_path without a NUL. */
                        if (e->path_len > sizeof(un->sun_path))
                                return -ENAMETOOLONG;
                        if (e->path_len)
                                memcpy(un->sun_path, e->path, e->path_len);
                        len = (socklen_t)(off + e->path_len +
                                          (e->path_len && e->path_len < sizeof(un->sun_path)));
                }
                break;
        }
        case CONDUIT_ENDP_VSOCK: {
                struct sockaddr_vm *vm = (struct sockaddr_vm *)&ss;
                vm->svm_family = AF_VSOCK;
                vm->svm_cid = e->cid;
                vm->svm_port = e->port;
                if (conduit__endp_opt_bool(e, CONDUIT__OPT_TO_HOST, 0))
                        vm->svm_flags = VMADDR_FLAG_TO_HOST;
                len = sizeof(struct sockaddr_vm);
                break;
        }
        default: return -EAFNOSUPPORT;
        }
        *ret = ss;
        *ret_len = len;
        return 0;
}

conduit_endp_kind conduit_endp_get_kind(const conduit_endp *e)
{
        return e ? e->kind : CONDUIT_ENDP_UNKNOWN;
}

const char *conduit_endp_kind_name(conduit_endp_kind kind)
{
        switch (kind) {
        case CONDUIT_ENDP_TCP: return "tcp";
        case CONDUIT_ENDP_UNIX: return "unix";
        case CONDUIT_ENDP_VSOCK: return "vsock";
        case CONDUIT_ENDP_HYPERV: return "hyperv";
        case CONDUIT_ENDP_VSOCK_MUX: return "vsock-mux";
        case CONDUIT_ENDP_FD: return "fd";
        case CONDUIT_ENDP_VCHAN: return "vchan";
        case CONDUIT_ENDP_TLS: return "tls";
        case CONDUIT_ENDP_UNKNOWN: break;
        }
        return "unknown";
}

const char *conduit_endp_get_host(const conduit_endp *e)
{
        if (!e)
                return NULL;
        switch (e->kind) {
        case CONDUIT_ENDP_TCP:
        case CONDUIT_ENDP_UNKNOWN: return e->host;
        case CONDUIT_ENDP_TLS: return e->opt[CONDUIT__OPT_SERVERNAME];
        default: return NULL;
        }
}

long long conduit_endp_get_port(const conduit_endp *e)
{
        if (!e)
                return -1;
        switch (e->kind) {
        case CONDUIT_ENDP_TCP:
        case CONDUIT_ENDP_VSOCK:
        case CONDUIT_ENDP_VSOCK_MUX: return e->port;
        case CONDUIT_ENDP_HYPERV: return conduit__hv_service_port(e->service);
        case CONDUIT_ENDP_VCHAN: return e->cid;
        case CONDUIT_ENDP_TLS: return conduit_endp_get_port(e->inner);
        default: return -1;
        }
}

long long conduit_endp_get_cid(const conduit_endp *e)
{
        return e && e->kind == CONDUIT_ENDP_VSOCK ? (long long)e->cid : -1;
}

const char *conduit_endp_get_path(const conduit_endp *e, size_t *ret_len)
{
        if (!e || !(e->kind == CONDUIT_ENDP_UNIX || e->kind == CONDUIT_ENDP_VSOCK_MUX ||
                    e->kind == CONDUIT_ENDP_VCHAN))
                return NULL;
        if (ret_len)
                *ret_len = e->path_len;
        return e->path ? e->path : "";
}

bool conduit_endp_is_abstract(const conduit_endp *e)
{
        return e && e->kind == CONDUIT_ENDP_UNIX && e->abstract;
}

int conduit_endp_get_fd(const conduit_endp *e)
{
        return e && e->kind == CONDUIT_ENDP_FD ? e->fd : -1;
}

int conduit_endp_get_hyperv(const conduit_endp *e, uint8_t vmid[16], uint8_t service[16])
{
        if (!e || e->kind != CONDUIT_ENDP_HYPERV || !vmid || !service)
                return -EINVAL;
        memcpy(vmid, e->vmid, 16);
        memcpy(service, e->service, 16);
        return 0;
}

const conduit_endp *conduit_endp_get_inner(const conduit_endp *e)
{
        return e && e->kind == CONDUIT_ENDP_TLS ? e->inner : NULL;
}

const char *conduit_endp_get_option(const conduit_endp *e, const char *key)
{
        if (!e || !key)
                return NULL;
        for (int i = 0; i < CONDUIT__OPT_COUNT; i++)
                if (strcmp(conduit__opt_name((enum conduit__opt)i), key) == 0)
                        return e->opt[i];
        return NULL;
}

const conduit_endp *conduit__endp_transport(const conduit_endp *e)
{
        while (e && e->kind == CONDUIT_ENDP_TLS)
                e = e->inner;
        return e;
}

int conduit_endp_format(const conduit_endp *e, char **ret)
{
        if (!e || !ret)
                return -EINVAL;
        return conduit__uri_format(e, ret);
}
