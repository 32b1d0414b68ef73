/* SPDX-License-Identifier: MIT */
/* The URI parser: docs/uri.md's grammar, canonical forms and every alias,
 * turned into a conduit_endp. Pure: it decodes literals with inet_pton and
 * consults the service table, nothing else (no name resolution, no file
 * system), so it can be fuzzed and called from anywhere. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctx-private.h"
#include "endp-private.h"
#include "options.h"
#include "util.h"

/* Nobody layers TLS this deep on purpose; the cap keeps a hostile URI from
 * building chains that recursive copy/compare/free would choke on. */
#define TLS_DEPTH_MAX CONDUIT__TLS_DEPTH_MAX

/* Detail messages quote at most this much of the URI or of a part of it. */
#define URI_SHOWN_MAX  200
#define PART_SHOWN_MAX 64

#define VSOCK_ANY UINT32_MAX

struct parser {
        conduit_ctx *ctx;
        const char *uri;
        char *err;
        size_t errlen;
};

/* What the scheme-specific part yields before options are applied. */
struct base {
        conduit_endp *e;  /* the transport endp */
        unsigned tls;     /* TLS layers the scheme itself implies (https, OPENSSL) */
        const char *opts; /* option text after '?' or ',', NULL if none */
        size_t opts_len;
        char sep; /* '&' (query) or ',' (socat) */
};

static int fail(const struct parser *p, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Appends " in URI" to the message in err, so every message names the
 * input it is about. */
static void add_uri(const struct parser *p)
{
        if (!p->err || p->errlen == 0)
                return;
        size_t used = strlen(p->err);
        size_t ulen = strlen(p->uri);
        int n = ulen > URI_SHOWN_MAX ? URI_SHOWN_MAX : (int)ulen;
        conduit__errf(p->err + used, p->errlen - used, " in %.*s%s", n, p->uri,
                      ulen > URI_SHOWN_MAX ? "..." : "");
}

static int fail(const struct parser *p, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        conduit__verrf(p->err, p->errlen, fmt, ap);
        va_end(ap);
        add_uri(p);
        return code;
}

static int nomem(const struct parser *p)
{
        return fail(p, -ENOMEM, "out of memory");
}

/* For quoting a part of the URI with "%.*s": bounded length. */
static int shown(size_t len)
{
        return len > PART_SHOWN_MAX ? PART_SHOWN_MAX : (int)len;
}

static const char *ellipsis(size_t len)
{
        return len > PART_SHOWN_MAX ? "..." : "";
}

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool word_is(const char *s, size_t len, const char *word)
{
        /* the first letter (ASCII, either case) rules most words out cheaply */
        return len > 0 && (s[0] | 0x20) == (word[0] | 0x20) && strlen(word) == len &&
               strncasecmp(s, word, len) == 0;
}

static char *dup_n(const char *s, size_t len)
{
        char *d = malloc(len + 1);
        if (d) {
                memcpy(d, s, len);
                d[len] = '\0';
        }
        return d;
}

/* Percent-decodes [s, s+len) into a new NUL-terminated string. */
static int decode(const struct parser *p, const char *s, size_t len, bool allow_nul,
                  const char *what, char **ret, size_t *ret_len)
{
        char *out = malloc(len + 1);
        if (!out)
                return nomem(p);
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] != '%') {
                        out[o++] = s[i];
                        continue;
                }
                int hi = -1, lo = -1;
                if (i + 2 < len) {
                        hi = conduit__hex_value(s[i + 1]);
                        lo = conduit__hex_value(s[i + 2]);
                }
                if (hi < 0 || lo < 0) {
                        free(out);
                        return fail(p, CONDUIT_E_URI, "'%%' not followed by two hex digits in %s",
                                    what);
                }
                char c = (char)(hi << 4 | lo);
                if (c == '\0' && !allow_nul) {
                        free(out);
                        return fail(p, CONDUIT_E_URI,
                                    "%%00 in %s (only abstract socket names may hold NUL bytes)",
                                    what);
                }
                out[o++] = c;
                i += 2;
        }
        out[o] = '\0';
        *ret = out;
        if (ret_len)
                *ret_len = o;
        return 0;
}

/* Decimal digits, or 0x and hex digits: a number, possibly out of range. */
static bool looks_numeric(const char *s, size_t len)
{
        size_t i = 0;
        bool hex = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
        if (hex)
                i = 2;
        if (i == len)
                return false;
        for (; i < len; i++)
                if (!(hex ? conduit__hex_value(s[i]) >= 0 : is_digit(s[i])))
                        return false;
        return true;
}

static int parse_num(const struct parser *p, const char *s, size_t len, uint64_t max,
                     const char *what, uint64_t *ret)
{
        if (len == 0)
                return fail(p, CONDUIT_E_URI, "empty %s", what);
        if (conduit__parse_uint(s, len, max, ret))
                return 0;
        if (looks_numeric(s, len))
                return fail(p, CONDUIT_E_URI, "%s %.*s%s out of range (0-%llu)", what, shown(len),
                            s, ellipsis(len), (unsigned long long)max);
        return fail(p, CONDUIT_E_URI, "invalid %s '%.*s%s'", what, shown(len), s, ellipsis(len));
}

/* A TCP port; the socat forms also take a service name ("https"). */
static int parse_port(const struct parser *p, const char *s, size_t len, bool names, uint32_t *ret)
{
        uint64_t v;
        if (names && len > 0 && is_alpha(s[0])) {
                uint16_t port;
                bool tls;
                char *name = dup_n(s, len);
                if (!name)
                        return nomem(p);
                conduit__ascii_lower(name);
                int r = conduit__service_lookup(p->ctx, name, &port, &tls);
                free(name);
                if (r < 0)
                        return fail(p, CONDUIT_E_URI, "unknown port or service name '%.*s%s'",
                                    shown(len), s, ellipsis(len));
                *ret = port;
                return 0;
        }
        int r = parse_num(p, s, len, 65535, "port", &v);
        if (r < 0)
                return r;
        *ret = (uint32_t)v;
        return 0;
}

static conduit_endp *new_endp(const struct parser *p, struct base *b, conduit_endp_kind kind)
{
        b->e = conduit__endp_new(kind);
        if (!b->e)
                nomem(p);
        return b->e;
}

/* ---- option text -------------------------------------------------------- */

/* Canonical and gRPC forms: options follow the first '?'. */
static size_t split_query(const char *rest, struct base *b)
{
        const char *q = strchr(rest, '?');
        if (!q)
                return strlen(rest);
        b->opts = q + 1;
        b->opts_len = strlen(q + 1);
        b->sep = '&';
        return (size_t)(q - rest);
}

/* socat forms: options follow the first ',' and '?' has no meaning. */
static int split_socat(const struct parser *p, const char *rest, struct base *b, size_t *ret_len)
{
        if (strchr(rest, '?'))
                return fail(p, CONDUIT_E_URI,
                            "a '?' query is not allowed in socat forms (options follow ',')");
        const char *c = strchr(rest, ',');
        *ret_len = c ? (size_t)(c - rest) : strlen(rest);
        if (c) {
                b->opts = c + 1;
                b->opts_len = strlen(c + 1);
                b->sep = ',';
        }
        return 0;
}

/* After "//": the authority runs to the first '/'; only "" or "/" may
 * follow it. */
static int split_authority(const struct parser *p, const char *s, size_t len, size_t *ret_len)
{
        const char *slash = memchr(s, '/', len);
        if (slash) {
                size_t n = len - (size_t)(slash - s);
                if (n > 1)
                        return fail(p, CONDUIT_E_URI,
                                    "unexpected path '%.*s%s' (only '/' may follow the port)",
                                    shown(n), slash, ellipsis(n));
        }
        *ret_len = slash ? (size_t)(slash - s) : len;
        return 0;
}

/* ---- TCP ---------------------------------------------------------------- */

struct host_rules {
        int family;   /* tcp4/tcp6: forced family for names and wildcards */
        int literal;  /* ipv4:/ipv6: the address literal this form requires */
        int def_port; /* service schemes: the default port; -1: required */
        bool names;   /* socat: service names for ports */
        const char *scheme;
};

static int set_ipv6(const struct parser *p, conduit_endp *e, const char *s, size_t len,
                    const struct host_rules *hr)
{
        const char *pct = memchr(s, '%', len);
        size_t alen = pct ? (size_t)(pct - s) : len;
        char text[INET6_ADDRSTRLEN + 1];
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&e->addr;
        if (alen >= sizeof(text))
                goto bad;
        memcpy(text, s, alen);
        text[alen] = '\0';
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
                goto bad;
        if (hr->family == AF_INET || hr->literal == AF_INET)
                return fail(p, CONDUIT_E_URI, "IPv6 address [%s] where %s requires IPv4", text,
                            hr->scheme);
        in6->sin6_family = AF_INET6;
        e->has_addr = true;
        if (pct) {
                /* RFC 6874 writes the zone after "%25"; a bare "%25" is
                 * the zone "25" itself. */
                const char *z = pct + 1;
                size_t zlen = len - alen - 1;
                if (zlen > 2 && z[0] == '2' && z[1] == '5') {
                        z += 2;
                        zlen -= 2;
                }
                size_t dlen;
                int r = decode(p, z, zlen, false, "IPv6 zone", &e->zone, &dlen);
                if (r < 0)
                        return r;
                if (dlen == 0)
                        return fail(p, CONDUIT_E_URI, "empty IPv6 zone after '%%'");
        }
        if (!inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)) || !(e->host = strdup(text)))
                return nomem(p);
        return 0;
bad:
        return fail(p, CONDUIT_E_URI, "'%.*s%s' is not an IPv6 address", shown(alen), s,
                    ellipsis(alen));
}

static int set_host(const struct parser *p, conduit_endp *e, const char *s, size_t len,
                    const struct host_rules *hr)
{
        if (len == 0) {
                if (hr->literal)
                        return fail(p, CONDUIT_E_URI, "%s requires an IP address", hr->scheme);
                e->family = hr->family;
                return 0;
        }
        char *name;
        size_t nlen;
        int r = decode(p, s, len, false, "host name", &name, &nlen);
        if (r < 0)
                return r;
        struct sockaddr_in *in = (struct sockaddr_in *)&e->addr;
        if (strlen(name) == nlen && inet_pton(AF_INET, name, &in->sin_addr) == 1) {
                if (hr->family == AF_INET6 || hr->literal == AF_INET6) {
                        r = fail(p, CONDUIT_E_URI, "IPv4 address %s where %s requires IPv6", name,
                                 hr->scheme);
                        free(name);
                        return r;
                }
                /* inet_pton takes only the dotted quad inet_ntop prints,
                 * so name is already the canonical text. */
                in->sin_family = AF_INET;
                e->has_addr = true;
                e->host = name;
                return 0;
        }
        if (hr->literal == AF_INET) {
                r = fail(p, CONDUIT_E_URI, "'%.*s%s' is not an IPv4 address", shown(nlen), name,
                         ellipsis(nlen));
                free(name);
                return r;
        }
        if (hr->literal == AF_INET6) {
                free(name);
                return fail(p, CONDUIT_E_URI, "%s requires an IPv6 address in brackets",
                            hr->scheme);
        }
        const char *why = "";
        r = conduit__host_name_check(name, nlen, &why);
        if (r < 0) {
                r = fail(p, r, "%s: '%.*s%s'", why, shown(nlen), name, ellipsis(nlen));
                free(name);
                return r;
        }
        conduit__ascii_lower(name);
        e->host = name;
        e->family = hr->family;
        return 0;
}

/* HOST[:PORT], HOST an IPv4 literal, a name, [IPv6%ZONE] or empty. */
static int parse_host_port(const struct parser *p, conduit_endp *e, const char *s, size_t len,
                           const struct host_rules *hr)
{
        const char *host = s, *port = NULL;
        size_t host_len, port_len = 0;
        bool bracket = len > 0 && s[0] == '[';
        if (memchr(s, '@', len))
                return fail(p, CONDUIT_E_URI, "user information ('user@') is not allowed");
        if (bracket) {
                const char *close = memchr(s, ']', len);
                if (!close)
                        return fail(p, CONDUIT_E_URI, "missing ']' after IPv6 address");
                host = s + 1;
                host_len = (size_t)(close - host);
                const char *after = close + 1;
                size_t after_len = len - (size_t)(after - s);
                if (after_len > 0) {
                        if (after[0] != ':')
                                return fail(p, CONDUIT_E_URI, "unexpected '%c' after ']'",
                                            after[0]);
                        port = after + 1;
                        port_len = after_len - 1;
                }
        } else {
                const char *colon = memchr(s, ':', len);
                if (colon && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)))
                        return fail(p, CONDUIT_E_URI,
                                    "IPv6 addresses must be written in brackets ([::1]:80)");
                host_len = colon ? (size_t)(colon - s) : len;
                if (colon) {
                        port = colon + 1;
                        port_len = len - host_len - 1;
                }
        }
        int r = bracket ? set_ipv6(p, e, host, host_len, hr) : set_host(p, e, host, host_len, hr);
        if (r < 0)
                return r;
        if (!port) {
                if (hr->def_port < 0)
                        return fail(p, CONDUIT_E_URI, "missing port (%s://HOST:PORT)", hr->scheme);
                e->port = (uint32_t)hr->def_port;
                return 0;
        }
        return parse_port(p, port, port_len, hr->names, &e->port);
}

/* ---- Unix --------------------------------------------------------------- */

static int set_abstract(const struct parser *p, conduit_endp *e, const char *s, size_t len)
{
        int r = decode(p, s, len, true, "abstract socket name", &e->path, &e->path_len);
        if (r < 0)
                return r;
        e->abstract = true;
        if (e->path_len > CONDUIT__UNIX_ABSTRACT_MAX)
                return fail(p, -ENAMETOOLONG, "abstract socket name is %zu bytes, longer than %d",
                            e->path_len, CONDUIT__UNIX_ABSTRACT_MAX);
        return 0;
}

/* A path, "@" and an abstract name, or nothing (the unnamed socket). */
static int set_unix(const struct parser *p, conduit_endp *e, const char *s, size_t len)
{
        if (len > 0 && s[0] == '@')
                return set_abstract(p, e, s + 1, len - 1);
        if (len == 0)
                return 0;
        int r = decode(p, s, len, false, "Unix socket path", &e->path, &e->path_len);
        if (r < 0)
                return r;
        if (e->path_len > CONDUIT__UNIX_PATH_MAX)
                return fail(p, -ENAMETOOLONG, "Unix socket path is %zu bytes, longer than %d",
                            e->path_len, CONDUIT__UNIX_PATH_MAX);
        return 0;
}

/* "unix:" + body: "//" with an empty authority and an absolute path, "//@"
 * and an abstract name, or a path as it is. */
static int parse_unix_uri(const struct parser *p, conduit_endp *e, const char *s, size_t len)
{
        if (len < 2 || s[0] != '/' || s[1] != '/')
                return set_unix(p, e, s, len);
        s += 2;
        len -= 2;
        if (len == 0)
                return fail(p, CONDUIT_E_URI, "missing path (unix:///abs/path or unix:rel/path)");
        if (s[0] != '/' && s[0] != '@')
                return fail(p, CONDUIT_E_URI,
                            "unix URIs take no host (write unix:///abs/path or unix:rel/path)");
        return set_unix(p, e, s, len);
}

/* PATH:PORT, the port after the last ':'. */
static int parse_vsock_mux(const struct parser *p, conduit_endp *e, const char *s, size_t len,
                           const char *scheme)
{
        if (len >= 2 && s[0] == '/' && s[1] == '/') {
                s += 2;
                len -= 2;
                if (len > 0 && s[0] != '/')
                        return fail(p, CONDUIT_E_URI,
                                    "%s URIs take no host (write %s:///abs/path:PORT)", scheme,
                                    scheme);
        }
        const char *colon = NULL;
        for (size_t i = len; i > 0; i--)
                if (s[i - 1] == ':') {
                        colon = s + i - 1;
                        break;
                }
        if (!colon)
                return fail(p, CONDUIT_E_URI, "missing port (%s:///path:PORT)", scheme);
        size_t path_len = (size_t)(colon - s);
        if (path_len == 0)
                return fail(p, CONDUIT_E_URI, "missing socket path before ':PORT'");
        int r = decode(p, s, path_len, false, "socket path", &e->path, &e->path_len);
        if (r < 0)
                return r;
        if (e->path_len > CONDUIT__UNIX_PATH_MAX)
                return fail(p, -ENAMETOOLONG, "socket path is %zu bytes, longer than %d",
                            e->path_len, CONDUIT__UNIX_PATH_MAX);
        uint64_t port;
        r = parse_num(p, colon + 1, len - path_len - 1, UINT32_MAX, "vsock port", &port);
        if (r < 0)
                return r;
        e->port = (uint32_t)port;
        return 0;
}

/* ---- vsock, Hyper-V, vchan ---------------------------------------------- */

static int parse_cid(const struct parser *p, const char *s, size_t len, uint32_t *ret)
{
        static const struct {
                const char *name;
                uint32_t cid;
        } names[] = { { "hypervisor", 0 }, { "local", 1 }, { "host", 2 }, { "any", VSOCK_ANY } };
        if (len == 0 || word_is(s, len, "-1")) {
                *ret = VSOCK_ANY;
                return 0;
        }
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(names); i++)
                if (word_is(s, len, names[i].name)) {
                        *ret = names[i].cid;
                        return 0;
                }
        if (!looks_numeric(s, len))
                return fail(p, CONDUIT_E_URI,
                            "invalid CID '%.*s%s' (a number, hypervisor, local, host or any)",
                            shown(len), s, ellipsis(len));
        uint64_t v;
        int r = parse_num(p, s, len, UINT32_MAX, "CID", &v);
        if (r < 0)
                return r;
        *ret = (uint32_t)v;
        return 0;
}

static int parse_vsock_port(const struct parser *p, const char *s, size_t len, uint32_t *ret)
{
        if (word_is(s, len, "-1") || word_is(s, len, "any")) {
                *ret = VSOCK_ANY;
                return 0;
        }
        uint64_t v;
        int r = parse_num(p, s, len, UINT32_MAX, "vsock port", &v);
        if (r < 0)
                return r;
        *ret = (uint32_t)v;
        return 0;
}

/* CID:PORT */
static int parse_vsock_addr(const struct parser *p, conduit_endp *e, const char *s, size_t len)
{
        const char *colon = memchr(s, ':', len);
        if (!colon)
                return fail(p, CONDUIT_E_URI, "missing port (vsock://CID:PORT)");
        int r = parse_cid(p, s, (size_t)(colon - s), &e->cid);
        if (r < 0)
                return r;
        return parse_vsock_port(p, colon + 1, len - (size_t)(colon - s) - 1, &e->port);
}

/* VMID/SERVICE */
static int parse_hyperv(const struct parser *p, conduit_endp *e, const char *s, size_t len)
{
        const char *slash = memchr(s, '/', len);
        size_t vlen = slash ? (size_t)(slash - s) : len;
        if (!conduit__hv_vm_lookup(s, vlen, e->vmid) && !conduit__guid_parse(s, vlen, e->vmid))
                return fail(p, CONDUIT_E_URI,
                            "invalid VM id '%.*s%s' (a GUID, wildcard, children, loopback, "
                            "parent or silohost)",
                            shown(vlen), s, ellipsis(vlen));
        if (!slash || slash + 1 == s + len)
                return fail(p, CONDUIT_E_URI, "missing service (hyperv://VMID/SERVICE)");
        const char *svc = slash + 1;
        size_t slen = len - vlen - 1;
        if (conduit__guid_parse(svc, slen, e->service))
                return 0;
        if (!looks_numeric(svc, slen))
                return fail(p, CONDUIT_E_URI, "invalid service '%.*s%s' (a GUID or a port number)",
                            shown(slen), svc, ellipsis(slen));
        uint64_t port;
        int r = parse_num(p, svc, slen, UINT32_MAX, "service port", &port);
        if (r < 0)
                return r;
        conduit__hv_service_from_port((uint32_t)port, e->service);
        return 0;
}

/* DOMID/PORTNAME */
static int parse_vchan(const struct parser *p, conduit_endp *e, const char *s, size_t len)
{
        const char *slash = memchr(s, '/', len);
        if (!slash)
                return fail(p, CONDUIT_E_URI, "missing port name (vchan://DOMID/PORTNAME)");
        uint64_t dom;
        int r = parse_num(p, s, (size_t)(slash - s), 65535, "domain id", &dom);
        if (r < 0)
                return r;
        e->cid = (uint32_t)dom;
        size_t nlen = len - (size_t)(slash - s) - 1;
        if (nlen == 0)
                return fail(p, CONDUIT_E_URI, "empty vchan port name");
        return decode(p, slash + 1, nlen, false, "vchan port name", &e->path, &e->path_len);
}

/* ---- schemes ------------------------------------------------------------ */

enum keyword {
        KW_TCP,
        KW_TCP4,
        KW_TCP6,
        KW_TCP_LISTEN,
        KW_TCP4_LISTEN,
        KW_TCP6_LISTEN,
        KW_IPV4,
        KW_IPV6,
        KW_UNIX,
        KW_UNIX_CONNECT,
        KW_UNIX_LISTEN,
        KW_UNIX_ABSTRACT,
        KW_ABSTRACT,
        KW_ABSTRACT_CONNECT,
        KW_ABSTRACT_LISTEN,
        KW_VSOCK,
        KW_VSOCK_CONNECT,
        KW_VSOCK_LISTEN,
        KW_HYPERV,
        KW_HVSOCK,
        KW_VSOCK_MUX,
        KW_FD,
        KW_VCHAN,
        KW_OPENSSL,
        KW_SSL,
        KW_UNKNOWN,
        KW_TLS,
        KW_NONE
};

static const char *const keywords[] = {
        [KW_TCP] = "tcp",
        [KW_TCP4] = "tcp4",
        [KW_TCP6] = "tcp6",
        [KW_TCP_LISTEN] = "tcp-listen",
        [KW_TCP4_LISTEN] = "tcp4-listen",
        [KW_TCP6_LISTEN] = "tcp6-listen",
        [KW_IPV4] = "ipv4",
        [KW_IPV6] = "ipv6",
        [KW_UNIX] = "unix",
        [KW_UNIX_CONNECT] = "unix-connect",
        [KW_UNIX_LISTEN] = "unix-listen",
        [KW_UNIX_ABSTRACT] = "unix-abstract",
        [KW_ABSTRACT] = "abstract",
        [KW_ABSTRACT_CONNECT] = "abstract-connect",
        [KW_ABSTRACT_LISTEN] = "abstract-listen",
        [KW_VSOCK] = "vsock",
        [KW_VSOCK_CONNECT] = "vsock-connect",
        [KW_VSOCK_LISTEN] = "vsock-listen",
        [KW_HYPERV] = "hyperv",
        [KW_HVSOCK] = "hvsock",
        [KW_VSOCK_MUX] = "vsock-mux",
        [KW_FD] = "fd",
        [KW_VCHAN] = "vchan",
        [KW_OPENSSL] = "openssl",
        [KW_SSL] = "ssl",
        [KW_UNKNOWN] = "unknown",
        [KW_TLS] = "tls",
};

static enum keyword find_keyword(const char *s, size_t len)
{
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(keywords); i++)
                if (word_is(s, len, keywords[i]))
                        return (enum keyword)i;
        return KW_NONE;
}

bool conduit__uri_scheme_reserved(const char *scheme)
{
        return scheme && find_keyword(scheme, strlen(scheme)) != KW_NONE;
}

static bool scheme_char(char c)
{
        return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
}

static int family_of(enum keyword kw)
{
        switch (kw) {
        case KW_TCP4:
        case KW_TCP4_LISTEN: return AF_INET;
        case KW_TCP6:
        case KW_TCP6_LISTEN: return AF_INET6;
        default: return AF_UNSPEC;
        }
}

/* tcp://, tcp4://, tcp6:// and service schemes: "//" HOST[:PORT] ["/"]. */
static int parse_tcp_uri(const struct parser *p, struct base *b, const char *rest,
                         const struct host_rules *hr)
{
        size_t len = split_query(rest, b), alen;
        int r = split_authority(p, rest, len, &alen);
        if (r < 0)
                return r;
        if (!new_endp(p, b, CONDUIT_ENDP_TCP))
                return -ENOMEM;
        return parse_host_port(p, b->e, rest, alen, hr);
}

/* Everything after the scheme's ':' for the URI's transport. */
static int parse_scheme(const struct parser *p, struct base *b, enum keyword kw, const char *scheme,
                        size_t scheme_len, const char *rest)
{
        bool slashes = rest[0] == '/' && rest[1] == '/';
        struct host_rules hr = { family_of(kw), AF_UNSPEC, -1, false,
                                 kw < KW_NONE ? keywords[kw] : "this scheme" };
        size_t len;
        int r;

        switch (kw) {
        case KW_TCP:
        case KW_TCP4:
        case KW_TCP6:
        case KW_OPENSSL:
        case KW_SSL:
                if (slashes && (kw == KW_TCP || kw == KW_TCP4 || kw == KW_TCP6))
                        return parse_tcp_uri(p, b, rest + 2, &hr);
                if ((r = split_socat(p, rest, b, &len)) < 0)
                        return r;
                hr.names = true;
                b->tls = kw == KW_OPENSSL || kw == KW_SSL;
                if (!new_endp(p, b, CONDUIT_ENDP_TCP))
                        return -ENOMEM;
                return parse_host_port(p, b->e, rest, len, &hr);
        case KW_TCP_LISTEN:
        case KW_TCP4_LISTEN:
        case KW_TCP6_LISTEN:
                if ((r = split_socat(p, rest, b, &len)) < 0)
                        return r;
                if (!new_endp(p, b, CONDUIT_ENDP_TCP))
                        return -ENOMEM;
                b->e->family = hr.family;
                return parse_port(p, rest, len, true, &b->e->port);
        case KW_IPV4:
        case KW_IPV6:
                hr.literal = kw == KW_IPV4 ? AF_INET : AF_INET6;
                len = split_query(rest, b);
                if (!new_endp(p, b, CONDUIT_ENDP_TCP))
                        return -ENOMEM;
                return parse_host_port(p, b->e, rest, len, &hr);
        case KW_UNIX:
                len = split_query(rest, b);
                if (!new_endp(p, b, CONDUIT_ENDP_UNIX))
                        return -ENOMEM;
                return parse_unix_uri(p, b->e, rest, len);
        case KW_UNIX_CONNECT:
        case KW_UNIX_LISTEN:
                if ((r = split_socat(p, rest, b, &len)) < 0)
                        return r;
                if (len == 0)
                        return fail(p, CONDUIT_E_URI, "missing Unix socket path");
                if (!new_endp(p, b, CONDUIT_ENDP_UNIX))
                        return -ENOMEM;
                return set_unix(p, b->e, rest, len);
        case KW_UNIX_ABSTRACT:
                len = split_query(rest, b);
                if (!new_endp(p, b, CONDUIT_ENDP_UNIX))
                        return -ENOMEM;
                return set_abstract(p, b->e, rest, len);
        case KW_ABSTRACT:
        case KW_ABSTRACT_CONNECT:
        case KW_ABSTRACT_LISTEN:
                if ((r = split_socat(p, rest, b, &len)) < 0)
                        return r;
                if (!new_endp(p, b, CONDUIT_ENDP_UNIX))
                        return -ENOMEM;
                return set_abstract(p, b->e, rest, len);
        case KW_VSOCK:
                if (!slashes) {
                        len = split_query(rest, b);
                } else {
                        rest += 2;
                        len = split_query(rest, b);
                        if ((r = split_authority(p, rest, len, &len)) < 0)
                                return r;
                }
                if (!new_endp(p, b, CONDUIT_ENDP_VSOCK))
                        return -ENOMEM;
                return parse_vsock_addr(p, b->e, rest, len);
        case KW_VSOCK_CONNECT:
        case KW_VSOCK_LISTEN:
                if ((r = split_socat(p, rest, b, &len)) < 0)
                        return r;
                if (!new_endp(p, b, CONDUIT_ENDP_VSOCK))
                        return -ENOMEM;
                if (kw == KW_VSOCK_CONNECT)
                        return parse_vsock_addr(p, b->e, rest, len);
                b->e->cid = VSOCK_ANY;
                return parse_vsock_port(p, rest, len, &b->e->port);
        case KW_HYPERV:
        case KW_HVSOCK:
                /* hvsock:///path:PORT is Kata's hybrid vsock, hvsock://VM/SVC
                 * linuxkit's Hyper-V socket. */
                if (slashes && rest[2] != '/') {
                        len = split_query(rest + 2, b);
                        if (!new_endp(p, b, CONDUIT_ENDP_HYPERV))
                                return -ENOMEM;
                        return parse_hyperv(p, b->e, rest + 2, len);
                }
                if (kw == KW_HYPERV)
                        return fail(p, CONDUIT_E_URI, "expected hyperv://VMID/SERVICE");
                __attribute__((fallthrough));
        case KW_VSOCK_MUX:
                len = split_query(rest, b);
                if (!new_endp(p, b, CONDUIT_ENDP_VSOCK_MUX))
                        return -ENOMEM;
                return parse_vsock_mux(p, b->e, rest, len, keywords[kw]);
        case KW_FD: {
                /* fd: is both the canonical form (with '?') and socat's FD:
                 * (with ','); a number holds neither. */
                const char *q = strchr(rest, '?'), *c = strchr(rest, ',');
                if (c && (!q || c < q)) {
                        if ((r = split_socat(p, rest, b, &len)) < 0)
                                return r;
                } else {
                        len = split_query(rest, b);
                }
                if (len > 0 && rest[0] == '-')
                        return fail(p, CONDUIT_E_URI, "negative file descriptor");
                uint64_t fd;
                if ((r = parse_num(p, rest, len, INT_MAX, "file descriptor", &fd)) < 0)
                        return r;
                if (!new_endp(p, b, CONDUIT_ENDP_FD))
                        return -ENOMEM;
                b->e->fd = (int)fd;
                return 0;
        }
        case KW_VCHAN:
                if (!slashes)
                        return fail(p, CONDUIT_E_URI, "expected vchan://DOMID/PORTNAME");
                len = split_query(rest + 2, b);
                if (!new_endp(p, b, CONDUIT_ENDP_VCHAN))
                        return -ENOMEM;
                return parse_vchan(p, b->e, rest + 2, len);
        case KW_UNKNOWN: {
                len = split_query(rest, b);
                if (!new_endp(p, b, CONDUIT_ENDP_UNKNOWN))
                        return -ENOMEM;
                if (len == 0)
                        return 0;
                return decode(p, rest, len, false, "reason", &b->e->host, NULL);
        }
        case KW_TLS:
                return fail(p, CONDUIT_E_URI,
                            "'tls' takes '+' and an inner URI (tls+tcp://HOST:PORT)");
        case KW_NONE: break;
        }

        /* Any other scheme names a service: SCHEME://HOST[:PORT]. */
        uint16_t port;
        bool tls;
        char *name = dup_n(scheme, scheme_len);
        if (!name)
                return nomem(p);
        conduit__ascii_lower(name);
        r = conduit__service_lookup(p->ctx, name, &port, &tls);
        if (r < 0) {
                r = fail(p, CONDUIT_E_SCHEME, "unknown scheme '%.*s%s'", shown(scheme_len), name,
                         ellipsis(scheme_len));
                free(name);
                return r;
        }
        if (!slashes) {
                r = fail(p, CONDUIT_E_URI, "expected %.*s%s://HOST[:PORT]", shown(scheme_len), name,
                         ellipsis(scheme_len));
                free(name);
                return r;
        }
        free(name);
        hr.def_port = port;
        hr.scheme = "this scheme";
        b->tls = tls;
        return parse_tcp_uri(p, b, rest + 2, &hr);
}

static int parse_base(const struct parser *p, const char *s, struct base *b)
{
        size_t len;
        /* systemd: a bare absolute path or "@" and an abstract name */
        if (s[0] == '/' || s[0] == '@') {
                len = split_query(s, b);
                if (!new_endp(p, b, CONDUIT_ENDP_UNIX))
                        return -ENOMEM;
                return set_unix(p, b->e, s, len);
        }
        size_t n = 0;
        if (is_alpha(s[0]))
                while (scheme_char(s[n]))
                        n++;
        if (n == 0 || s[n] != ':')
                return fail(p, CONDUIT_E_URI,
                            s[0] ? "missing scheme (as in tcp://HOST:PORT)" : "empty URI");
        return parse_scheme(p, b, find_keyword(s, n), s, n, s + n + 1);
}

/* ---- options ------------------------------------------------------------ */

static int apply_one(const struct parser *p, conduit_endp *top, unsigned depth,
                     conduit_endp *transport, const char *s, size_t len)
{
        if (len == 0)
                return fail(p, CONDUIT_E_URI, "empty option");
        const char *eq = memchr(s, '=', len);
        size_t raw_klen = eq ? (size_t)(eq - s) : len;
        if (raw_klen == 0)
                return fail(p, CONDUIT_E_URI, "option without a name");
        char *key, *value = NULL;
        size_t klen, vlen = 0;
        int r = decode(p, s, raw_klen, false, "option name", &key, &klen);
        if (r < 0)
                return r;
        for (size_t i = 0; i < klen; i++)
                key[i] = key[i] == '-' ? '_' : key[i];
        conduit__ascii_lower(key);

        /* "inner." moves a TLS option one layer down */
        unsigned layer = 0;
        const char *name = key;
        size_t nlen = klen;
        while (nlen > 6 && memcmp(name, "inner.", 6) == 0) {
                layer++;
                name += 6;
                nlen -= 6;
        }
        enum conduit__opt o;
        conduit_endp *target = transport;
        /* messages quote the key as written */
        const char *raw = s;
        int kshown = shown(raw_klen);
        const char *kell = ellipsis(raw_klen);
        if (!conduit__opt_lookup(name, nlen, &o)) {
                r = fail(p, CONDUIT_E_OPTION, "unknown option '%.*s%s'", kshown, raw, kell);
                goto out;
        }
        if (conduit__opt_is_tls(o)) {
                if (depth == 0) {
                        r = fail(p, CONDUIT_E_OPTION,
                                 "option '%.*s%s' does not apply to %s endpoints (TLS options "
                                 "need a tls+ URI)",
                                 kshown, raw, kell, conduit__endp_desc(transport));
                        goto out;
                }
                if (layer >= depth) {
                        r = fail(p, CONDUIT_E_OPTION,
                                 "option '%.*s%s' names TLS layer %u, but there %s only %u", kshown,
                                 raw, kell, layer + 1, depth == 1 ? "is" : "are", depth);
                        goto out;
                }
                target = top;
                for (unsigned i = 0; i < layer; i++)
                        target = target->inner;
        } else if (layer > 0) {
                r = fail(p, CONDUIT_E_OPTION,
                         "option '%.*s%s': transport options take no 'inner.' prefix", kshown, raw,
                         kell);
                goto out;
        } else if (!conduit__opt_applies(o, transport)) {
                r = fail(p, CONDUIT_E_OPTION, "option '%.*s%s' does not apply to %s endpoints",
                         kshown, raw, kell, conduit__endp_desc(transport));
                goto out;
        }
        if (target->opt[o]) {
                r = fail(p, CONDUIT_E_URI, "option '%.*s%s' given twice", kshown, raw, kell);
                goto out;
        }
        if (eq &&
            (r = decode(p, eq + 1, len - raw_klen - 1, false, "option value", &value, &vlen)) < 0)
                goto out;
        r = conduit__opt_canon(o, value, vlen, &target->opt[o], p->err, p->errlen);
        if (r < 0)
                add_uri(p);
out:
        free(key);
        free(value);
        return r;
}

static int apply_options(const struct parser *p, conduit_endp *top, unsigned depth,
                         const struct base *b)
{
        if (!b->opts)
                return 0;
        /* "tcp://h:1?" is fine; "TCP:h:1," is a missing option */
        if (b->opts_len == 0 && b->sep == '&')
                return 0;
        size_t start = 0;
        for (size_t i = 0; i <= b->opts_len; i++) {
                if (i < b->opts_len && b->opts[i] != b->sep)
                        continue;
                int r = apply_one(p, top, depth, b->e, b->opts + start, i - start);
                if (r < 0)
                        return r;
                start = i + 1;
        }
        return 0;
}

int conduit__uri_parse(conduit_ctx *ctx, const char *uri, conduit_endp **ret, char *err,
                       size_t errlen)
{
        struct parser p = { ctx, uri ? uri : "", err, errlen };
        if (err && errlen)
                err[0] = '\0';
        if (!uri || !ret)
                return fail(&p, -EINVAL, "no URI");

        for (const char *c = uri; *c; c++) {
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        return fail(&p, CONDUIT_E_URI,
                                    "control character at offset %zu (percent-encode it)",
                                    (size_t)(c - uri));
                if (*c == '#')
                        return fail(&p, CONDUIT_E_URI, "fragments ('#') are not allowed");
        }

        const char *s = uri;
        unsigned depth = 0;
        while (strncasecmp(s, "tls+", 4) == 0) {
                if (++depth > TLS_DEPTH_MAX)
                        return fail(&p, CONDUIT_E_URI, "more than %d TLS layers", TLS_DEPTH_MAX);
                s += 4;
        }

        struct base b = { NULL, 0, NULL, 0, '&' };
        int r = parse_base(&p, s, &b);
        if (r < 0) {
                conduit_endp_free(b.e);
                return r;
        }
        depth += b.tls;
        if (depth > TLS_DEPTH_MAX) {
                conduit_endp_free(b.e);
                return fail(&p, CONDUIT_E_URI, "more than %d TLS layers", TLS_DEPTH_MAX);
        }
        conduit_endp *top = b.e;
        for (unsigned i = 0; i < depth; i++) {
                conduit_endp *t = conduit__endp_new(CONDUIT_ENDP_TLS);
                if (!t) {
                        conduit_endp_free(top);
                        return nomem(&p);
                }
                t->inner = top;
                top = t;
        }
        r = apply_options(&p, top, depth, &b);
        if (r < 0) {
                conduit_endp_free(top);
                return r;
        }
        *ret = top;
        return 0;
}
