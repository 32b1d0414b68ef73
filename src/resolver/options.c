/* SPDX-License-Identifier: MIT */
/* The query option table: names, where each option applies, and how its
 * value is checked and brought to the one canonical spelling the printer
 * emits (so that equal endps print equally). Also the Hyper-V GUID helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "options.h"
#include "util.h"

enum opt_type {
        T_BOOL,
        T_DURATION,
        T_KEEPALIVE,
        T_MODE,
        T_HANDSHAKE,
        T_SIZE,
        T_SERVERNAME,
        T_FILE,
        T_ALPN,
        T_MIN_VERSION,
        T_PIN,
        T_CIPHERSUITES,
};

#define ON_CONNECTING                                                                              \
        (CONDUIT__ON_TCP | CONDUIT__ON_UNIX_PATH | CONDUIT__ON_UNIX_ABSTRACT | CONDUIT__ON_VSOCK | \
         CONDUIT__ON_HYPERV | CONDUIT__ON_VSOCK_MUX)

static const struct opt_def {
        const char *name;
        const char *aliases[2];
        unsigned applies;
        enum opt_type type;
} opt_table[CONDUIT__OPT_COUNT] = {
        [CONDUIT__OPT_CONNECT_TIMEOUT] = { "connect_timeout", { NULL }, ON_CONNECTING, T_DURATION },
        [CONDUIT__OPT_NODELAY] = { "nodelay", { NULL }, CONDUIT__ON_TCP, T_BOOL },
        [CONDUIT__OPT_KEEPALIVE] = { "keepalive", { NULL }, CONDUIT__ON_TCP, T_KEEPALIVE },
        [CONDUIT__OPT_MODE] = { "mode",
                                { NULL },
                                CONDUIT__ON_UNIX_PATH | CONDUIT__ON_VSOCK_MUX,
                                T_MODE },
        [CONDUIT__OPT_UNLINK] = { "unlink",
                                  { NULL },
                                  CONDUIT__ON_UNIX_PATH | CONDUIT__ON_VSOCK_MUX,
                                  T_BOOL },
        [CONDUIT__OPT_TO_HOST] = { "to_host", { NULL }, CONDUIT__ON_VSOCK, T_BOOL },
        [CONDUIT__OPT_HANDSHAKE] = { "handshake", { NULL }, CONDUIT__ON_VSOCK_MUX, T_HANDSHAKE },
        [CONDUIT__OPT_RETRY] = { "retry", { NULL }, ON_CONNECTING, T_DURATION },
        [CONDUIT__OPT_MAX_IO] = { "max_io", { "message_size" }, ON_CONNECTING, T_SIZE },
        [CONDUIT__OPT_SERVERNAME] = { "servername",
                                      { "sni", "snihost" },
                                      CONDUIT__ON_TLS,
                                      T_SERVERNAME },
        [CONDUIT__OPT_VERIFY] = { "verify", { NULL }, CONDUIT__ON_TLS, T_BOOL },
        [CONDUIT__OPT_CAFILE] = { "cafile", { NULL }, CONDUIT__ON_TLS, T_FILE },
        [CONDUIT__OPT_CAPATH] = { "capath", { NULL }, CONDUIT__ON_TLS, T_FILE },
        [CONDUIT__OPT_CERT] = { "cert", { NULL }, CONDUIT__ON_TLS, T_FILE },
        [CONDUIT__OPT_KEY] = { "key", { NULL }, CONDUIT__ON_TLS, T_FILE },
        [CONDUIT__OPT_ALPN] = { "alpn", { NULL }, CONDUIT__ON_TLS, T_ALPN },
        [CONDUIT__OPT_MIN_VERSION] = { "min_version", { NULL }, CONDUIT__ON_TLS, T_MIN_VERSION },
        [CONDUIT__OPT_MAX_VERSION] = { "max_version", { NULL }, CONDUIT__ON_TLS, T_MIN_VERSION },
        [CONDUIT__OPT_PIN] = { "pin", { NULL }, CONDUIT__ON_TLS, T_PIN },
        [CONDUIT__OPT_SESSION_CACHE] = { "session_cache", { NULL }, CONDUIT__ON_TLS, T_BOOL },
        [CONDUIT__OPT_CIPHERSUITES] = { "ciphersuites", { NULL }, CONDUIT__ON_TLS, T_CIPHERSUITES },
};

/* The kernel's limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT):
 * larger values could never be applied, so they are refused up front. */
#define KEEPALIVE_IDLE_MAX     32767
#define KEEPALIVE_INTERVAL_MAX 32767
#define KEEPALIVE_PROBES_MAX   127

/* A detail message shows at most this much of a value. */
#define SHOW_MAX 64

void conduit__verrf(char *err, size_t errlen, const char *fmt, va_list ap)
{
        if (!err || errlen == 0)
                return;
        vsnprintf(err, errlen, fmt, ap);
        for (char *c = err; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
}

void conduit__errf(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        conduit__verrf(err, errlen, fmt, ap);
        va_end(ap);
}

const char *conduit__opt_name(enum conduit__opt o)
{
        if ((unsigned)o >= CONDUIT__OPT_COUNT)
                return NULL;
        return opt_table[o].name;
}

static bool key_is(const char *key, size_t len, const char *name)
{
        return name && strlen(name) == len && memcmp(key, name, len) == 0;
}

bool conduit__opt_lookup(const char *key, size_t len, enum conduit__opt *ret)
{
        for (size_t i = 0; i < CONDUIT__OPT_COUNT; i++) {
                const struct opt_def *d = &opt_table[i];
                if (key_is(key, len, d->name) || key_is(key, len, d->aliases[0]) ||
                    key_is(key, len, d->aliases[1])) {
                        *ret = (enum conduit__opt)i;
                        return true;
                }
        }
        return false;
}

static unsigned endp_bit(const conduit_endp *e)
{
        switch (e->kind) {
        case CONDUIT_ENDP_TCP: return CONDUIT__ON_TCP;
        case CONDUIT_ENDP_UNIX:
                return e->abstract ? CONDUIT__ON_UNIX_ABSTRACT : CONDUIT__ON_UNIX_PATH;
        case CONDUIT_ENDP_VSOCK: return CONDUIT__ON_VSOCK;
        case CONDUIT_ENDP_HYPERV: return CONDUIT__ON_HYPERV;
        case CONDUIT_ENDP_VSOCK_MUX: return CONDUIT__ON_VSOCK_MUX;
        case CONDUIT_ENDP_FD: return CONDUIT__ON_FD;
        case CONDUIT_ENDP_VCHAN: return CONDUIT__ON_VCHAN;
        case CONDUIT_ENDP_TLS: return CONDUIT__ON_TLS;
        case CONDUIT_ENDP_UNKNOWN: break;
        }
        return CONDUIT__ON_UNKNOWN;
}

bool conduit__opt_applies(enum conduit__opt o, const conduit_endp *e)
{
        return (unsigned)o < CONDUIT__OPT_COUNT && (opt_table[o].applies & endp_bit(e)) != 0;
}

const char *conduit__endp_desc(const conduit_endp *e)
{
        if (e->kind == CONDUIT_ENDP_UNIX && e->abstract)
                return "abstract unix";
        return conduit_endp_kind_name(e->kind);
}

/* ---- value parsers ------------------------------------------------------ */

static bool word_is(const char *s, size_t len, const char *word)
{
        return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* 1 / 0 for a boolean spelling, -1 otherwise. */
static int parse_bool(const char *s, size_t len)
{
        static const char *const yes[] = { "1", "true", "yes", "on" };
        static const char *const no[] = { "0", "false", "no", "off" };
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(yes); i++) {
                if (word_is(s, len, yes[i]))
                        return 1;
                if (word_is(s, len, no[i]))
                        return 0;
        }
        return -1;
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* "N" (seconds), "Nms", "Ns", "Nm", decimals allowed; the result must be a
 * whole number of milliseconds that fits an int. Returns NULL or why not. */
static const char *parse_duration(const char *s, size_t len, int *ret_ms)
{
        size_t i = 0;
        uint64_t whole = 0;
        if (i == len || !is_digit(s[i]))
                return "expected a number followed by ms, s or m";
        for (; i < len && is_digit(s[i]); i++) {
                whole = whole * 10 + (uint64_t)(s[i] - '0');
                if (whole > INT_MAX)
                        return "too large";
        }
        const char *frac = NULL;
        size_t frac_len = 0;
        if (i < len && s[i] == '.') {
                frac = s + ++i;
                for (; i < len && is_digit(s[i]); i++)
                        frac_len++;
                if (frac_len == 0)
                        return "expected digits after '.'";
        }
        const char *unit = s + i;
        size_t unit_len = len - i;
        uint64_t mult;
        if (unit_len == 0 || word_is(unit, unit_len, "s"))
                mult = 1000;
        else if (word_is(unit, unit_len, "ms"))
                mult = 1;
        else if (word_is(unit, unit_len, "m"))
                mult = 60000;
        else
                return "unknown unit (use ms, s or m)";
        /* Trailing zeros of the fraction change nothing; what is left must
         * come out as whole milliseconds, which needs at most 5 digits for
         * any unit here, so 9 digits cannot overflow below. */
        while (frac_len > 0 && frac[frac_len - 1] == '0')
                frac_len--;
        if (frac_len > 9)
                return "not a whole number of milliseconds";
        uint64_t f = 0, scale = 1;
        for (size_t k = 0; k < frac_len; k++) {
                f = f * 10 + (uint64_t)(frac[k] - '0');
                scale *= 10;
        }
        if ((f * mult) % scale != 0)
                return "not a whole number of milliseconds";
        uint64_t ms = whole * mult + f * mult / scale;
        if (ms > INT_MAX)
                return "too large";
        *ret_ms = (int)ms;
        return NULL;
}

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode32(const uint8_t in[32], char out[45])
{
        size_t o = 0;
        for (size_t i = 0; i < 32; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16;
                if (i + 1 < 32)
                        v |= (uint32_t)in[i + 1] << 8;
                if (i + 2 < 32)
                        v |= in[i + 2];
                out[o++] = b64_alphabet[(v >> 18) & 63];
                out[o++] = b64_alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < 32 ? b64_alphabet[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < 32 ? b64_alphabet[v & 63] : '=';
        }
        out[o] = '\0';
}

/* Exactly 32 bytes of standard base64, padding optional. Unused low bits
 * must be zero, so that each key has one spelling. */
static bool b64_decode32(const char *s, size_t len, uint8_t out[32])
{
        if (len == 44 && s[43] == '=')
                len = 43;
        if (len != 43)
                return false;
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                const char *p = s[i] ? strchr(b64_alphabet, s[i]) : NULL;
                if (!p)
                        return false;
                acc = (acc << 6) | (uint32_t)(p - b64_alphabet);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        return o == 32 && acc == 0;
}

/* 64 hex digits; a colon may separate bytes ("ab:cd:..."). */
static bool hex_decode32(const char *s, size_t len, uint8_t out[32])
{
        size_t digits = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == ':') {
                        if (digits == 0 || digits % 2 != 0 || i + 1 == len || s[i + 1] == ':')
                                return false;
                        continue;
                }
                int v = conduit__hex_value(s[i]);
                if (v < 0 || digits == 64)
                        return false;
                if (digits % 2 == 0)
                        out[digits / 2] = (uint8_t)(v << 4);
                else
                        out[digits / 2] |= (uint8_t)v;
                digits++;
        }
        return digits == 64;
}

/* Splits [s, s+len) at sep, calling fn for each piece; stops at the first
 * piece fn rejects. */
static bool each_piece(const char *s, size_t len, char sep,
                       bool (*fn)(const char *, size_t, void *), void *userdata)
{
        size_t start = 0;
        for (size_t i = 0; i <= len; i++)
                if (i == len || s[i] == sep) {
                        if (!fn(s + start, i - start, userdata))
                                return false;
                        start = i + 1;
                }
        return true;
}

struct pin_list {
        char *out;
        size_t len;
        const char *why;
};

static bool pin_piece(const char *s, size_t len, void *userdata)
{
        struct pin_list *pl = userdata;
        uint8_t key[32];
        if (len > 8 && strncasecmp(s, "sha256//", 8) == 0) {
                if (!b64_decode32(s + 8, len - 8, key)) {
                        pl->why = "sha256// must be followed by the base64 of 32 bytes";
                        return false;
                }
        } else if (!hex_decode32(s, len, key)) {
                pl->why = "expected sha256//BASE64 or 64 hex digits";
                return false;
        }
        if (pl->len)
                pl->out[pl->len++] = ',';
        memcpy(pl->out + pl->len, "sha256//", 8);
        b64_encode32(key, pl->out + pl->len + 8);
        pl->len += 8 + 44;
        return true;
}

struct alpn_list {
        size_t wire;
        const char *why;
};

static bool alpn_piece(const char *s, size_t len, void *userdata)
{
        (void)s;
        struct alpn_list *al = userdata;
        if (len == 0 || len > 255) {
                al->why = "each protocol name must be 1 to 255 bytes long";
                return false;
        }
        al->wire += 1 + len;
        if (al->wire > 65535) {
                al->why = "protocol list too long";
                return false;
        }
        return true;
}

/* The TLS 1.3 suites the ciphersuites option knows, in no particular
 * order: TLS_AES_128_CCM_8_SHA256 (its 8-byte tag) is left out on purpose. */
static const char *const tls13_suites[] = {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
};

#define TLS13_SUITES_KNOWN                                                               \
        "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, " \
        "TLS_AES_128_CCM_SHA256"

/* "A,B" or "A:B" (OpenSSL's separator, for the socat forms where ','
 * separates options), names case-insensitive, each at most once. Writes
 * the canonical "A,B" (upper case) into out (at least len + 1 bytes), or
 * a message into why[whylen] and returns false. */
static bool ciphersuites_canon(const char *s, size_t len, char *out, char *why, size_t whylen)
{
        size_t o = 0, start = 0;
        unsigned seen = 0;
        if (len == 0) {
                conduit__errf(why, whylen,
                              "expected TLS 1.3 cipher suite names (" TLS13_SUITES_KNOWN ")");
                return false;
        }
        for (size_t i = 0; i <= len; i++) {
                if (i < len && s[i] != ',' && s[i] != ':')
                        continue;
                const char *p = s + start;
                size_t n = i - start;
                int shown = n > SHOW_MAX ? SHOW_MAX : (int)n;
                start = i + 1;
                if (n == 0) {
                        conduit__errf(why, whylen, "empty cipher suite name in the list");
                        return false;
                }
                size_t k = 0;
                while (k < CONDUIT__ARRAY_SIZE(tls13_suites) && !word_is(p, n, tls13_suites[k]))
                        k++;
                if (k == CONDUIT__ARRAY_SIZE(tls13_suites)) {
                        if (word_is(p, n, "TLS_AES_128_CCM_8_SHA256"))
                                conduit__errf(why, whylen,
                                              "TLS_AES_128_CCM_8_SHA256 is not supported (8-byte "
                                              "tag); use one of " TLS13_SUITES_KNOWN);
                        else
                                conduit__errf(why, whylen,
                                              "unknown TLS 1.3 cipher suite '%.*s%s' "
                                              "(known: " TLS13_SUITES_KNOWN ")",
                                              shown, p, (size_t)shown < n ? "..." : "");
                        return false;
                }
                if (seen & (1u << k)) {
                        conduit__errf(why, whylen, "cipher suite %s listed twice", tls13_suites[k]);
                        return false;
                }
                seen |= 1u << k;
                if (o)
                        out[o++] = ',';
                memcpy(out + o, tls13_suites[k], strlen(tls13_suites[k]));
                o += strlen(tls13_suites[k]);
        }
        out[o] = '\0';
        return true;
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

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
        char *s;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : s;
}

static bool servername_ok(const char *s, size_t len, const char **why)
{
        struct in6_addr a6;
        struct in_addr a4;
        /* The caller hands a NUL-terminated value. */
        if (strlen(s) == len &&
            (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1))
                return true;
        return conduit__host_name_check(s, len, why) == 0;
}

int conduit__opt_canon(enum conduit__opt o, const char *value, size_t len, char **ret, char *err,
                       size_t errlen)
{
        const struct opt_def *d = &opt_table[o];
        const char *why = NULL;
        char *out = NULL;
        int shown = len > SHOW_MAX ? SHOW_MAX : (int)len;

        if (!value) {
                if (d->type == T_BOOL || d->type == T_KEEPALIVE)
                        out = strdup("1");
                else
                        goto needs_value;
                goto done;
        }
        switch (d->type) {
        case T_BOOL: {
                int b = parse_bool(value, len);
                if (b < 0) {
                        why = "expected 1, 0, true, false, yes, no, on or off";
                        break;
                }
                out = strdup(b ? "1" : "0");
                break;
        }
        case T_DURATION: {
                int ms;
                why = parse_duration(value, len, &ms);
                if (why)
                        break;
                out = ms % 1000 == 0 ? dup_printf("%ds", ms / 1000) : dup_printf("%dms", ms);
                break;
        }
        case T_KEEPALIVE: {
                int b = parse_bool(value, len);
                if (b >= 0) {
                        out = strdup(b ? "1" : "0");
                        break;
                }
                static const uint64_t max[3] = { KEEPALIVE_IDLE_MAX, KEEPALIVE_INTERVAL_MAX,
                                                 KEEPALIVE_PROBES_MAX };
                uint64_t v[3];
                size_t start = 0, n = 0;
                for (size_t i = 0; i <= len; i++) {
                        if (i < len && value[i] != ',')
                                continue;
                        if (n == 3 ||
                            !conduit__parse_uint(value + start, i - start, max[n], &v[n]) ||
                            v[n] == 0) {
                                why = "expected a boolean or IDLE,INTERVAL,PROBES (seconds up to "
                                      "32767, seconds up to 32767, count up to 127; all > 0)";
                                break;
                        }
                        n++;
                        start = i + 1;
                }
                if (!why && n != 3)
                        why = "expected a boolean or IDLE,INTERVAL,PROBES";
                if (!why)
                        out = dup_printf("%u,%u,%u", (unsigned)v[0], (unsigned)v[1],
                                         (unsigned)v[2]);
                break;
        }
        case T_MODE: {
                unsigned mode = 0;
                size_t i;
                for (i = 0; i < len && value[i] >= '0' && value[i] <= '7'; i++) {
                        mode = mode * 8 + (unsigned)(value[i] - '0');
                        if (mode > 0777)
                                break;
                }
                if (len == 0 || i != len) {
                        why = "expected an octal mode from 0 to 0777";
                        break;
                }
                out = dup_printf("%04o", mode);
                break;
        }
        case T_SIZE: {
                uint64_t v;
                if (!conduit__parse_uint(value, len, INT32_MAX, &v) || v == 0) {
                        why = "expected a number of bytes from 1 to 2147483647";
                        break;
                }
                out = dup_printf("%u", (unsigned)v);
                break;
        }
        case T_HANDSHAKE:
                if (word_is(value, len, "strict"))
                        out = strdup("strict");
                else if (word_is(value, len, "lenient"))
                        out = strdup("lenient");
                else
                        why = "expected strict or lenient";
                break;
        case T_SERVERNAME:
                if (len == 0) {
                        why = "expected a host name";
                        break;
                }
                if (!servername_ok(value, len, &why))
                        break;
                if ((out = dup_n(value, len)))
                        conduit__ascii_lower(out);
                break;
        case T_FILE:
                if (len == 0) {
                        why = "expected a file name";
                        break;
                }
                if (len > CONDUIT__UNIX_PATH_MAX) {
                        conduit__errf(err, errlen,
                                      "file name for option '%s' is %zu bytes, longer than %d",
                                      d->name, len, CONDUIT__UNIX_PATH_MAX);
                        return -ENAMETOOLONG;
                }
                out = dup_n(value, len);
                break;
        case T_ALPN: {
                struct alpn_list al = { 0, NULL };
                if (!each_piece(value, len, ',', alpn_piece, &al)) {
                        why = al.why;
                        break;
                }
                out = dup_n(value, len);
                break;
        }
        case T_MIN_VERSION: {
                const char *v = value;
                size_t n = len;
                if (n >= 4 && strncasecmp(v, "tlsv", 4) == 0) {
                        v += 4;
                        n -= 4;
                } else if (n >= 3 && strncasecmp(v, "tls", 3) == 0) {
                        v += 3;
                        n -= 3;
                }
                if (word_is(v, n, "1.2"))
                        out = strdup("1.2");
                else if (word_is(v, n, "1.3"))
                        out = strdup("1.3");
                else
                        why = "expected 1.2 or 1.3";
                break;
        }
        case T_CIPHERSUITES: {
                char whybuf[256];
                /* canonical names are as long as the given ones */
                if (!(out = malloc(len + 1)))
                        break;
                if (!ciphersuites_canon(value, len, out, whybuf, sizeof(whybuf))) {
                        free(out);
                        out = NULL;
                        conduit__errf(err, errlen, "invalid value '%.*s%s' for option '%s': %s",
                                      shown, value, (size_t)shown < len ? "..." : "", d->name,
                                      whybuf);
                        return CONDUIT_E_OPTION_VALUE;
                }
                break;
        }
        case T_PIN: {
                /* Each canonical pin takes 52 bytes plus a comma, and every
                 * input pin has at least one byte plus its comma. */
                size_t pieces = 1;
                for (size_t i = 0; i < len; i++)
                        pieces += value[i] == ',';
                struct pin_list pl = { malloc(pieces * 53 + 1), 0, NULL };
                if (!pl.out)
                        break;
                if (!each_piece(value, len, ',', pin_piece, &pl)) {
                        free(pl.out);
                        why = pl.why;
                        break;
                }
                pl.out[pl.len] = '\0';
                out = pl.out;
                break;
        }
        }
        if (why) {
                conduit__errf(err, errlen, "invalid value '%.*s%s' for option '%s': %s", shown,
                              value, (size_t)shown < len ? "..." : "", d->name, why);
                return CONDUIT_E_OPTION_VALUE;
        }
done:
        if (!out) {
                conduit__errf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *ret = out;
        return 0;
needs_value:
        conduit__errf(err, errlen, "option '%s' needs a value", d->name);
        return CONDUIT_E_OPTION_VALUE;
}

int conduit__endp_opt_bool(const conduit_endp *e, enum conduit__opt o, int def)
{
        if (!e || (unsigned)o >= CONDUIT__OPT_COUNT || !e->opt[o])
                return def;
        const char *v = e->opt[o];
        int b = parse_bool(v, strlen(v));
        if (b >= 0)
                return b;
        /* keepalive=IDLE,INTERVAL,PROBES turns keepalive on */
        return o == CONDUIT__OPT_KEEPALIVE && strchr(v, ',') ? 1 : def;
}

int conduit__endp_opt_ms(const conduit_endp *e, enum conduit__opt o, int def)
{
        int ms;
        if (!e || (unsigned)o >= CONDUIT__OPT_COUNT || !e->opt[o] ||
            parse_duration(e->opt[o], strlen(e->opt[o]), &ms))
                return def;
        return ms;
}

/* ---- host names --------------------------------------------------------- */

static bool host_char(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '~' || c >= 0x80;
}

/* A last label of digits (or 0x and hex digits) would make getaddrinfo read
 * the name as an inet_aton() address ("1.2.3", "0x7f.1", "2130706433"), so
 * such names are taken for what they look like: malformed addresses. */
static bool numeric_label(const char *s, size_t len)
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

int conduit__host_name_check(const char *s, size_t len, const char **why)
{
        size_t n = len;
        if (n > 0 && s[n - 1] == '.')
                n--;
        if (n == 0) {
                *why = "empty host name";
                return CONDUIT_E_URI;
        }
        if (n > 253) {
                *why = "host name longer than 253 bytes";
                return -ENAMETOOLONG;
        }
        size_t label = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.') {
                        if (!host_char((unsigned char)s[i])) {
                                *why = "invalid character in host name";
                                return CONDUIT_E_URI;
                        }
                        continue;
                }
                size_t l = i - label;
                if (l == 0) {
                        *why = "empty label in host name";
                        return CONDUIT_E_URI;
                }
                if (l > 63) {
                        *why = "host name label longer than 63 bytes";
                        return -ENAMETOOLONG;
                }
                if (i == n && numeric_label(s + label, l)) {
                        *why = "not a valid IPv4 address";
                        return CONDUIT_E_URI;
                }
                label = i + 1;
        }
        return 0;
}

/* ---- Hyper-V ------------------------------------------------------------ */

const uint8_t conduit__hv_wildcard[16] = { 0 };
const uint8_t conduit__hv_children[16] = { 0x90, 0xdb, 0x8b, 0x89, 0x0d, 0x35, 0x4f, 0x79,
                                           0x8c, 0xe9, 0x49, 0xea, 0x0a, 0xc8, 0xb7, 0xcd };
const uint8_t conduit__hv_loopback[16] = { 0xe0, 0xe1, 0x61, 0x97, 0xdd, 0x56, 0x4a, 0x10,
                                           0x91, 0x95, 0x5e, 0xe7, 0xa1, 0x55, 0xa8, 0x38 };
const uint8_t conduit__hv_parent[16] = { 0xa4, 0x2e, 0x7c, 0xda, 0xd0, 0x3f, 0x48, 0x0c,
                                         0x9c, 0xc2, 0xa4, 0xde, 0x20, 0xab, 0xb8, 0x78 };
const uint8_t conduit__hv_silohost[16] = { 0x36, 0xbd, 0x0c, 0x5c, 0x72, 0x76, 0x42, 0x23,
                                           0x88, 0xba, 0x7d, 0x03, 0xb6, 0x54, 0xc5, 0x68 };

/* The last 12 bytes of every service GUID that stands for a vsock port:
 * XXXXXXXX-facb-11e6-bd58-64006a7986d3. */
static const uint8_t hv_port_template[12] = { 0xfa, 0xcb, 0x11, 0xe6, 0xbd, 0x58,
                                              0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3 };

static const struct {
        const char *name;
        const uint8_t *guid;
} hv_vms[] = {
        { "wildcard", conduit__hv_wildcard }, { "children", conduit__hv_children },
        { "loopback", conduit__hv_loopback }, { "parent", conduit__hv_parent },
        { "silohost", conduit__hv_silohost },
};

bool conduit__hv_vm_lookup(const char *name, size_t len, uint8_t ret[16])
{
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(hv_vms); i++)
                if (word_is(name, len, hv_vms[i].name)) {
                        memcpy(ret, hv_vms[i].guid, 16);
                        return true;
                }
        return false;
}

const char *conduit__hv_vm_name(const uint8_t vmid[16])
{
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(hv_vms); i++)
                if (memcmp(vmid, hv_vms[i].guid, 16) == 0)
                        return hv_vms[i].name;
        return NULL;
}

void conduit__hv_service_from_port(uint32_t port, uint8_t ret[16])
{
        ret[0] = (uint8_t)(port >> 24);
        ret[1] = (uint8_t)(port >> 16);
        ret[2] = (uint8_t)(port >> 8);
        ret[3] = (uint8_t)port;
        memcpy(ret + 4, hv_port_template, sizeof(hv_port_template));
}

long long conduit__hv_service_port(const uint8_t service[16])
{
        if (memcmp(service + 4, hv_port_template, sizeof(hv_port_template)) != 0)
                return -1;
        return (long long)((uint32_t)service[0] << 24 | (uint32_t)service[1] << 16 |
                           (uint32_t)service[2] << 8 | service[3]);
}

bool conduit__guid_parse(const char *s, size_t len, uint8_t ret[16])
{
        if (len == 38 && s[0] == '{' && s[37] == '}') {
                s++;
                len -= 2;
        }
        if (len != 36)
                return false;
        uint8_t g[16];
        size_t o = 0;
        for (size_t i = 0; i < 36;) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i++] != '-')
                                return false;
                        continue;
                }
                int hi = conduit__hex_value(s[i]), lo = conduit__hex_value(s[i + 1]);
                if (hi < 0 || lo < 0)
                        return false;
                g[o++] = (uint8_t)(hi << 4 | lo);
                i += 2;
        }
        memcpy(ret, g, 16);
        return true;
}

void conduit__guid_format(const uint8_t g[16], char out[37])
{
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12],
                 g[13], g[14], g[15]);
}
