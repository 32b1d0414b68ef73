/* SPDX-License-Identifier: MIT */
/* The printer: each endp as its one canonical URI (docs/uri.md), which the
 * parser turns back into an equal endp. Whatever the parser would read as
 * syntax, or refuse raw, is percent-encoded. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endp-private.h"
#include "options.h"
#include "util.h"

#define VSOCK_ANY UINT32_MAX

struct buf {
        char *s;
        size_t len, cap;
        bool oom;
};

static void put_n(struct buf *b, const char *s, size_t n)
{
        if (b->oom)
                return;
        if (n > SIZE_MAX / 4 - b->len) {
                b->oom = true;
                return;
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 64;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *grown = realloc(b->s, cap);
                if (!grown) {
                        b->oom = true;
                        return;
                }
                b->s = grown;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

static void put(struct buf *b, const char *s)
{
        put_n(b, s, strlen(s));
}

static void put_u32(struct buf *b, uint32_t v)
{
        char num[16];
        snprintf(num, sizeof(num), "%u", (unsigned)v);
        put(b, num);
}

enum enc {
        ENC_PATH,  /* paths, names, reasons: '/', ':' and ',' stay */
        ENC_VALUE, /* option values: the same, and '=' */
        ENC_HOST,  /* host names and zones: only RFC 3986 unreserved stays */
};

static bool unreserved(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_' || c == '~';
}

static bool must_encode(unsigned char c, enum enc cls)
{
        /* controls, space, DEL and non-ASCII are never written raw; '%'
         * would start an escape, '?' a query, '#' a fragment, '&' would end
         * an option */
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == '?' || c == '#' || c == '&')
                return true;
        /* A value runs from the first '=' of its option, so it keeps its own
         * '=' raw: the canonical pin is sha256//BASE64, padding and all. */
        if (c == '=')
                return cls != ENC_VALUE;
        return cls == ENC_HOST && !unreserved(c);
}

static void put_enc(struct buf *b, const char *s, size_t n, enum enc cls)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t run = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (!must_encode(c, cls))
                        continue;
                put_n(b, s + run, i - run);
                char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
                put_n(b, esc, 3);
                run = i + 1;
        }
        put_n(b, s + run, n - run);
}

/* "%ZONE", or RFC 6874's "%25ZONE" when the plain form would be misread:
 * a zone that starts with "25" and goes on, or one that needs escapes. */
static void put_zone(struct buf *b, const char *zone)
{
        size_t n = strlen(zone);
        bool rfc6874 = n > 2 && zone[0] == '2' && zone[1] == '5';
        for (size_t i = 0; i < n && !rfc6874; i++)
                rfc6874 = must_encode((unsigned char)zone[i], ENC_HOST);
        put(b, rfc6874 ? "%25" : "%");
        put_enc(b, zone, n, ENC_HOST);
}

static void put_tcp(struct buf *b, const conduit_endp *e)
{
        char text[INET6_ADDRSTRLEN];
        const struct sockaddr_in *in = (const struct sockaddr_in *)&e->addr;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&e->addr;

        /* A resolved endp prints its address: that is its identity, and a
         * literal implies its family, so plain tcp:// it is. */
        if (e->has_addr && e->addr.ss_family == AF_INET &&
            inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text))) {
                put(b, "tcp://");
                put(b, text);
        } else if (e->has_addr && e->addr.ss_family == AF_INET6 &&
                   inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text))) {
                put(b, "tcp://[");
                put(b, text);
                if (e->zone && *e->zone)
                        put_zone(b, e->zone);
                put(b, "]");
        } else {
                put(b, e->family == AF_INET    ? "tcp4://"
                       : e->family == AF_INET6 ? "tcp6://"
                                               : "tcp://");
                if (e->host && strchr(e->host, ':')) {
                        put(b, "[");
                        put(b, e->host);
                        put(b, "]");
                } else if (e->host) {
                        put_enc(b, e->host, strlen(e->host), ENC_HOST);
                }
        }
        put(b, ":");
        put_u32(b, e->port);
}

static void put_unix(struct buf *b, const conduit_endp *e)
{
        const char *path = e->path ? e->path : "";
        size_t n = e->path ? e->path_len : 0;
        if (e->abstract) {
                put(b, "unix-abstract:");
                put_enc(b, path, n, ENC_PATH);
        } else if (n > 0 && path[0] == '/') {
                put(b, "unix://");
                put_enc(b, path, n, ENC_PATH);
        } else {
                /* a leading '@' would read as an abstract name */
                put(b, "unix:");
                if (n > 0 && path[0] == '@') {
                        put(b, "%40");
                        path++;
                        n--;
                }
                put_enc(b, path, n, ENC_PATH);
        }
}

static void put_vsock_mux(struct buf *b, const conduit_endp *e)
{
        const char *path = e->path ? e->path : "";
        size_t n = e->path ? e->path_len : 0;
        put(b, n > 0 && path[0] == '/' ? "vsock-mux://" : "vsock-mux:");
        put_enc(b, path, n, ENC_PATH);
        put(b, ":");
        put_u32(b, e->port);
}

static void put_hyperv(struct buf *b, const conduit_endp *e)
{
        char guid[37];
        const char *name = conduit__hv_vm_name(e->vmid);
        put(b, "hyperv://");
        if (!name) {
                conduit__guid_format(e->vmid, guid);
                name = guid;
        }
        put(b, name);
        put(b, "/");
        conduit__guid_format(e->service, guid);
        put(b, guid);
}

static void put_vsock_part(struct buf *b, uint32_t v)
{
        if (v == VSOCK_ANY)
                put(b, "any");
        else
                put_u32(b, v);
}

/* Options of one endp, in table order; layer > 0 prefixes "inner." that
 * many times (TLS layers below the outermost). */
static void put_options(struct buf *b, const conduit_endp *e, unsigned layer, bool *first)
{
        for (int o = 0; o < CONDUIT__OPT_COUNT; o++) {
                const char *v = e->opt[o];
                if (!v)
                        continue;
                put(b, *first ? "?" : "&");
                *first = false;
                for (unsigned i = 0; i < layer; i++)
                        put(b, "inner.");
                put(b, conduit__opt_name((enum conduit__opt)o));
                put(b, "=");
                put_enc(b, v, strlen(v), ENC_VALUE);
        }
}

int conduit__uri_format(const conduit_endp *e, char **ret)
{
        if (!e || !ret)
                return -EINVAL;
        const conduit_endp *t = e;
        unsigned depth = 0;
        for (; t->kind == CONDUIT_ENDP_TLS; t = t->inner, depth++)
                if (!t->inner)
                        return -EINVAL;

        struct buf b = { NULL, 0, 0, false };
        for (unsigned i = 0; i < depth; i++)
                put(&b, "tls+");
        switch (t->kind) {
        case CONDUIT_ENDP_TCP: put_tcp(&b, t); break;
        case CONDUIT_ENDP_UNIX: put_unix(&b, t); break;
        case CONDUIT_ENDP_VSOCK:
                put(&b, "vsock://");
                put_vsock_part(&b, t->cid);
                put(&b, ":");
                put_vsock_part(&b, t->port);
                break;
        case CONDUIT_ENDP_HYPERV: put_hyperv(&b, t); break;
        case CONDUIT_ENDP_VSOCK_MUX: put_vsock_mux(&b, t); break;
        case CONDUIT_ENDP_FD: {
                char num[16];
                snprintf(num, sizeof(num), "fd:%d", t->fd);
                put(&b, num);
                break;
        }
        case CONDUIT_ENDP_VCHAN:
                put(&b, "vchan://");
                put_u32(&b, t->cid);
                put(&b, "/");
                put_enc(&b, t->path ? t->path : "", t->path ? t->path_len : 0, ENC_PATH);
                break;
        case CONDUIT_ENDP_UNKNOWN:
                put(&b, "unknown:");
                if (t->host)
                        put_enc(&b, t->host, strlen(t->host), ENC_PATH);
                break;
        default: free(b.s); return -EINVAL;
        }

        /* the transport's options first, then the TLS layers' from the
         * outside in */
        bool first = true;
        put_options(&b, t, 0, &first);
        const conduit_endp *layer = e;
        for (unsigned i = 0; i < depth; i++, layer = layer->inner)
                put_options(&b, layer, i, &first);

        if (b.oom || b.len > INT_MAX) {
                free(b.s);
                return -ENOMEM;
        }
        *ret = b.s;
        return (int)b.len;
}
