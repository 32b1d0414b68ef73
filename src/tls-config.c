/* SPDX-License-Identifier: MIT */
/* TLS configuration: context defaults, option strings, and the SSL_CTXs a
 * context builds and keeps (one per distinct configuration). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx-private.h"
#include "resolver/options.h"
#include "tls-private.h"
#include "util.h"

struct conduit__sslctx {
        struct conduit__sslctx *next;
        char *key; /* the configuration it was built for */
        SSL_CTX *ssl_ctx;
};

/* A client session to resume; a context keeps at most SESSIONS_MAX, at
 * most SESSIONS_PER_KEY of them for one key (a TLS 1.3 server sends two
 * tickets a connection, and parallel connections each want one). */
struct conduit__tls_session {
        struct conduit__tls_session *next;
        char *key;
        SSL_SESSION *sess;
};

#define SESSIONS_MAX     64
#define SESSIONS_PER_KEY 4

/* Ex-data slot of a server SSL_CTX holding its ALPN list (wire format),
 * freed with the SSL_CTX, which may outlive the conduit_ctx. */
static int alpn_index = -1;
static pthread_once_t alpn_once = PTHREAD_ONCE_INIT;

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
        (void)parent;
        (void)ad;
        (void)idx;
        (void)argl;
        (void)argp;
        free(ptr);
}

static void alpn_init(void)
{
        alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free);
}

void conduit__tls_config(conduit_ctx *ctx, const conduit_endp *tls, bool server,
                         struct conduit__tls_config *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->server = server;
        for (int o = CONDUIT__OPT_FIRST_TLS; o < CONDUIT__OPT_COUNT; o++)
                ret->opt[o] = tls && tls->opt[o] ? tls->opt[o] : ctx ? ctx->tls_opt[o] : NULL;
        ret->verify = ret->opt[CONDUIT__OPT_VERIFY]
                              ? strcmp(ret->opt[CONDUIT__OPT_VERIFY], "1") == 0
                              : -1;
}

int conduit_ctx_set_tls_option(conduit_ctx *ctx, const char *key, const char *value)
{
        enum conduit__opt o;
        char err[512] = "";
        if (!ctx || !key)
                return conduit__set_error(-EINVAL, "no context or key");
        if (!conduit__opt_lookup(key, strlen(key), &o) || !conduit__opt_is_tls(o))
                return conduit__set_error(CONDUIT_E_OPTION, "'%s' is not a TLS option", key);
        char *canon = NULL;
        if (value) {
                int r = conduit__opt_canon(o, value, strlen(value), &canon, err, sizeof(err));
                if (r < 0)
                        return conduit__set_error(r, "%s: %s", key, err);
        }
        free(ctx->tls_opt[o]);
        ctx->tls_opt[o] = canon;
        return 0;
}

void conduit_ctx_set_tls_passphrase(conduit_ctx *ctx, conduit_tls_passphrase_fn *fn, void *userdata)
{
        if (!ctx)
                return;
        ctx->passphrase_fn = fn;
        ctx->passphrase_userdata = userdata;
}

/* OpenSSL's default would prompt on the terminal: a library never does. */
static int passphrase_cb(char *buf, int size, int rwflag, void *userdata)
{
        conduit_ctx *ctx = userdata;
        (void)rwflag;
        if (!ctx || !ctx->passphrase_fn)
                return -1;
        int n = ctx->passphrase_fn(ctx->passphrase_userdata, buf, size);
        return n < 0 || n > size ? -1 : n;
}

static int version_of(const char *v, int dflt)
{
        if (!v)
                return dflt;
        return strcmp(v, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* "h2,http/1.1" -> wire format (length-prefixed). */
unsigned char *conduit__tls_alpn_wire(const char *list, unsigned *ret_len)
{
        size_t n = strlen(list);
        /* one more byte: a NUL after the last entry for walking it */
        unsigned char *w = calloc(1, n + 2);
        if (!w)
                return NULL;
        size_t o = 0;
        for (const char *p = list; *p;) {
                const char *comma = strchr(p, ',');
                size_t l = comma ? (size_t)(comma - p) : strlen(p);
                w[o++] = (unsigned char)l;
                memcpy(w + o, p, l);
                o += l;
                p += l + (comma ? 1 : 0);
        }
        *ret_len = (unsigned)o;
        return w;
}

/* Server preference: the first of our protocols the client offers. No
 * common protocol fails the handshake (no_application_protocol), as a
 * peer that insists on ALPN expects. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
        (void)arg;
        const unsigned char *ours = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
        if (!ours)
                return SSL_TLSEXT_ERR_NOACK;
        for (const unsigned char *p = ours; *p; p += 1 + *p)
                for (unsigned i = 0; i < inlen; i += 1u + in[i])
                        if (in[i] == *p && i + 1 + in[i] <= inlen &&
                            memcmp(in + i + 1, p + 1, *p) == 0) {
                                *out = in + i + 1;
                                *outlen = in[i];
                                return SSL_TLSEXT_ERR_OK;
                        }
        return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Pin-only authentication of a client certificate: any chain, the pin is
 * checked after the handshake. */
static int accept_any(int ok, X509_STORE_CTX *store)
{
        (void)ok;
        (void)store;
        return 1;
}

static void ssl_err(char *err, size_t errlen, const char *what, const char *arg)
{
        unsigned long e = ERR_peek_last_error();
        char reason[256] = "";
        if (e)
                ERR_error_string_n(e, reason, sizeof(reason));
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(err, errlen, "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
                 r ? r : (e ? reason : "unknown error"));
        ERR_clear_error();
}

static bool session_cache_off(const struct conduit__tls_config *c)
{
        const char *v = c->opt[CONDUIT__OPT_SESSION_CACHE];
        return v && strcmp(v, "0") == 0;
}

static SSL_CTX *build(conduit_ctx *ctx, const struct conduit__tls_config *c, char *err,
                      size_t errlen)
{
        const char *const *o = c->opt;
        SSL_CTX *sc = SSL_CTX_new(c->server ? TLS_server_method() : TLS_client_method());
        if (!sc) {
                ssl_err(err, errlen, "SSL_CTX_new", NULL);
                return NULL;
        }
        SSL_CTX_set_min_proto_version(sc, version_of(o[CONDUIT__OPT_MIN_VERSION], TLS1_2_VERSION));
        if (o[CONDUIT__OPT_MAX_VERSION])
                SSL_CTX_set_max_proto_version(sc, version_of(o[CONDUIT__OPT_MAX_VERSION], 0));
        if (o[CONDUIT__OPT_CIPHERSUITES]) {
                /* TLS 1.3 only (TLS 1.2 keeps OpenSSL's default list):
                 * "A,B" -> "A:B", preferred first */
                char *list = strdup(o[CONDUIT__OPT_CIPHERSUITES]);
                if (!list) {
                        snprintf(err, errlen, "out of memory");
                        goto fail;
                }
                for (char *p = list; *p; p++)
                        *p = *p == ',' ? ':' : *p;
                int ok = SSL_CTX_set_ciphersuites(sc, list);
                free(list);
                if (ok != 1) {
                        ssl_err(err, errlen, "cannot set TLS 1.3 cipher suites",
                                o[CONDUIT__OPT_CIPHERSUITES]);
                        goto fail;
                }
        }
        SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION);
        SSL_CTX_set_read_ahead(sc, 1);
        SSL_CTX_set_default_passwd_cb(sc, passphrase_cb);
        SSL_CTX_set_default_passwd_cb_userdata(sc, ctx);
        if (!c->server) {
                /* Sessions go to the context's cache under a key that only
                 * the flow knows (conduit__tls_new_session), never to
                 * OpenSSL's, which knows no peers. */
                SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_CLIENT |
                                                           SSL_SESS_CACHE_NO_INTERNAL_STORE);
                SSL_CTX_sess_set_new_cb(sc, conduit__tls_new_session);
        }

        const char *cert = o[CONDUIT__OPT_CERT], *key = o[CONDUIT__OPT_KEY];
        if (c->server && !cert) {
                snprintf(err, errlen, "a TLS server needs a certificate (cert=) and key (key=)");
                goto fail;
        }
        if (!cert && key) {
                snprintf(err, errlen, "key= given without cert=");
                goto fail;
        }
        if (cert) {
                if (SSL_CTX_use_certificate_chain_file(sc, cert) != 1) {
                        ssl_err(err, errlen, "cannot load certificate", cert);
                        goto fail;
                }
                if (SSL_CTX_use_PrivateKey_file(sc, key ? key : cert, SSL_FILETYPE_PEM) != 1) {
                        ssl_err(err, errlen, "cannot load private key", key ? key : cert);
                        goto fail;
                }
                if (SSL_CTX_check_private_key(sc) != 1) {
                        ssl_err(err, errlen, "private key does not match certificate", cert);
                        goto fail;
                }
        }

        const char *cafile = o[CONDUIT__OPT_CAFILE], *capath = o[CONDUIT__OPT_CAPATH];
        bool pin = o[CONDUIT__OPT_PIN] != NULL;
        if (c->server) {
                /* Client certificates are asked for when there is something
                 * to check them against: a CA (mTLS) or a pin. */
                if ((cafile || capath) && c->verify != 0) {
                        if (SSL_CTX_load_verify_locations(sc, cafile, capath) != 1) {
                                ssl_err(err, errlen, "cannot load CA", cafile ? cafile : capath);
                                goto fail;
                        }
                        if (cafile) {
                                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
                                if (names)
                                        SSL_CTX_set_client_CA_list(sc, names);
                        }
                        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                                           NULL);
                } else if (pin) {
                        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                                           accept_any);
                }
                /* Resumption: session tickets (their keys are this
                 * SSL_CTX's own, so one configuration's sessions are
                 * never resumed by another) and session ids. */
                static const unsigned char sid[] = "libconduit";
                SSL_CTX_set_session_id_context(sc, sid, sizeof(sid) - 1);
                if (session_cache_off(c)) {
                        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
                        SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
                        SSL_CTX_set_num_tickets(sc, 0);
                }
                if (o[CONDUIT__OPT_ALPN]) {
                        pthread_once(&alpn_once, alpn_init);
                        unsigned len;
                        unsigned char *w = conduit__tls_alpn_wire(o[CONDUIT__OPT_ALPN], &len);
                        if (!w || alpn_index < 0) {
                                free(w);
                                snprintf(err, errlen, "out of memory");
                                goto fail;
                        }
                        SSL_CTX_set_ex_data(sc, alpn_index, w);
                        SSL_CTX_set_alpn_select_cb(sc, alpn_select, NULL);
                }
        } else if (c->verify == 1 || (c->verify == -1 && !pin)) {
                int ok = cafile || capath ? SSL_CTX_load_verify_locations(sc, cafile, capath)
                                          : SSL_CTX_set_default_verify_paths(sc);
                if (ok != 1) {
                        ssl_err(err, errlen, "cannot load CA",
                                cafile   ? cafile
                                : capath ? capath
                                         : "(system store)");
                        goto fail;
                }
                SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
        } else {
                SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
        }
        return sc;
fail:
        SSL_CTX_free(sc);
        return NULL;
}

/* The cache key: every setting that shapes the SSL_CTX (per-connection
 * settings such as the server name, pins and client ALPN are not). */
static char *cache_key(const struct conduit__tls_config *c)
{
        static const enum conduit__opt keyed[] = {
                CONDUIT__OPT_CAFILE,       CONDUIT__OPT_CAPATH,      CONDUIT__OPT_CERT,
                CONDUIT__OPT_KEY,          CONDUIT__OPT_MIN_VERSION, CONDUIT__OPT_MAX_VERSION,
                CONDUIT__OPT_CIPHERSUITES,
        };
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        fprintf(f, "%c%d%d", c->server ? 's' : 'c', c->verify, c->opt[CONDUIT__OPT_PIN] != NULL);
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(keyed); i++) {
                const char *v = c->opt[keyed[i]];
                /* length-prefixed: values may hold any byte but NUL */
                fprintf(f, "|%zu:%s", v ? strlen(v) : (size_t)-1, v ? v : "");
        }
        if (c->server) {
                const char *a = c->opt[CONDUIT__OPT_ALPN];
                fprintf(f, "|%zu:%s|%d", a ? strlen(a) : (size_t)-1, a ? a : "",
                        session_cache_off(c));
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

SSL_CTX *conduit__tls_sslctx(conduit_ctx *ctx, const struct conduit__tls_config *c, char *err,
                             size_t errlen)
{
        char *key = cache_key(c);
        if (!key) {
                snprintf(err, errlen, "out of memory");
                return NULL;
        }
        SSL_CTX *sc = NULL;
        pthread_mutex_lock(&ctx->tls_lock);
        for (struct conduit__sslctx *e = ctx->sslctx_cache; e; e = e->next)
                if (strcmp(e->key, key) == 0) {
                        sc = e->ssl_ctx;
                        SSL_CTX_up_ref(sc);
                        break;
                }
        if (!sc && (sc = build(ctx, c, err, errlen))) {
                struct conduit__sslctx *e = malloc(sizeof(*e));
                if (e) {
                        *e = (struct conduit__sslctx){ ctx->sslctx_cache, key, sc };
                        ctx->sslctx_cache = e;
                        key = NULL;
                        SSL_CTX_up_ref(sc);
                }
        }
        pthread_mutex_unlock(&ctx->tls_lock);
        free(key);
        return sc;
}

/* ---- client sessions --------------------------------------------------- */

char *conduit__tls_session_key(const struct conduit__tls_config *c, const char *name,
                               const conduit_endp *peer)
{
        if (c->server || session_cache_off(c) || !peer)
                return NULL;
        char *p = NULL;
        if (conduit_endp_format(peer, &p) < 0)
                return NULL;
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        if (!f) {
                free(p);
                return NULL;
        }
        /* length-prefixed: values may hold any byte but NUL */
        fprintf(f, "%d|%zu:%s|%zu:%s", c->verify, name ? strlen(name) : (size_t)-1,
                name ? name : "", strlen(p), p);
        free(p);
        for (int o = CONDUIT__OPT_FIRST_TLS; o < CONDUIT__OPT_COUNT; o++) {
                const char *v = c->opt[o];
                if (o != CONDUIT__OPT_SESSION_CACHE)
                        fprintf(f, "|%zu:%s", v ? strlen(v) : (size_t)-1, v ? v : "");
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

static bool session_expired(const SSL_SESSION *s, time_t now)
{
        return now >= (time_t)SSL_SESSION_get_time(s) + (time_t)SSL_SESSION_get_timeout(s);
}

static void session_free(struct conduit__tls_session *e)
{
        SSL_SESSION_free(e->sess);
        free(e->key);
        free(e);
}

SSL_SESSION *conduit__tls_session_get(conduit_ctx *ctx, const char *key)
{
        SSL_SESSION *found = NULL;
        time_t now = time(NULL);
        pthread_mutex_lock(&ctx->tls_lock);
        for (struct conduit__tls_session **pe = &ctx->sessions; *pe;) {
                struct conduit__tls_session *e = *pe;
                if (strcmp(e->key, key) != 0) {
                        pe = &e->next;
                        continue;
                }
                /* OpenSSL marks a session not resumable when its
                 * connection failed */
                if (session_expired(e->sess, now) || !SSL_SESSION_is_resumable(e->sess)) {
                        *pe = e->next;
                        session_free(e);
                        continue;
                }
                found = e->sess;
                /* TLS 1.3 tickets are single use (RFC 8446 C.4): it
                 * leaves; a TLS 1.2 session stays for the next one */
                if (SSL_SESSION_get_protocol_version(found) >= TLS1_3_VERSION) {
                        e->sess = NULL;
                        *pe = e->next;
                        session_free(e);
                } else {
                        SSL_SESSION_up_ref(found);
                }
                break;
        }
        pthread_mutex_unlock(&ctx->tls_lock);
        return found;
}

bool conduit__tls_session_put(conduit_ctx *ctx, const char *key, SSL_SESSION *sess)
{
        if (!SSL_SESSION_is_resumable(sess))
                return false;
        struct conduit__tls_session *n = malloc(sizeof(*n));
        char *k = strdup(key);
        if (!n || !k) {
                free(n);
                free(k);
                return false;
        }
        *n = (struct conduit__tls_session){ NULL, k, sess };
        pthread_mutex_lock(&ctx->tls_lock);
        /* A TLS 1.2 peer's newer session replaces the older ones: they
         * are not single use, and the newest lives longest. */
        bool replace = SSL_SESSION_get_protocol_version(sess) < TLS1_3_VERSION;
        n->next = ctx->sessions;
        ctx->sessions = n;
        size_t total = 1, same = 1;
        for (struct conduit__tls_session **pe = &n->next; *pe;) {
                struct conduit__tls_session *e = *pe;
                bool mine = strcmp(e->key, key) == 0;
                if ((mine && (replace || same >= SESSIONS_PER_KEY)) || total >= SESSIONS_MAX) {
                        *pe = e->next;
                        session_free(e);
                        continue;
                }
                same += mine;
                total++;
                pe = &e->next;
        }
        pthread_mutex_unlock(&ctx->tls_lock);
        return true;
}

void conduit__tls_ctx_cleanup(conduit_ctx *ctx)
{
        while (ctx->sessions) {
                struct conduit__tls_session *next = ctx->sessions->next;
                session_free(ctx->sessions);
                ctx->sessions = next;
        }
        struct conduit__sslctx *e = ctx->sslctx_cache;
        while (e) {
                struct conduit__sslctx *next = e->next;
                SSL_CTX_free(e->ssl_ctx);
                free(e->key);
                free(e);
                e = next;
        }
        ctx->sslctx_cache = NULL;
}
