/* SPDX-License-Identifier: MIT */
/* TLS: secure defaults, every verification failure and its reason, pins,
 * TLS over Unix/abstract/fd/user flows (servername required), mTLS,
 * encrypted keys, ALPN, versions, queries, half-close and truncation,
 * KeyUpdate, the wrap API and TLS over TLS, per-context SSL_CTXs, no
 * SIGPIPE, context defaults, a listener that keeps serving while a
 * silent client waits out its handshake timeout, and session resumption
 * (with openssl s_server and s_client too).
 *
 * The key material comes from tls-fixtures.c (generated at run time). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.h"
#include "tls-fixtures.h"

#define FX   tls_fixtures()
#define BULK (1024 * 1024)

/* ---- small helpers --------------------------------------------------------- */

static char *fmt(const char *f, ...) CONDUIT_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
        char *s = NULL;
        va_list ap;
        va_start(ap, f);
        int n = vasprintf(&s, f, ap);
        va_end(ap);
        ck_assert_int_ge(n, 0);
        return s;
}

/* Percent-encodes what a base64 pin holds that a query value should not
 * carry raw ('/', '+', '='). */
static char *pct(const char *s)
{
        char *out = malloc(strlen(s) * 3 + 1);
        ck_assert_ptr_nonnull(out);
        char *o = out;
        for (; *s; s++) {
                if (*s == '/' || *s == '+' || *s == '=' || *s == '&' || *s == '%')
                        o += sprintf(o, "%%%02X", (unsigned char)*s);
                else
                        *o++ = *s;
        }
        *o = '\0';
        return out;
}

/* True when msg contains one of the '|'-separated alternatives,
 * case-insensitively. */
static bool has_ci(const char *msg, const char *alternatives)
{
        if (!msg)
                return false;
        char *alts = strdup(alternatives), *save = NULL;
        bool found = false;
        for (char *a = strtok_r(alts, "|", &save); a && !found; a = strtok_r(NULL, "|", &save))
                found = strcasestr(msg, a) != NULL;
        free(alts);
        return found;
}

/* A string query, NULL if the flow cannot answer or has no value. */
static const char *qstr(conduit_flow *f, int what)
{
        const char *s = NULL;
        if (conduit_flow_query(f, what, &s) < 0)
                return NULL;
        return s;
}

static SSL *qssl(conduit_flow *f)
{
        void *ssl = NULL;
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_TLS_SSL, &ssl));
        ck_assert_ptr_nonnull(ssl);
        return ssl;
}

/* Reads exactly n bytes; 0 or a negative error (-EIO for an early EOF).
 * Usable from any thread. */
static int read_full(conduit_flow *f, void *buf, size_t n)
{
        size_t got = 0;
        while (got < n) {
                ssize_t r = conduit_flow_read(f, (char *)buf + got, n - got);
                if (r <= 0)
                        return r == 0 ? -EIO : (int)r;
                got += (size_t)r;
        }
        return 0;
}

static void read_exact(conduit_flow *f, void *buf, size_t n)
{
        int r = read_full(f, buf, n);
        ck_assert_msg(r == 0, "read %zu: %d (%s) %s", n, r, conduit_strerror(r),
                      conduit_flow_error_message(f));
}

/* Writes "ping" and reads it back from an echo server. */
static void ping(conduit_flow *f)
{
        tc_write_all(f, "ping", 4);
        char buf[4];
        read_exact(f, buf, 4);
        ck_assert(memcmp(buf, "ping", 4) == 0);
}

/* Echoes until EOF, then shuts down its write side. */
static int echo_loop(conduit_flow *f)
{
        char buf[16384];
        for (;;) {
                ssize_t n = conduit_flow_read(f, buf, sizeof(buf));
                if (n == 0)
                        return conduit_flow_shutdown(f, CONDUIT_SHUT_WR);
                if (n < 0)
                        return (int)n;
                if (conduit_flow_write(f, buf, (size_t)n) != n)
                        return -EIO;
        }
}

/* A client context: the test names resolve to 127.0.0.1, and generous
 * timeouts turn a hang into a failure with a message. */
static conduit_ctx *client_ctx(void)
{
        static const char *const names[] = { "localhost", "x.wild.test", "wild.test",
                                             "a.b.wild.test", "other.test" };
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                tc_ok(conduit_ctx_add_host(ctx, names[i], "127.0.0.1"));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_READ, 20000));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_WRITE, 20000));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_CONNECT, 20000));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 20000));
        return ctx;
}

static conduit_ctx *server_ctx(void)
{
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_READ, 20000));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_WRITE, 20000));
        return ctx;
}

static _Thread_local char last_uri[4096];

static int tls_connect(conduit_ctx *ctx, conduit_flow **f, const char *ufmt, ...)
        CONDUIT_PRINTF(3, 4);
static int tls_connect(conduit_ctx *ctx, conduit_flow **f, const char *ufmt, ...)
{
        va_list ap;
        va_start(ap, ufmt);
        vsnprintf(last_uri, sizeof(last_uri), ufmt, ap);
        va_end(ap);
        *f = NULL;
        return conduit_connect(ctx, last_uri, f);
}

static conduit_flow *connect_ok(conduit_ctx *ctx, const char *ufmt, ...) CONDUIT_PRINTF(2, 3);
static conduit_flow *connect_ok(conduit_ctx *ctx, const char *ufmt, ...)
{
        va_list ap;
        va_start(ap, ufmt);
        vsnprintf(last_uri, sizeof(last_uri), ufmt, ap);
        va_end(ap);
        conduit_flow *f = NULL;
        int r = conduit_connect(ctx, last_uri, &f);
        ck_assert_msg(r == 0, "connect %s: %d (%s) [%s]", last_uri, r, conduit_strerror(r),
                      conduit_ctx_error_message(ctx));
        ck_assert_ptr_nonnull(f);
        return f;
}

/* The connect fails verification and the message names the reason (one of
 * the '|'-separated alternatives). */
static void expect_verify(conduit_ctx *ctx, const char *reason, const char *ufmt, ...)
        CONDUIT_PRINTF(3, 4);
static void expect_verify(conduit_ctx *ctx, const char *reason, const char *ufmt, ...)
{
        va_list ap;
        va_start(ap, ufmt);
        vsnprintf(last_uri, sizeof(last_uri), ufmt, ap);
        va_end(ap);
        conduit_flow *f = NULL;
        int r = conduit_connect(ctx, last_uri, &f);
        const char *m = conduit_ctx_error_message(ctx);
        ck_assert_msg(r == CONDUIT_E_TLS_VERIFY,
                      "connect %s: %d (%s) [%s], want CONDUIT_E_TLS_VERIFY (%s)", last_uri, r,
                      conduit_strerror(r), m, reason);
        ck_assert_msg(has_ci(m, reason), "connect %s: message '%s' lacks '%s'", last_uri, m,
                      reason);
        ck_assert_ptr_null(f);
}

/* ---- a TLS echo server on a listener, in a thread ------------------------ */

/* What the server saw of an accepted flow, recorded right after accept,
 * before any I/O. */
struct facts {
        int version_r;
        char version[32];
        char cipher[128];
        char alpn[64];
        char subject[512];
        char sni[256];
        bool has_alpn, has_subject, has_sni;
        long verify;
        char backend[32];
        int fd;
        int peer_kind, peer_inner_kind;
        int resumed;
};

#define MAX_FACTS 16

struct srv;
typedef void serve_fn(struct srv *s, conduit_flow *f);

struct srv {
        conduit_ctx *ctx;
        bool own_ctx;
        conduit_listener *l;
        char *base; /* "tls+tcp://127.0.0.1:PORT", "tls+unix:///path", ... */
        long long port;
        pthread_t thr;
        serve_fn *serve;
        void *user;
        char *wake_opts;
        atomic_bool stop;
        atomic_bool done;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int accepted;
        int accept_errors;
        int first_accept_error;
        struct facts facts[MAX_FACTS];
};

static bool qcopy(conduit_flow *f, int what, char *dst, size_t n)
{
        const char *s = NULL;
        dst[0] = '\0';
        if (conduit_flow_query(f, what, &s) < 0 || !s)
                return false;
        snprintf(dst, n, "%s", s);
        return true;
}

static void record_facts(struct facts *x, conduit_flow *f)
{
        const char *v = NULL;
        x->version_r = conduit_flow_query(f, CONDUIT_QUERY_TLS_VERSION, &v);
        snprintf(x->version, sizeof(x->version), "%s", x->version_r >= 0 && v ? v : "");
        qcopy(f, CONDUIT_QUERY_TLS_CIPHER, x->cipher, sizeof(x->cipher));
        x->has_alpn = qcopy(f, CONDUIT_QUERY_TLS_ALPN, x->alpn, sizeof(x->alpn));
        x->has_subject = qcopy(f, CONDUIT_QUERY_TLS_PEER_SUBJECT, x->subject, sizeof(x->subject));
        x->has_sni = qcopy(f, CONDUIT_QUERY_TLS_SERVERNAME, x->sni, sizeof(x->sni));
        x->verify = -1;
        (void)conduit_flow_query(f, CONDUIT_QUERY_TLS_VERIFY_RESULT, &x->verify);
        x->resumed = -1;
        (void)conduit_flow_query(f, CONDUIT_QUERY_TLS_RESUMED, &x->resumed);
        const char *b = conduit_flow_backend(f);
        snprintf(x->backend, sizeof(x->backend), "%s", b ? b : "");
        x->fd = conduit_flow_fd(f);
        const conduit_endp *p = conduit_flow_peer(f);
        x->peer_kind = p ? (int)conduit_endp_get_kind(p) : -1;
        x->peer_inner_kind = p && conduit_endp_get_inner(p)
                                     ? (int)conduit_endp_get_kind(conduit_endp_get_inner(p))
                                     : -1;
}

static void serve_echo(struct srv *s, conduit_flow *f)
{
        (void)s;
        (void)echo_loop(f);
        conduit_flow_free(f);
}

static void *srv_thread(void *p)
{
        struct srv *s = p;
        for (;;) {
                conduit_flow *f = NULL;
                int r = conduit_listener_accept(s->l, &f);
                if (atomic_load(&s->stop)) {
                        conduit_flow_free(f);
                        break;
                }
                if (r < 0) {
                        pthread_mutex_lock(&s->mu);
                        if (!s->accept_errors++)
                                s->first_accept_error = r;
                        bool give_up = s->accept_errors > 200;
                        pthread_mutex_unlock(&s->mu);
                        if (give_up)
                                break;
                        usleep(10000);
                        continue;
                }
                pthread_mutex_lock(&s->mu);
                if (s->accepted < MAX_FACTS)
                        record_facts(&s->facts[s->accepted], f);
                s->accepted++;
                pthread_cond_broadcast(&s->cv);
                pthread_mutex_unlock(&s->mu);
                s->serve(s, f);
        }
        atomic_store(&s->done, true);
        return NULL;
}

/* Listens on the formatted URI with ctx (NULL: a fresh server context,
 * owned by s; otherwise borrowed) and serves each accepted flow with serve
 * (NULL: echo) in a thread. wake_opts are the client options the final
 * wake-up connection needs (a client certificate for mTLS). */
static struct srv *srv_start(conduit_ctx *ctx, serve_fn *serve, void *user, const char *wake_opts,
                             const char *ufmt, ...) CONDUIT_PRINTF(5, 6);
static struct srv *srv_start(conduit_ctx *ctx, serve_fn *serve, void *user, const char *wake_opts,
                             const char *ufmt, ...)
{
        /* on the heap: after a failed test in CK_FORK=no mode the thread may
         * outlive the test's stack frame */
        struct srv *s = calloc(1, sizeof(*s));
        ck_assert_ptr_nonnull(s);
        s->own_ctx = !ctx;
        s->ctx = ctx ? ctx : server_ctx();
        s->serve = serve ? serve : serve_echo;
        s->user = user;
        s->wake_opts = wake_opts ? strdup(wake_opts) : NULL;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        char *uri = NULL;
        va_list ap;
        va_start(ap, ufmt);
        ck_assert_int_ge(vasprintf(&uri, ufmt, ap), 0);
        va_end(ap);
        int r = conduit_listen(s->ctx, uri, &s->l);
        ck_assert_msg(r == 0, "listen %s: %d (%s) [%s]", uri, r, conduit_strerror(r),
                      conduit_ctx_error_message(s->ctx));
        free(uri);
        const conduit_endp *e = conduit_listener_endp(s->l);
        ck_assert_ptr_nonnull(e);
        if (conduit_endp_get_kind(e) == CONDUIT_ENDP_TLS)
                e = conduit_endp_get_inner(e);
        char *inner = NULL;
        tc_ok(conduit_endp_format(e, &inner));
        s->base = fmt("tls+%s", inner);
        free(inner);
        s->port = conduit_endp_get_port(e);
        s->thr = tc_spawn(srv_thread, s);
        return s;
}

/* The facts of the i-th accepted flow, waiting for it. */
static struct facts srv_facts(struct srv *s, int i)
{
        ck_assert_int_lt(i, MAX_FACTS);
        pthread_mutex_lock(&s->mu);
        while (s->accepted <= i)
                pthread_cond_wait(&s->cv, &s->mu);
        struct facts x = s->facts[i];
        pthread_mutex_unlock(&s->mu);
        return x;
}

static int srv_accepted(struct srv *s)
{
        pthread_mutex_lock(&s->mu);
        int n = s->accepted;
        pthread_mutex_unlock(&s->mu);
        return n;
}

/* Stops the server: a last client (verify=0) wakes the accept up. Returns
 * how many times accept failed; *first gets the first failure. */
static int srv_stop_count(struct srv *s, int *first)
{
        atomic_store(&s->stop, true);
        for (int i = 0; i < 10 && !atomic_load(&s->done); i++) {
                conduit_ctx *c = client_ctx();
                conduit_flow *f = NULL;
                char *uri = fmt("%s?verify=0%s%s", s->base, s->wake_opts ? "&" : "",
                                s->wake_opts ? s->wake_opts : "");
                bool woken = conduit_connect(c, uri, &f) == 0;
                if (woken) {
                        char b;
                        (void)conduit_flow_read(f, &b, 1); /* until the server drops it */
                        conduit_flow_free(f);
                } else {
                        usleep(50000);
                }
                free(uri);
                conduit_ctx_free(c);
                /* its handshake ran in accept, which then saw stop: the
                 * thread is ending (another connection would wait for a
                 * handshake nobody runs until its timeout) */
                if (woken)
                        break;
        }
        tc_join(s->thr);
        conduit_listener_free(s->l);
        if (s->own_ctx)
                conduit_ctx_free(s->ctx);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->base);
        free(s->wake_opts);
        int n = s->accept_errors;
        if (first)
                *first = s->first_accept_error;
        free(s);
        return n;
}

static void srv_stop(struct srv *s)
{
        (void)srv_stop_count(s, NULL);
}

/* Stops the server, asserting that accept never failed: failed handshakes
 * are dropped inside accept, which goes on waiting. */
static void srv_stop_clean(struct srv *s)
{
        int first = 0;
        int n = srv_stop_count(s, &first);
        ck_assert_msg(n == 0, "accept failed %d times (first %d: %s)", n, first,
                      conduit_strerror(first));
}

/* ---- a TLS server over a given flow (wrap API), in a thread -------------- */

struct wrap_srv {
        conduit_ctx *ctx;
        conduit_flow *inner;
        const char *opts;
        bool echo;
        int r_wrap, r_hs, r_echo;
        struct facts facts;
        char msg[512];
        pthread_t thr;
};

static void *wrap_srv_thread(void *p)
{
        struct wrap_srv *w = p;
        conduit_flow *f = NULL;
        w->r_wrap = conduit_tls_server(w->ctx, w->inner, w->opts, &f);
        if (w->r_wrap < 0) {
                snprintf(w->msg, sizeof(w->msg), "%s", conduit_ctx_error_message(w->ctx));
                conduit_flow_free(w->inner);
                return NULL;
        }
        w->r_hs = conduit_tls_handshake(f);
        snprintf(w->msg, sizeof(w->msg), "%s", conduit_flow_error_message(f));
        if (w->r_hs == 0) {
                record_facts(&w->facts, f);
                if (w->echo)
                        w->r_echo = echo_loop(f);
        }
        conduit_flow_free(f);
        return NULL;
}

/* Serves TLS (echo) on inner, which it owns from now on. */
static void wrap_srv_start(struct wrap_srv *w, conduit_ctx *ctx, conduit_flow *inner,
                           const char *opts)
{
        memset(w, 0, sizeof(*w));
        w->ctx = ctx;
        w->inner = inner;
        w->opts = opts;
        w->echo = true;
        w->thr = tc_spawn(wrap_srv_thread, w);
}

static void wrap_srv_join(struct wrap_srv *w)
{
        tc_join(w->thr);
}

static char *server_opts(const char *cert, const char *key)
{
        return fmt("cert=%s&key=%s", cert, key);
}

/* ---- a flow implemented by the program, over a socket --------------------- */

struct fdflow {
        int fd;
};

static ssize_t ff_read(conduit_flow *f, void *buf, size_t len)
{
        struct fdflow *u = conduit_flow_impl(f);
        ssize_t n = recv(u->fd, buf, len, MSG_DONTWAIT);
        return n >= 0 ? n : -errno;
}

static ssize_t ff_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        struct fdflow *u = conduit_flow_impl(f);
        struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
        ssize_t n = sendmsg(u->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        return n >= 0 ? n : -errno;
}

static int ff_shutdown(conduit_flow *f, int how)
{
        struct fdflow *u = conduit_flow_impl(f);
        return shutdown(u->fd, how == CONDUIT_SHUT_WR ? SHUT_WR : SHUT_RD) < 0 ? -errno : 0;
}

static int ff_get_fd(conduit_flow *f, int want)
{
        (void)want;
        struct fdflow *u = conduit_flow_impl(f);
        return u->fd;
}

static void ff_destroy(conduit_flow *f)
{
        struct fdflow *u = conduit_flow_impl(f);
        close(u->fd);
        free(u);
}

static const conduit_flow_ops fdflow_ops = {
        .name = "userfd",
        .read = ff_read,
        .writev = ff_writev,
        .shutdown = ff_shutdown,
        .get_fd = ff_get_fd,
        .destroy = ff_destroy,
};

static conduit_flow *fdflow_new(int fd)
{
        struct fdflow *u = malloc(sizeof(*u));
        ck_assert_ptr_nonnull(u);
        u->fd = fd;
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_new(&fdflow_ops, u, &f));
        return f;
}

/* ---- verification: defaults and every failure ----------------------------- */

START_TEST(dns_name_verified_with_sni_and_queries)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);

        /* client-side queries */
        ck_assert_str_eq(conduit_flow_backend(f), "tls");
        ck_assert_int_eq(conduit_flow_fd(f), -1);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.3");
        const char *cipher = qstr(f, CONDUIT_QUERY_TLS_CIPHER);
        ck_assert_msg(cipher && *cipher, "no cipher");
        ck_assert_ptr_null(qstr(f, CONDUIT_QUERY_TLS_ALPN));
        const char *subj = qstr(f, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        ck_assert_msg(subj && strstr(subj, "CN=localhost"), "peer subject '%s'",
                      subj ? subj : "(null)");
        long v = -1;
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_TLS_VERIFY_RESULT, &v));
        ck_assert_int_eq(v, 0);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_SERVERNAME), "localhost");
        SSL *ssl = qssl(f);
        ck_assert_str_eq(SSL_get_version(ssl), "TLSv1.3");
        ck_assert_str_eq(SSL_get_cipher_name(ssl), cipher);
        ck_assert_pstr_eq(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "localhost");

        /* the peer: a TLS endp over the TCP peer */
        const conduit_endp *peer = conduit_flow_peer(f);
        ck_assert_ptr_nonnull(peer);
        ck_assert_int_eq(conduit_endp_get_kind(peer), CONDUIT_ENDP_TLS);
        const conduit_endp *in = conduit_endp_get_inner(peer);
        ck_assert_ptr_nonnull(in);
        ck_assert_int_eq(conduit_endp_get_kind(in), CONDUIT_ENDP_TCP);
        ck_assert_int_eq(conduit_endp_get_port(in), s->port);
        char *printed = NULL;
        tc_ok(conduit_endp_format(in, &printed));
        char *want = fmt("tcp://127.0.0.1:%lld", s->port);
        ck_assert_str_eq(printed, want);
        free(printed);
        free(want);

        /* server side: the handshake was complete when accept returned */
        struct facts x = srv_facts(s, 0);
        ck_assert_msg(x.version_r == 0 && strcmp(x.version, "TLSv1.3") == 0,
                      "server version right after accept: %d '%s'", x.version_r, x.version);
        ck_assert_str_eq(x.cipher, cipher);
        ck_assert_str_eq(x.backend, "tls");
        ck_assert_int_eq(x.fd, -1);
        ck_assert(x.has_sni);
        ck_assert_str_eq(x.sni, "localhost");
        ck_assert(!x.has_alpn);
        ck_assert_msg(!x.has_subject, "no client certificate, yet subject '%s'", x.subject);
        ck_assert_int_eq(x.peer_kind, CONDUIT_ENDP_TLS);
        ck_assert_int_eq(x.peer_inner_kind, CONDUIT_ENDP_TCP);

        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(ip_literal_checked_without_sni)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://127.0.0.1:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        ck_assert_ptr_null(SSL_get_servername(qssl(f), TLSEXT_NAMETYPE_host_name));
        struct facts x = srv_facts(s, 0);
        ck_assert_msg(!x.has_sni, "SNI sent for an IP literal: '%s'", x.sni);
        /* the query reports the SNI sent: none */
        const char *sni = qstr(f, CONDUIT_QUERY_TLS_SERVERNAME);
        ck_assert_msg(!sni, "CONDUIT_QUERY_TLS_SERVERNAME = '%s' though no SNI was sent", sni);
        conduit_flow_free(f);
        srv_stop(s);

        /* IPv6: the ::1 SAN */
        conduit_listener *probe = NULL;
        if (conduit_listen(NULL, "tcp://[::1]:0", &probe) < 0) {
                fprintf(stderr, "# IPv6 part skipped: no ::1\n");
                conduit_ctx_free(c);
                return;
        }
        conduit_listener_free(probe);
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://[::1]:0?cert=%s&key=%s", FX->server_cert,
                      FX->server_key);
        f = connect_ok(c, "tls+tcp://[::1]:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        x = srv_facts(s, 0);
        ck_assert_msg(!x.has_sni, "SNI sent for an IPv6 literal: '%s'", x.sni);
        conduit_flow_free(f);
        srv_stop(s);
        conduit_ctx_free(c);
}
END_TEST

/* A server with cert/key: connecting to host (by name, cafile=CA) fails
 * verification naming reason; verify=0 accepts it. */
static void rejected_then_insecure(const char *cert, const char *key, const char *host,
                                   const char *reason)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s", cert, key);
        conduit_ctx *c = client_ctx();
        expect_verify(c, reason, "tls+tcp://%s:%lld?cafile=%s", host, s->port, FX->ca_cert);
        /* verify=1 spelled out is the same */
        expect_verify(c, reason, "tls+tcp://%s:%lld?cafile=%s&verify=1", host, s->port,
                      FX->ca_cert);
        conduit_flow *f =
                connect_ok(c, "tls+tcp://%s:%lld?cafile=%s&verify=0", host, s->port, FX->ca_cert);
        ping(f);
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
}

START_TEST(expired_rejected)
{
        rejected_then_insecure(FX->expired_cert, FX->expired_key, "localhost",
                               "certificate has expired");
}
END_TEST

START_TEST(not_yet_valid_rejected)
{
        rejected_then_insecure(FX->future_cert, FX->future_key, "localhost",
                               "certificate is not yet valid");
}
END_TEST

START_TEST(wrong_host_rejected)
{
        rejected_then_insecure(FX->wrong_cert, FX->wrong_key, "localhost", "hostname mismatch");
        /* and by IP literal: no IP SAN at all */
        rejected_then_insecure(FX->wrong_cert, FX->wrong_key, "127.0.0.1", "IP address mismatch");
        /* the right name is accepted */
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->wrong_cert, FX->wrong_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f =
                connect_ok(c, "tls+tcp://other.test:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        ck_assert_str_eq(srv_facts(s, 0).sni, "other.test");
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

/* TLS over TLS: a certificate the OUTER layer rejects is a verification
 * failure with its reason, not a reset (the inner layer's own OpenSSL calls
 * must not wipe the outer one's error report). The inner layer is fine. */
START_TEST(tls_over_tls_outer_rejected)
{
        struct srv *s =
                srv_start(NULL, NULL, NULL, "inner.verify=0",
                          "tls+tls+tcp://127.0.0.1:0?cert=%s&key=%s&inner.cert=%s&inner.key=%s",
                          FX->wrong_cert, FX->wrong_key, FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        expect_verify(c, "hostname mismatch",
                      "tls+tls+tcp://localhost:%lld?cafile=%s&inner.cafile=%s", s->port,
                      FX->ca_cert, FX->ca_cert);
        /* the other way round: the inner layer rejects */
        conduit_ctx_free(c);
        srv_stop(s);
        s = srv_start(NULL, NULL, NULL, "inner.verify=0",
                      "tls+tls+tcp://127.0.0.1:0?cert=%s&key=%s&inner.cert=%s&inner.key=%s",
                      FX->server_cert, FX->server_key, FX->wrong_cert, FX->wrong_key);
        c = client_ctx();
        expect_verify(c, "hostname mismatch",
                      "tls+tls+tcp://localhost:%lld?cafile=%s&inner.cafile=%s", s->port,
                      FX->ca_cert, FX->ca_cert);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(server_cert_wrong_name_by_dns)
{
        /* the valid localhost certificate reached as other.test */
        rejected_then_insecure(FX->server_cert, FX->server_key, "other.test", "hostname mismatch");
}
END_TEST

START_TEST(self_signed_rejected)
{
        rejected_then_insecure(FX->self_cert, FX->self_key, "localhost",
                               "self-signed certificate|self signed certificate");
}
END_TEST

START_TEST(unknown_ca_rejected)
{
        rejected_then_insecure(FX->rogue_cert, FX->rogue_key, "localhost",
                               "unable to get local issuer certificate");
}
END_TEST

START_TEST(wildcard_matches_one_label)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s", FX->wild_cert,
                      FX->wild_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f =
                connect_ok(c, "tls+tcp://x.wild.test:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_SERVERNAME), "x.wild.test");
        ck_assert_str_eq(srv_facts(s, 0).sni, "x.wild.test");
        conduit_flow_free(f);
        expect_verify(c, "hostname mismatch", "tls+tcp://wild.test:%lld?cafile=%s", s->port,
                      FX->ca_cert);
        expect_verify(c, "hostname mismatch", "tls+tcp://a.b.wild.test:%lld?cafile=%s", s->port,
                      FX->ca_cert);
        expect_verify(c, "hostname mismatch", "tls+tcp://localhost:%lld?cafile=%s", s->port,
                      FX->ca_cert);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(system_trust_store_by_default)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        /* the private test CA is not in the system store */
        expect_verify(c, "unable to get local issuer certificate", "tls+tcp://localhost:%lld",
                      s->port);
        expect_verify(c, "unable to get local issuer certificate", "tls+tcp://127.0.0.1:%lld",
                      s->port);
        /* a CA file that does not hold the issuer */
        expect_verify(c, "unable to get local issuer certificate",
                      "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->unknown_ca_cert);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(capath_directory)
{
        char *dir = tc_tmpdir();
        FILE *fp = fopen(FX->ca_cert, "r");
        ck_assert_ptr_nonnull(fp);
        X509 *ca = PEM_read_X509(fp, NULL, NULL, NULL);
        fclose(fp);
        ck_assert_ptr_nonnull(ca);
        char *link = fmt("%s/%08lx.0", dir, X509_subject_name_hash(ca));
        X509_free(ca);
        ck_assert_int_eq(symlink(FX->ca_cert, link), 0);
        free(link);

        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?capath=%s", s->port, dir);
        ping(f);
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* ---- pins ------------------------------------------------------------------- */

START_TEST(pin_alone_authenticates)
{
        /* a self-signed certificate, no CA, no name check */
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s", FX->self_cert,
                      FX->self_key);
        char *pin = pct(FX->self_pin);
        conduit_ctx *c = client_ctx();
        static const char *const hosts[] = { "localhost", "other.test", "127.0.0.1" };
        for (size_t i = 0; i < 3; i++) {
                conduit_flow *f = connect_ok(c, "tls+tcp://%s:%lld?pin=%s", hosts[i], s->port, pin);
                ping(f);
                conduit_flow_free(f);
        }
        /* a wrong pin is refused, naming the pin */
        char *wrong = pct(FX->server_pin);
        expect_verify(c, "pin", "tls+tcp://localhost:%lld?pin=%s", s->port, wrong);
        /* several pins: any one matching is enough */
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?pin=%s,%s", s->port, wrong, pin);
        ping(f);
        conduit_flow_free(f);
        free(wrong);
        free(pin);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(pin_with_verify_requires_everything)
{
        conduit_ctx *c = client_ctx();
        char *self_pin = pct(FX->self_pin), *server_pin = pct(FX->server_pin);
        struct srv *s;
        /* self-signed: the pin matches but the chain does not verify */
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s", FX->self_cert,
                      FX->self_key);
        expect_verify(c, "self-signed certificate|self signed certificate",
                      "tls+tcp://localhost:%lld?pin=%s&verify=1&cafile=%s", s->port, self_pin,
                      FX->ca_cert);
        srv_stop(s);

        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        /* chain + name + pin */
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?pin=%s&verify=1&cafile=%s",
                                     s->port, server_pin, FX->ca_cert);
        ping(f);
        conduit_flow_free(f);
        /* the name is checked */
        expect_verify(c, "hostname mismatch", "tls+tcp://other.test:%lld?pin=%s&verify=1&cafile=%s",
                      s->port, server_pin, FX->ca_cert);
        /* the pin is checked */
        expect_verify(c, "pin", "tls+tcp://localhost:%lld?pin=%s&verify=1&cafile=%s", s->port,
                      self_pin, FX->ca_cert);
        srv_stop(s);
        free(self_pin);
        free(server_pin);
        conduit_ctx_free(c);
}
END_TEST

START_TEST(pin_with_verify_off)
{
        conduit_ctx *c = client_ctx();
        char *self_pin = pct(FX->self_pin), *server_pin = pct(FX->server_pin);
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s", FX->self_cert,
                      FX->self_key);
        conduit_flow *f =
                connect_ok(c, "tls+tcp://other.test:%lld?verify=0&pin=%s", s->port, self_pin);
        ping(f);
        conduit_flow_free(f);
        expect_verify(c, "pin", "tls+tcp://localhost:%lld?verify=0&pin=%s", s->port, server_pin);
        srv_stop(s);
        free(self_pin);
        free(server_pin);
        conduit_ctx_free(c);
}
END_TEST

START_TEST(pin_hex_form)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f =
                connect_ok(c, "tls+tcp://127.0.0.1:%lld?pin=%s", s->port, FX->server_pin_hex);
        ping(f);
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

/* ---- transports without a host name ----------------------------------------- */

static void no_name_cases(struct srv *s, bool full)
{
        conduit_ctx *c = client_ctx();
        conduit_flow *f = NULL;
        int r = tls_connect(c, &f, "%s?cafile=%s", s->base, FX->ca_cert);
        ck_assert_msg(r == -EINVAL, "connect %s: %d (%s) [%s], want -EINVAL", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        ck_assert_msg(has_ci(conduit_ctx_error_message(c), "servername"),
                      "connect %s: message '%s' does not ask for a servername", last_uri,
                      conduit_ctx_error_message(c));
        ck_assert_ptr_null(f);

        int n = srv_accepted(s);
        f = connect_ok(c, "%s?servername=localhost&cafile=%s", s->base, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_SERVERNAME), "localhost");
        struct facts x = srv_facts(s, n);
        ck_assert(x.has_sni);
        ck_assert_str_eq(x.sni, "localhost");
        conduit_flow_free(f);

        char *pin = pct(FX->server_pin);
        f = connect_ok(c, "%s?pin=%s", s->base, pin);
        ping(f);
        conduit_flow_free(f);
        free(pin);

        f = connect_ok(c, "%s?verify=0", s->base);
        ping(f);
        conduit_flow_free(f);

        if (full) {
                /* an IP literal as servername: IP SAN check, no SNI */
                n = srv_accepted(s);
                f = connect_ok(c, "%s?servername=127.0.0.1&cafile=%s", s->base, FX->ca_cert);
                ping(f);
                x = srv_facts(s, n);
                ck_assert_msg(!x.has_sni, "SNI sent for servername=127.0.0.1: '%s'", x.sni);
                conduit_flow_free(f);
                expect_verify(c, "IP address mismatch", "%s?servername=127.0.0.2&cafile=%s",
                              s->base, FX->ca_cert);
                expect_verify(c, "hostname mismatch", "%s?servername=other.test&cafile=%s", s->base,
                              FX->ca_cert);
        }
        conduit_ctx_free(c);
}

START_TEST(unix_requires_servername)
{
        char *dir = tc_tmpdir();
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+unix://%s/tls.sock?cert=%s&key=%s", dir,
                      FX->server_cert, FX->server_key);
        ck_assert_msg(strncmp(s->base, "tls+unix:", 9) == 0, "base %s", s->base);
        no_name_cases(s, true);
        srv_stop(s);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(abstract_requires_servername)
{
        char *name = tc_abstract_name();
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+unix-abstract:%s?cert=%s&key=%s", name,
                      FX->server_cert, FX->server_key);
        no_name_cases(s, false);
        srv_stop(s);
        free(name);
}
END_TEST

START_TEST(fd_requires_servername)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        conduit_flow *sin = NULL;
        tc_ok(conduit_flow_from_fd(sv[1], CONDUIT_FD_OWN, &sin));
        conduit_ctx *sctx = server_ctx();
        char *opts = server_opts(FX->server_cert, FX->server_key);
        struct wrap_srv w;
        wrap_srv_start(&w, sctx, sin, opts);

        conduit_ctx *c = client_ctx();
        conduit_flow *f = NULL;
        int r = tls_connect(c, &f, "tls+fd:%d?cafile=%s", sv[0], FX->ca_cert);
        ck_assert_msg(r == -EINVAL, "connect %s: %d (%s) [%s], want -EINVAL", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        ck_assert_msg(has_ci(conduit_ctx_error_message(c), "servername"), "message '%s'",
                      conduit_ctx_error_message(c));
        f = connect_ok(c, "tls+fd:%d?servername=localhost&cafile=%s", sv[0], FX->ca_cert);
        ping(f);
        ck_assert_str_eq(conduit_flow_backend(f), "tls");
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        char b;
        ck_assert_int_eq(conduit_flow_read(f, &b, 1), 0);
        wrap_srv_join(&w);
        ck_assert_msg(w.r_hs == 0, "server handshake %d [%s]", w.r_hs, w.msg);
        ck_assert_int_eq(w.r_echo, 0);
        ck_assert_str_eq(w.facts.sni, "localhost");
        conduit_flow_free(f);
        /* fd:N borrows the descriptor */
        ck_assert_int_eq(close(sv[0]), 0);
        free(opts);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

START_TEST(user_flow_requires_servername)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        conduit_ctx *sctx = server_ctx();
        char *opts = server_opts(FX->server_cert, FX->server_key);
        struct wrap_srv w;
        wrap_srv_start(&w, sctx, fdflow_new(sv[1]), opts);

        conduit_ctx *c = client_ctx();
        conduit_flow *u = fdflow_new(sv[0]), *f = NULL;
        char *o = fmt("cafile=%s", FX->ca_cert);
        int r = conduit_tls_client(c, u, o, &f);
        ck_assert_msg(r == -EINVAL, "conduit_tls_client: %d (%s) [%s], want -EINVAL", r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        ck_assert_msg(has_ci(conduit_ctx_error_message(c), "servername"), "message '%s'",
                      conduit_ctx_error_message(c));
        ck_assert_ptr_null(f);
        free(o);
        /* the inner flow is still the caller's */
        o = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        tc_ok(conduit_tls_client(c, u, o, &f));
        ping(f);
        ck_assert_str_eq(conduit_flow_backend(f), "tls");
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.3");
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        char b;
        ck_assert_int_eq(conduit_flow_read(f, &b, 1), 0);
        wrap_srv_join(&w);
        ck_assert_msg(w.r_hs == 0, "server handshake %d [%s]", w.r_hs, w.msg);
        ck_assert_int_eq(w.r_echo, 0);
        conduit_flow_free(f);
        free(o);
        free(opts);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

/* ---- server side ------------------------------------------------------------ */

/* A client the mTLS server must reject: the connect fails with a TLS or
 * transport error, or (TLS 1.3: the client finishes first) the first read
 * does. */
static void expect_rejected_client(conduit_ctx *c, const char *uri)
{
        conduit_flow *f = NULL;
        int r = conduit_connect(c, uri, &f);
        const char *where = "connect";
        if (r == 0) {
                where = "first read";
                tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, 20000));
                (void)conduit_flow_write(f, "ping", 4);
                char buf[4];
                ssize_t n = conduit_flow_read(f, buf, sizeof(buf));
                ck_assert_msg(n != 0, "%s: clean EOF instead of an error", uri);
                ck_assert_msg(n < 0, "%s: the server talked to a client it should reject", uri);
                r = (int)n;
                conduit_flow_free(f);
        }
        ck_assert_msg(r == CONDUIT_E_TLS || r == CONDUIT_E_TLS_VERIFY ||
                              r == CONDUIT_E_TLS_TRUNCATED || r == -ECONNRESET || r == -EPIPE,
                      "%s: %s gave %d (%s), want a TLS or transport error", uri, where, r,
                      conduit_strerror(r));
}

START_TEST(mtls_requires_client_certificate)
{
        char *wake = fmt("cert=%s&key=%s", FX->client_cert, FX->client_key);
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, wake, "tls+tcp://127.0.0.1:0?cert=%s&key=%s&cafile=%s",
                      FX->server_cert, FX->server_key, FX->ca_cert);
        conduit_ctx *c = client_ctx();
        char *uri = NULL;

        /* no certificate */
        uri = fmt("tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        expect_rejected_client(c, uri);
        free(uri);
        /* a certificate from a CA the server does not trust */
        uri = fmt("tls+tcp://localhost:%lld?cafile=%s&cert=%s&key=%s", s->port, FX->ca_cert,
                  FX->rogue_cert, FX->rogue_key);
        expect_rejected_client(c, uri);
        free(uri);

        /* the good client: accept skipped the two bad ones */
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&cert=%s&key=%s",
                                     s->port, FX->ca_cert, FX->client_cert, FX->client_key);
        ping(f);
        const char *subj = qstr(f, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        ck_assert_msg(subj && strstr(subj, "CN=localhost"), "server subject '%s'",
                      subj ? subj : "(null)");
        struct facts x = srv_facts(s, 0);
        ck_assert_msg(x.has_subject && strstr(x.subject, "CN=client"),
                      "first accepted flow's client subject '%s'", x.subject);
        ck_assert_int_eq(x.verify, 0);
        ck_assert_int_eq(srv_accepted(s), 1);
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop_clean(s);
        free(wake);
}
END_TEST

struct pass {
        const char *pass;
        int fail;
        atomic_int calls;
};

static int pass_cb(void *ud, char *buf, int size)
{
        struct pass *p = ud;
        atomic_fetch_add(&p->calls, 1);
        if (p->fail)
                return -1;
        int n = (int)strlen(p->pass);
        if (n > size)
                return -1;
        memcpy(buf, p->pass, (size_t)n);
        return n;
}

START_TEST(encrypted_key_passphrase)
{
        struct pass good = { .pass = "secret" };
        conduit_ctx *sctx = server_ctx();
        conduit_ctx_set_tls_passphrase(sctx, pass_cb, &good);
        struct srv *s;
        s = srv_start(sctx, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key_enc);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        conduit_flow_free(f);
        srv_stop(s);
        conduit_ctx_free(sctx);
        ck_assert_int_ge(atomic_load(&good.calls), 1);

        /* a wrong passphrase, or a callback that gives up: no listener */
        struct pass bad[2] = { { .pass = "wrong" }, { .fail = 1 } };
        char *uri =
                fmt("tls+tcp://127.0.0.1:0?cert=%s&key=%s", FX->server_cert, FX->server_key_enc);
        for (int i = 0; i < 2; i++) {
                sctx = server_ctx();
                conduit_ctx_set_tls_passphrase(sctx, pass_cb, &bad[i]);
                conduit_listener *l = NULL;
                int r = conduit_listen(sctx, uri, &l);
                ck_assert_msg(r < 0, "listen with a %s passphrase succeeded",
                              i ? "refused" : "wrong");
                ck_assert_ptr_null(l);
                ck_assert_int_ge(atomic_load(&bad[i].calls), 1);
                conduit_ctx_free(sctx);
        }
        free(uri);

        /* the wrap API */
        sctx = server_ctx();
        struct pass good2 = { .pass = "secret" };
        conduit_ctx_set_tls_passphrase(sctx, pass_cb, &good2);
        conduit_flow *a = NULL, *b = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        char *opts = server_opts(FX->server_cert, FX->server_key_enc);
        struct wrap_srv w;
        wrap_srv_start(&w, sctx, b, opts);
        char *copts = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        tc_ok(conduit_tls_client(c, a, copts, &f));
        ping(f);
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        conduit_flow_free(f);
        wrap_srv_join(&w);
        ck_assert_msg(w.r_wrap == 0 && w.r_hs == 0, "wrap %d handshake %d [%s]", w.r_wrap, w.r_hs,
                      w.msg);
        ck_assert_int_ge(atomic_load(&good2.calls), 1);
        conduit_ctx_free(sctx);

        /* a wrong passphrase through the wrap API: CONDUIT_E_TLS */
        sctx = server_ctx();
        struct pass bad2 = { .pass = "wrong" };
        conduit_ctx_set_tls_passphrase(sctx, pass_cb, &bad2);
        tc_ok(conduit_flow_socketpair(&a, &b));
        f = NULL;
        int r = conduit_tls_server(sctx, b, opts, &f);
        ck_assert_msg(r == CONDUIT_E_TLS, "conduit_tls_server with a wrong passphrase: %d (%s)", r,
                      conduit_strerror(r));
        ck_assert_ptr_null(f);
        conduit_flow_free(a);
        conduit_flow_free(b); /* still the caller's */
        conduit_ctx_free(sctx);
        free(opts);
        free(copts);
        conduit_ctx_free(c);
}
END_TEST

START_TEST(alpn_negotiation)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s&alpn=http/1.1",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&alpn=h2,http/1.1",
                                     s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_ALPN), "http/1.1");
        struct facts x = srv_facts(s, 0);
        ck_assert(x.has_alpn);
        ck_assert_str_eq(x.alpn, "http/1.1");
        conduit_flow_free(f);

        /* no ALPN offered: none agreed */
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        ck_assert_ptr_null(qstr(f, CONDUIT_QUERY_TLS_ALPN));
        x = srv_facts(s, 1);
        ck_assert_msg(!x.has_alpn, "server agreed on '%s'", x.alpn);
        conduit_flow_free(f);

        /* no overlap: the handshake fails */
        int r = tls_connect(c, &f, "tls+tcp://localhost:%lld?cafile=%s&alpn=h2", s->port,
                            FX->ca_cert);
        ck_assert_msg(r == CONDUIT_E_TLS, "connect %s: %d (%s) [%s], want CONDUIT_E_TLS", last_uri,
                      r, conduit_strerror(r), conduit_ctx_error_message(c));
        ck_assert_ptr_null(f);
        /* and the listener goes on */
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&alpn=http/1.1", s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_ALPN), "http/1.1");
        ck_assert_int_eq(srv_accepted(s), 3);
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(protocol_versions)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&max_version=1.2",
                                     s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.2");
        ck_assert_str_eq(srv_facts(s, 0).version, "TLSv1.2");
        conduit_flow_free(f);
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&min_version=1.3", s->port,
                       FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.3");
        conduit_flow_free(f);
        srv_stop(s);

        /* a 1.3-only server refuses a 1.2-only client, and the other way round */
        s = srv_start(NULL, NULL, NULL, NULL,
                      "tls+tcp://127.0.0.1:0?cert=%s&key=%s&min_version=1.3", FX->server_cert,
                      FX->server_key);
        int r = tls_connect(c, &f, "tls+tcp://localhost:%lld?cafile=%s&max_version=1.2", s->port,
                            FX->ca_cert);
        ck_assert_msg(r == CONDUIT_E_TLS, "connect %s: %d (%s) [%s]", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        srv_stop(s);
        s = srv_start(NULL, NULL, NULL, NULL,
                      "tls+tcp://127.0.0.1:0?cert=%s&key=%s&max_version=1.2", FX->server_cert,
                      FX->server_key);
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.2");
        conduit_flow_free(f);
        r = tls_connect(c, &f, "tls+tcp://localhost:%lld?cafile=%s&min_version=1.3", s->port,
                        FX->ca_cert);
        ck_assert_msg(r == CONDUIT_E_TLS, "connect %s: %d (%s) [%s]", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        srv_stop(s);
        conduit_ctx_free(c);
}
END_TEST

/* A raw OpenSSL peer limited to TLS 1.0-1.1 (security level 0). */
struct raw_peer {
        int fd;
        bool server;
        int ok;
};

static void *raw_peer_thread(void *p)
{
        struct raw_peer *rp = p;
        SSL_CTX *sc = SSL_CTX_new(rp->server ? TLS_server_method() : TLS_client_method());
        if (!sc)
                return NULL;
        SSL_CTX_set_security_level(sc, 0);
        SSL_CTX_set_min_proto_version(sc, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(sc, TLS1_1_VERSION);
        SSL_CTX_set_cipher_list(sc, "ALL:@SECLEVEL=0");
        if (rp->server) {
                SSL_CTX_use_certificate_file(sc, FX->server_cert, SSL_FILETYPE_PEM);
                SSL_CTX_use_PrivateKey_file(sc, FX->server_key, SSL_FILETYPE_PEM);
        }
        SSL *ssl = SSL_new(sc);
        if (ssl) {
                SSL_set_fd(ssl, rp->fd);
                rp->ok = (rp->server ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
                if (rp->ok)
                        SSL_shutdown(ssl);
                SSL_free(ssl);
        }
        SSL_CTX_free(sc);
        shutdown(rp->fd, SHUT_RDWR);
        return NULL;
}

START_TEST(tls12_is_the_minimum)
{
        signal(SIGPIPE, SIG_IGN); /* the raw peers write with write() */
        int sv[2];
        /* can this OpenSSL speak TLS 1.1 at all? */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct raw_peer rs = { sv[1], true, 0 }, rc = { sv[0], false, 0 };
        pthread_t t1 = tc_spawn(raw_peer_thread, &rs), t2 = tc_spawn(raw_peer_thread, &rc);
        tc_join(t1);
        tc_join(t2);
        close(sv[0]);
        close(sv[1]);
        if (!rs.ok || !rc.ok) {
                fprintf(stderr, "# skipped: this OpenSSL cannot do TLS 1.1\n");
                return;
        }

        /* conduit client, TLS 1.1 server */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        rs = (struct raw_peer){ sv[1], true, 0 };
        t1 = tc_spawn(raw_peer_thread, &rs);
        conduit_ctx *c = client_ctx();
        conduit_flow *in = NULL, *f = NULL;
        tc_ok(conduit_flow_from_fd(sv[0], CONDUIT_FD_OWN, &in));
        tc_ok(conduit_tls_client(c, in, "verify=0", &f));
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_HANDSHAKE, 20000));
        int r = conduit_tls_handshake(f);
        ck_assert_msg(r == CONDUIT_E_TLS, "handshake with a TLS 1.1 server: %d (%s) [%s]", r,
                      conduit_strerror(r), conduit_flow_error_message(f));
        tc_join(t1);
        ck_assert(!rs.ok);
        conduit_flow_free(f);
        close(sv[1]);

        /* TLS 1.1 client, conduit server */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        rc = (struct raw_peer){ sv[0], false, 0 };
        t2 = tc_spawn(raw_peer_thread, &rc);
        conduit_ctx *sctx = server_ctx();
        char *opts = server_opts(FX->server_cert, FX->server_key);
        tc_ok(conduit_flow_from_fd(sv[1], CONDUIT_FD_OWN, &in));
        tc_ok(conduit_tls_server(sctx, in, opts, &f));
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_HANDSHAKE, 20000));
        r = conduit_tls_handshake(f);
        ck_assert_msg(r == CONDUIT_E_TLS, "handshake with a TLS 1.1 client: %d (%s) [%s]", r,
                      conduit_strerror(r), conduit_flow_error_message(f));
        tc_join(t2);
        ck_assert(!rc.ok);
        conduit_flow_free(f);
        close(sv[0]);
        free(opts);
        conduit_ctx_free(sctx);
        conduit_ctx_free(c);
}
END_TEST

/* Two listeners with their own certificates, in one context and in two. */
START_TEST(listeners_keep_their_certificates)
{
        conduit_ctx *shared = server_ctx();
        struct srv *a, *b, *l;
        a = srv_start(shared, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->alpha_cert, FX->alpha_key);
        b = srv_start(shared, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->beta_cert, FX->beta_key);
        l = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        struct {
                struct srv *s;
                const char *cn;
        } order[] = { { a, "CN=alpha" },
                      { b, "CN=beta" },
                      { l, "CN=localhost" },
                      { a, "CN=alpha" },
                      { b, "CN=beta" } };
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
                conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s",
                                             order[i].s->port, FX->ca_cert);
                ping(f);
                const char *subj = qstr(f, CONDUIT_QUERY_TLS_PEER_SUBJECT);
                ck_assert_msg(subj && strstr(subj, order[i].cn), "listener %zu presented '%s'", i,
                              subj ? subj : "(null)");
                conduit_flow_free(f);
        }
        conduit_ctx_free(c);
        srv_stop(a);
        srv_stop(b);
        srv_stop(l);
        conduit_ctx_free(shared);
}
END_TEST

/* ---- half-close, truncation ------------------------------------------------- */

START_TEST(half_close_over_tcp)
{
        struct srv *s;
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        uint8_t data[20000];
        tc_fill(data, sizeof(data), 7);
        tc_write_all(f, data, sizeof(data));
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR)); /* idempotent */
        tc_err(conduit_flow_write(f, "x", 1), -EPIPE);
        /* the server read EOF after the data, and could still write it back */
        size_t n = 0;
        uint8_t *back = tc_read_all(f, &n);
        ck_assert_uint_eq(n, sizeof(data));
        ck_assert(memcmp(back, data, n) == 0);
        ck_assert_int_eq(conduit_flow_read(f, data, 1), 0); /* sticky */
        free(back);
        tc_ok(conduit_flow_close(f));
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

/* A client and a server TLS flow over a socketpair of raw descriptors; the
 * server's descriptor stays the test's (*raw_server) for raw access. */
static void raw_pair(conduit_ctx *c, conduit_ctx *sctx, conduit_flow **client,
                     conduit_flow **server, int *raw_server)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        conduit_flow *ci = NULL, *si = NULL;
        tc_ok(conduit_flow_from_fd(sv[0], CONDUIT_FD_OWN, &ci));
        tc_ok(conduit_flow_from_fd(sv[1], 0, &si));
        char *copts = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        char *sopts = server_opts(FX->server_cert, FX->server_key);
        tc_ok(conduit_tls_client(c, ci, copts, client));
        tc_ok(conduit_tls_server(sctx, si, sopts, server));
        free(copts);
        free(sopts);
        *raw_server = sv[1];
}

struct hs_arg {
        conduit_flow *f;
        int r;
};

static void *handshake_thread(void *p)
{
        struct hs_arg *h = p;
        h->r = conduit_tls_handshake(h->f);
        return NULL;
}

static void handshake_both(conduit_flow *client, conduit_flow *server)
{
        struct hs_arg h = { server, 0 };
        pthread_t t = tc_spawn(handshake_thread, &h);
        int r = conduit_tls_handshake(client);
        tc_join(t);
        ck_assert_msg(r == 0, "client handshake %d (%s) %s", r, conduit_strerror(r),
                      conduit_flow_error_message(client));
        ck_assert_msg(h.r == 0, "server handshake %d (%s) %s", h.r, conduit_strerror(h.r),
                      conduit_flow_error_message(server));
}

START_TEST(half_close_shuts_transport_after_close_notify)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        conduit_flow *cl = NULL, *sv = NULL;
        int raw;
        raw_pair(c, sctx, &cl, &sv, &raw);
        handshake_both(cl, sv);
        /* server to client, then the server's half-close */
        tc_write_all(sv, "from server", 11);
        tc_ok(conduit_flow_shutdown(sv, CONDUIT_SHUT_WR));
        char buf[32];
        read_exact(cl, buf, 11);
        ck_assert(memcmp(buf, "from server", 11) == 0);
        ck_assert_int_eq(conduit_flow_read(cl, buf, sizeof(buf)), 0);
        /* the client still writes; the server still reads */
        tc_write_all(cl, "from client", 11);
        read_exact(sv, buf, 11);
        ck_assert(memcmp(buf, "from client", 11) == 0);
        /* and the client's half-close: close_notify, then the transport */
        tc_ok(conduit_flow_shutdown(cl, CONDUIT_SHUT_WR));
        ck_assert_int_eq(conduit_flow_read(sv, buf, sizeof(buf)), 0);
        /* the transport's write side was shut: the raw socket is at EOF */
        struct pollfd p = { .fd = raw, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        ck_assert_int_eq(recv(raw, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT), 0);
        conduit_flow_free(cl);
        conduit_flow_free(sv);
        close(raw);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

START_TEST(eof_without_close_notify_is_truncation)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        for (int allow = 0; allow < 2; allow++) {
                conduit_flow *cl = NULL, *sv = NULL;
                int raw;
                raw_pair(c, sctx, &cl, &sv, &raw);
                if (allow)
                        tc_ok(conduit_tls_set_allow_truncation(cl, true));
                handshake_both(cl, sv);
                tc_write_all(sv, "abc", 3);
                /* the transport ends under TLS's feet */
                ck_assert_int_eq(shutdown(raw, SHUT_WR), 0);
                char buf[8];
                read_exact(cl, buf, 3);
                ck_assert(memcmp(buf, "abc", 3) == 0);
                ssize_t r = conduit_flow_read(cl, buf, sizeof(buf));
                if (allow) {
                        ck_assert_msg(r == 0, "allowed truncation read %zd (%s)", r,
                                      conduit_strerror((int)r));
                } else {
                        ck_assert_msg(r == CONDUIT_E_TLS_TRUNCATED,
                                      "read %zd (%s) [%s], want CONDUIT_E_TLS_TRUNCATED", r,
                                      conduit_strerror((int)r), conduit_flow_error_message(cl));
                        /* sticky */
                        tc_err(conduit_flow_read(cl, buf, sizeof(buf)), CONDUIT_E_TLS_TRUNCATED);
                }
                conduit_flow_free(cl);
                conduit_flow_free(sv);
                close(raw);
        }
        /* non-TLS flows */
        conduit_flow *a = NULL, *b = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        tc_err(conduit_tls_set_allow_truncation(a, true), -EINVAL);
        tc_err(conduit_tls_handshake(a), -EINVAL);
        conduit_flow_free(a);
        conduit_flow_free(b);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

/* ---- bulk transfers: KeyUpdate, TLS 1.2 ------------------------------------- */

struct bulk {
        bool key_update;
        atomic_int ok;
        char err[256];
};

static void serve_bulk(struct srv *s, conduit_flow *f)
{
        struct bulk *b = s->user;
        uint8_t *want = malloc(BULK), *got = malloc(BULK);
        int r;
        if (!want || !got) {
                snprintf(b->err, sizeof(b->err), "no memory");
                goto out;
        }
        tc_fill(want, BULK, 1);
        if ((r = read_full(f, got, BULK)) < 0) {
                snprintf(b->err, sizeof(b->err), "server read: %d (%s) %s", r, conduit_strerror(r),
                         conduit_flow_error_message(f));
                goto out;
        }
        if (memcmp(got, want, BULK) != 0) {
                snprintf(b->err, sizeof(b->err), "server received corrupted data");
                goto out;
        }
        tc_fill(want, BULK, 2);
        for (int half = 0; half < 2; half++) {
                ssize_t w = conduit_flow_write(f, want + half * (BULK / 2), BULK / 2);
                if (w != BULK / 2) {
                        snprintf(b->err, sizeof(b->err), "server write: %zd (%s) %s", w,
                                 conduit_strerror((int)w), conduit_flow_error_message(f));
                        goto out;
                }
                if (half == 0 && b->key_update) {
                        void *ssl = NULL;
                        if (conduit_flow_query(f, CONDUIT_QUERY_TLS_SSL, &ssl) < 0 || !ssl ||
                            SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
                                snprintf(b->err, sizeof(b->err), "server SSL_key_update failed");
                                goto out;
                        }
                }
        }
        if ((r = conduit_flow_shutdown(f, CONDUIT_SHUT_WR)) < 0) {
                snprintf(b->err, sizeof(b->err), "server shutdown: %d (%s)", r,
                         conduit_strerror(r));
                goto out;
        }
        char c;
        ssize_t n = conduit_flow_read(f, &c, 1);
        if (n != 0) {
                snprintf(b->err, sizeof(b->err), "server's final read: %zd (%s) %s", n,
                         conduit_strerror((int)n), conduit_flow_error_message(f));
                goto out;
        }
        atomic_store(&b->ok, 1);
out:
        free(want);
        free(got);
        conduit_flow_free(f);
}

static void bulk_transfer(const char *client_opts, bool key_update, const char *version)
{
        struct bulk b = { .key_update = key_update };
        struct srv *s;
        s = srv_start(NULL, serve_bulk, &b, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s%s", s->port,
                                     FX->ca_cert, client_opts);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), version);
        SSL *ssl = qssl(f);
        ck_assert_str_eq(SSL_get_version(ssl), version);
        uint8_t *data = malloc(BULK);
        ck_assert_ptr_nonnull(data);
        tc_fill(data, BULK, 1);
        tc_write_all(f, data, BULK / 2);
        if (key_update)
                ck_assert_int_eq(SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED), 1);
        tc_write_all(f, data + BULK / 2, BULK / 2);
        /* the KeyUpdate went out with the second half */
        ck_assert_int_eq(SSL_get_key_update_type(ssl), SSL_KEY_UPDATE_NONE);
        size_t n = 0;
        uint8_t *back = tc_read_all(f, &n);
        ck_assert_uint_eq(n, BULK);
        tc_fill(data, BULK, 2);
        ck_assert_msg(memcmp(back, data, BULK) == 0, "client received corrupted data");
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        /* the server saw its data, then EOF, before the stop connection */
        for (int i = 0; i < 2000 && !atomic_load(&b.ok) && !b.err[0]; i++)
                usleep(10000);
        ck_assert_msg(atomic_load(&b.ok), "server: %s", b.err);
        ck_assert_str_eq(srv_facts(s, 0).version, version);
        conduit_flow_free(f);
        free(back);
        free(data);
        conduit_ctx_free(c);
        srv_stop(s);
}

START_TEST(key_update_tls13)
{
        bulk_transfer("", true, "TLSv1.3");
}
END_TEST

START_TEST(bulk_tls12)
{
        bulk_transfer("&max_version=1.2", false, "TLSv1.2");
}
END_TEST

/* A user flow over a socket that takes at most stingy_budget more bytes
 * (-1: any number), then says -EAGAIN though its descriptor polls
 * writable: a transport that is full in the middle of a record. */
static atomic_long stingy_budget = -1;

static ssize_t stingy_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        struct fdflow *u = conduit_flow_impl(f);
        long b = atomic_load(&stingy_budget);
        size_t len = iovcnt > 0 ? iov[0].iov_len : 0;
        if (b == 0)
                return -EAGAIN;
        if (b > 0 && len > (size_t)b)
                len = (size_t)b;
        ssize_t n = send(u->fd, iov[0].iov_base, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0 && b > 0)
                atomic_fetch_sub(&stingy_budget, (long)n);
        return n >= 0 ? n : -errno;
}

static const conduit_flow_ops stingy_ops = {
        .name = "stingy",
        .read = ff_read,
        .writev = stingy_writev,
        .shutdown = ff_shutdown,
        .get_fd = ff_get_fd,
        .destroy = ff_destroy,
};

static void *release_budget(void *p)
{
        (void)p;
        usleep(200000);
        atomic_store(&stingy_budget, -1);
        return NULL;
}

/* A blocking write returns once its bytes are on the transport: the part
 * of a record the transport did not take waits in the write, not for a
 * next operation of the writer (which may never come while the peer waits
 * for the bytes). */
START_TEST(blocking_write_leaves_nothing_behind)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct fdflow *u = malloc(sizeof(*u));
        ck_assert_ptr_nonnull(u);
        u->fd = sv[0];
        conduit_flow *ci = NULL, *si = NULL, *cl = NULL, *srv = NULL;
        tc_ok(conduit_flow_new(&stingy_ops, u, &ci));
        tc_ok(conduit_flow_from_fd(sv[1], CONDUIT_FD_OWN, &si));
        char *copts = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        char *sopts = server_opts(FX->server_cert, FX->server_key);
        tc_ok(conduit_tls_client(c, ci, copts, &cl));
        tc_ok(conduit_tls_server(sctx, si, sopts, &srv));
        handshake_both(cl, srv);
        static unsigned char buf[16384];
        atomic_store(&stingy_budget, 1000);
        pthread_t t = tc_spawn(release_budget, NULL);
        ck_assert_int_eq(conduit_flow_write(cl, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        tc_join(t);
        /* the writer does nothing more: the reader still gets every byte */
        tc_ok(conduit_flow_set_timeout(srv, CONDUIT_TIMEOUT_READ, 3000));
        size_t got = 0;
        for (int i = 0; got < sizeof(buf) && i < 1000; i++) {
                ssize_t n = conduit_flow_read(srv, buf, sizeof(buf) - got);
                ck_assert_msg(n > 0, "read after %zu of %zu bytes: %zd (%s)", got, sizeof(buf), n,
                              conduit_strerror((int)n));
                got += (size_t)n;
        }
        ck_assert_uint_eq(got, sizeof(buf));
        conduit_flow_free(cl);
        conduit_flow_free(srv);
        free(copts);
        free(sopts);
        conduit_ctx_free(sctx);
        conduit_ctx_free(c);
}
END_TEST

/* ---- the wrap API, TLS over TLS ---------------------------------------------- */

/* TLS over TLS, the outer layer's record waiting in its output buffer
 * because the inner layer's transport is full (the peer reads nothing): a
 * non-blocking read that finds nothing waits for readability as well as
 * for room. The inner layer's write in the outer's read used to overwrite
 * what the outer read waits for with "write" only, and a full-duplex
 * transfer whose both sides were full then waited for ever (found by the
 * conformance suite's chaotic-transport test over tls-memory). */
START_TEST(tls_over_tls_read_wants_read)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        conduit_flow *ci = NULL, *si = NULL, *co = NULL, *so = NULL;
        int raw = -1;
        raw_pair(c, sctx, &ci, &si, &raw);
        handshake_both(ci, si);
        char *copts = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        char *sopts = server_opts(FX->server_cert, FX->server_key);
        tc_ok(conduit_tls_client(c, ci, copts, &co));
        tc_ok(conduit_tls_server(sctx, si, sopts, &so));
        handshake_both(co, so);
        tc_ok(conduit_flow_set_nonblocking(co, true));
        static char chunk[16384];
        ssize_t w = 0;
        for (int i = 0; i < 10000 && w >= 0; i++)
                w = conduit_flow_write(co, chunk, sizeof(chunk));
        tc_err(w, -EAGAIN);
        char b[4];
        tc_err(conduit_flow_read(co, b, sizeof(b)), -EAGAIN);
        int wants = conduit_flow_wants(co);
        ck_assert_msg(wants == (CONDUIT_WANT_READ | CONDUIT_WANT_WRITE),
                      "a read with a record waiting to go out wants %d", wants);
        /* and what the peer sends wakes it and arrives */
        tc_write_all(so, "hi", 2);
        ssize_t r = -EAGAIN;
        for (int i = 0; i < 100 && r == -EAGAIN; i++) {
                struct pollfd p = { .fd = conduit_flow_poll_fd(co, CONDUIT_WANT_READ),
                                    .events = POLLIN };
                ck_assert_int_eq(poll(&p, 1, 10000), 1);
                r = conduit_flow_read(co, b, sizeof(b));
        }
        ck_assert_int_eq(r, 2);
        ck_assert(memcmp(b, "hi", 2) == 0);
        conduit_flow_free(co);
        conduit_flow_free(so);
        close(raw);
        free(copts);
        free(sopts);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

START_TEST(wrap_socketpair_handshake_on_first_io)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        conduit_flow *a = NULL, *b = NULL, *f = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        char *sopts = server_opts(FX->server_cert, FX->server_key);
        struct wrap_srv w;
        wrap_srv_start(&w, sctx, b, sopts);
        char *copts = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        tc_ok(conduit_tls_client(c, a, copts, &f));
        ck_assert_str_eq(conduit_flow_backend(f), "tls");
        ck_assert_int_eq(conduit_flow_fd(f), -1);
        /* the first write does the handshake */
        ping(f);
        tc_ok(conduit_tls_handshake(f)); /* done already */
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_SERVERNAME), "localhost");
        const conduit_endp *peer = conduit_flow_peer(f);
        ck_assert_ptr_nonnull(peer);
        ck_assert_int_eq(conduit_endp_get_kind(peer), CONDUIT_ENDP_TLS);
        ck_assert_ptr_nonnull(conduit_endp_get_inner(peer));
        ck_assert_int_eq(conduit_endp_get_kind(conduit_endp_get_inner(peer)), CONDUIT_ENDP_UNIX);
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        char ch;
        ck_assert_int_eq(conduit_flow_read(f, &ch, 1), 0);
        wrap_srv_join(&w);
        ck_assert_msg(w.r_wrap == 0 && w.r_hs == 0, "server wrap %d handshake %d [%s]", w.r_wrap,
                      w.r_hs, w.msg);
        ck_assert_int_eq(w.r_echo, 0);
        ck_assert_str_eq(w.facts.sni, "localhost");
        conduit_flow_free(f);
        free(copts);
        free(sopts);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

/* A TLS server whose non-blocking read waits for the rest of a ClientHello
 * reports nothing pending: the event API's watches read again at once
 * while pending() is not 0, so they spun until the record was complete
 * (found by tests/fuzz/fuzz-tls-chaos). */
START_TEST(partial_record_in_handshake_is_not_pending)
{
        conduit_ctx *sctx = server_ctx();
        conduit_flow *a = NULL, *b = NULL, *s = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        char *sopts = server_opts(FX->server_cert, FX->server_key);
        tc_ok(conduit_tls_server(sctx, b, sopts, &s));
        tc_ok(conduit_flow_set_nonblocking(s, true));
        char buf[16];
        /* no bytes, then part of a record header, then a header and part
         * of its body */
        static const char *const parts[] = { "", "\x16\x03", "\x01\x00\x40\x01\x00" };
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                if (parts[i][0])
                        ck_assert_int_eq(conduit_flow_write(a, parts[i], strlen(parts[i])),
                                         (ssize_t)strlen(parts[i]));
                tc_err(conduit_flow_read(s, buf, sizeof(buf)), -EAGAIN);
                ck_assert_uint_eq(conduit_flow_pending(s), 0);
                tc_err(conduit_tls_handshake(s), -EAGAIN);
                ck_assert_uint_eq(conduit_flow_pending(s), 0);
        }
        conduit_flow_free(s);
        conduit_flow_free(a);
        free(sopts);
        conduit_ctx_free(sctx);
}
END_TEST

struct tot_srv {
        conduit_ctx *ctx;
        conduit_flow *inner;
        int r, r_echo;
        char msg[512];
        atomic_int client_done;
};

static void *tls_over_tls_server(void *p)
{
        struct tot_srv *t = p;
        char *o1 = server_opts(FX->server_cert, FX->server_key);
        char *o2 = server_opts(FX->alpha_cert, FX->alpha_key);
        conduit_flow *s1 = NULL, *s2 = NULL;
        if ((t->r = conduit_tls_server(t->ctx, t->inner, o1, &s1)) < 0) {
                conduit_flow_free(t->inner);
                goto out;
        }
        if ((t->r = conduit_tls_server(t->ctx, s1, o2, &s2)) < 0) {
                conduit_flow_free(s1);
                goto out;
        }
        if ((t->r = conduit_tls_handshake(s2)) < 0)
                snprintf(t->msg, sizeof(t->msg), "%s", conduit_flow_error_message(s2));
        else
                t->r_echo = echo_loop(s2);
        /* The client's outer close_notify arrives before its inner one: do
         * not close the transport under the client's inner shutdown. */
        for (int i = 0; i < 2000 && !atomic_load(&t->client_done); i++)
                usleep(10000);
        conduit_flow_free(s2);
out:
        free(o1);
        free(o2);
        return NULL;
}

START_TEST(tls_over_tls)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        conduit_flow *a = NULL, *b = NULL, *c1 = NULL, *c2 = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        struct tot_srv t = { .ctx = sctx, .inner = b };
        pthread_t thr = tc_spawn(tls_over_tls_server, &t);
        char *copts = fmt("servername=localhost&cafile=%s", FX->ca_cert);
        tc_ok(conduit_tls_client(c, a, copts, &c1));
        tc_ok(conduit_tls_client(c, c1, copts, &c2));
        tc_ok(conduit_tls_handshake(c2));
        const char *subj = qstr(c2, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        ck_assert_msg(subj && strstr(subj, "CN=alpha"), "outer peer subject '%s'",
                      subj ? subj : "(null)");
        const conduit_endp *peer = conduit_flow_peer(c2);
        ck_assert_int_eq(conduit_endp_get_kind(peer), CONDUIT_ENDP_TLS);
        ck_assert_int_eq(conduit_endp_get_kind(conduit_endp_get_inner(peer)), CONDUIT_ENDP_TLS);
        uint8_t *data = malloc(300000);
        ck_assert_ptr_nonnull(data);
        tc_fill(data, 300000, 3);
        /* the echo would block on a full socket buffer if we wrote it all
         * before reading: write and read back in slices */
        for (size_t off = 0; off < 300000; off += 30000) {
                uint8_t back[30000];
                tc_write_all(c2, data + off, 30000);
                read_exact(c2, back, 30000);
                ck_assert(memcmp(back, data + off, 30000) == 0);
        }
        tc_ok(conduit_flow_shutdown(c2, CONDUIT_SHUT_WR));
        char ch;
        ck_assert_int_eq(conduit_flow_read(c2, &ch, 1), 0);
        atomic_store(&t.client_done, 1);
        tc_join(thr);
        ck_assert_msg(t.r == 0, "server %d (%s) [%s]", t.r, conduit_strerror(t.r), t.msg);
        ck_assert_int_eq(t.r_echo, 0);
        conduit_flow_free(c2);
        free(data);
        free(copts);
        conduit_ctx_free(c);
        conduit_ctx_free(sctx);
}
END_TEST

/* ---- SIGPIPE, context defaults, timeouts ------------------------------------- */

static void serve_drop(struct srv *s, conduit_flow *f)
{
        conduit_flow_free(f);
        atomic_store((atomic_int *)s->user, 1);
}

START_TEST(no_sigpipe)
{
        signal(SIGPIPE, SIG_DFL);
        atomic_int dropped = 0;
        struct srv *s;
        s = srv_start(NULL, serve_drop, &dropped, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        while (!atomic_load(&dropped))
                usleep(1000);
        static uint8_t buf[65536];
        ssize_t w = 0;
        for (int i = 0; i < 500 && w >= 0; i++) {
                w = conduit_flow_write(f, buf, sizeof(buf));
                if (w >= 0)
                        usleep(2000);
        }
        ck_assert_msg(w == -EPIPE || w == -ECONNRESET, "write to a gone peer: %zd (%s) [%s]", w,
                      conduit_strerror((int)w), conduit_flow_error_message(f));
        conduit_flow_free(f);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(context_defaults)
{
        conduit_ctx *c = client_ctx();
        tc_err(conduit_ctx_set_tls_option(c, "nodelay", "1"), CONDUIT_E_OPTION);
        tc_err(conduit_ctx_set_tls_option(c, "bogus", "1"), CONDUIT_E_OPTION);
        tc_err(conduit_ctx_set_tls_option(c, "min_version", "1.7"), CONDUIT_E_OPTION_VALUE);
        tc_err(conduit_ctx_set_tls_option(c, "verify", "maybe"), CONDUIT_E_OPTION_VALUE);

        /* server defaults: cert and key from the context */
        conduit_ctx *sctx = server_ctx();
        tc_ok(conduit_ctx_set_tls_option(sctx, "cert", FX->server_cert));
        tc_ok(conduit_ctx_set_tls_option(sctx, "key", FX->server_key));
        tc_ok(conduit_ctx_set_tls_option(sctx, "alpn", "http/1.1"));
        struct srv *s, *o;
        s = srv_start(sctx, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0");
        /* a URI's own certificate wins */
        o = srv_start(sctx, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->alpha_cert, FX->alpha_key);

        /* client defaults: the CA file */
        expect_verify(c, "unable to get local issuer certificate", "tls+tcp://localhost:%lld",
                      s->port);
        tc_ok(conduit_ctx_set_tls_option(c, "cafile", FX->ca_cert));
        tc_ok(conduit_ctx_set_tls_option(c, "alpn", "h2,http/1.1"));
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld", s->port);
        ping(f);
        const char *subj = qstr(f, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        ck_assert_msg(subj && strstr(subj, "CN=localhost"), "subject '%s'", subj ? subj : "(null)");
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_ALPN), "http/1.1");
        conduit_flow_free(f);
        f = connect_ok(c, "tls+tcp://localhost:%lld", o->port);
        ping(f);
        subj = qstr(f, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        ck_assert_msg(subj && strstr(subj, "CN=alpha"), "subject '%s'", subj ? subj : "(null)");
        conduit_flow_free(f);
        /* the URI overrides the default */
        expect_verify(c, "unable to get local issuer certificate",
                      "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->unknown_ca_cert);
        /* removing the default */
        tc_ok(conduit_ctx_set_tls_option(c, "cafile", NULL));
        expect_verify(c, "unable to get local issuer certificate", "tls+tcp://localhost:%lld",
                      s->port);
        /* verify=0 as a default, verify=1 in the URI */
        tc_ok(conduit_ctx_set_tls_option(c, "verify", "0"));
        f = connect_ok(c, "tls+tcp://localhost:%lld", s->port);
        ping(f);
        conduit_flow_free(f);
        expect_verify(c, "unable to get local issuer certificate",
                      "tls+tcp://localhost:%lld?verify=1", s->port);
        srv_stop(s);
        srv_stop(o);
        conduit_ctx_free(sctx);
        conduit_ctx_free(c);
}
END_TEST

START_TEST(client_handshake_timeout)
{
        /* a peer that never answers: the wrap API */
        conduit_ctx *c = client_ctx();
        conduit_flow *a = NULL, *b = NULL, *f = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        tc_ok(conduit_tls_client(c, a, "verify=0", &f));
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_HANDSHAKE, 300));
        tc_err(conduit_tls_handshake(f), -ETIMEDOUT);
        conduit_flow_free(f);
        conduit_flow_free(b);

        /* and a TCP listener that accepts but never speaks TLS */
        int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(in);
        ck_assert_int_eq(bind(ls, (struct sockaddr *)&in, len), 0);
        ck_assert_int_eq(listen(ls, 4), 0);
        ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&in, &len), 0);
        tc_ok(conduit_ctx_set_timeout(c, CONDUIT_TIMEOUT_HANDSHAKE, 300));
        int r = tls_connect(c, &f, "tls+tcp://127.0.0.1:%u?verify=0", ntohs(in.sin_port));
        ck_assert_msg(r == -ETIMEDOUT, "connect %s: %d (%s) [%s], want -ETIMEDOUT", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        close(ls);
        conduit_ctx_free(c);
}
END_TEST

START_TEST(listener_serves_while_silent_client_waits)
{
        conduit_ctx *sctx = server_ctx();
        ck_assert_int_eq(conduit_ctx_get_timeout(sctx, CONDUIT_TIMEOUT_HANDSHAKE), 10000);
        /* long enough for a good handshake even under valgrind, short enough
         * to see the silent client go */
        tc_ok(conduit_ctx_set_timeout(sctx, CONDUIT_TIMEOUT_HANDSHAKE, 2000));
        struct srv *s;
        s = srv_start(sctx, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);

        /* connects, sends nothing */
        int silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = { .sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)s->port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        ck_assert_int_eq(connect(silent, (struct sockaddr *)&in, sizeof(in)), 0);

        /* good clients are served meanwhile */
        conduit_ctx *c = client_ctx();
        for (int i = 0; i < 3; i++) {
                conduit_flow *f =
                        connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
                ping(f);
                conduit_flow_free(f);
                ck_assert_int_eq(srv_accepted(s), i + 1);
                /* order, not timing: the silent client is still connected
                 * (nothing to read, no EOF) after a good one was served */
                struct pollfd p = { .fd = silent, .events = POLLIN };
                ck_assert_msg(poll(&p, 1, 0) == 0,
                              "the silent client was dropped before good client %d was served: "
                              "handshakes do not run concurrently",
                              i);
        }

        /* then the silent client is dropped at its handshake timeout (the
         * listener is in accept again) */
        for (;;) {
                struct pollfd p = { .fd = silent, .events = POLLIN };
                ck_assert_msg(poll(&p, 1, 30000) == 1, "the silent client was never dropped");
                char buf[256];
                ssize_t n = recv(silent, buf, sizeof(buf), 0);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        break;
                ck_assert_msg(n > 0, "recv: %s", strerror(errno));
        }
        close(silent);
        /* and the listener still serves */
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        conduit_flow_free(f);
        ck_assert_int_eq(srv_accepted(s), 4);
        conduit_ctx_free(c);
        srv_stop_clean(s);
        conduit_ctx_free(sctx);
}
END_TEST

/* Runs in the runner process (Check's unchecked fixture), so the forked
 * tests share one set of files, made once. */
/* ---- session resumption ------------------------------------------------------ */

/* Whether f's handshake resumed a session: the query, checked against
 * OpenSSL's own answer. */
static int resumed(conduit_flow *f)
{
        int r = -1;
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_TLS_RESUMED, &r));
        ck_assert_int_eq(r, SSL_session_reused(qssl(f)));
        return r;
}

/* Connects, pings (a TLS 1.3 client reads its tickets on the way) and
 * closes; returns whether the handshake resumed. */
static int visit(conduit_ctx *c, const char *ufmt, ...) CONDUIT_PRINTF(2, 3);
static int visit(conduit_ctx *c, const char *ufmt, ...)
{
        va_list ap;
        va_start(ap, ufmt);
        vsnprintf(last_uri, sizeof(last_uri), ufmt, ap);
        va_end(ap);
        conduit_flow *f = NULL;
        int r = conduit_connect(c, last_uri, &f);
        ck_assert_msg(r == 0, "connect %s: %d (%s) [%s]", last_uri, r, conduit_strerror(r),
                      conduit_ctx_error_message(c));
        ping(f);
        r = resumed(f);
        /* a resumed handshake still knows the peer (from the session) */
        const char *subj = qstr(f, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        ck_assert_msg(subj && strstr(subj, "CN="), "%s: peer subject '%s'", last_uri,
                      subj ? subj : "(null)");
        conduit_flow_free(f);
        return r;
}

#define ck_resumed(want, c, ...)                                                                   \
        do {                                                                                       \
                int r_ = visit(c, __VA_ARGS__);                                                    \
                ck_assert_msg(r_ == (want), "%s: resumed %d, want %d", last_uri, r_, (int)(want)); \
        } while (0)

START_TEST(resumption_tcp)
{
        /* two listeners of one server context share one SSL_CTX, hence
         * ticket keys: either would resume the other's sessions if the
         * client offered them */
        conduit_ctx *sc = server_ctx();
        struct srv *s = srv_start(sc, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                  FX->server_cert, FX->server_key);
        struct srv *s2 = srv_start(sc, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                   FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_assert_int_eq(srv_facts(s, 0).resumed, 0);
        ck_assert_int_eq(srv_facts(s, 1).resumed, 1);
        ck_assert_str_eq(srv_facts(s, 1).version, "TLSv1.3");

        /* another peer, another server name, other settings: full handshakes */
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s", s2->port, FX->ca_cert);
        ck_resumed(0, c, "tls+tcp://127.0.0.1:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&alpn=h2", s->port, FX->ca_cert);
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&min_version=1.3", s->port,
                   FX->ca_cert);
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&cert=%s&key=%s", s->port, FX->ca_cert,
                   FX->client_cert, FX->client_key);
        /* and each of those resumes its own */
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s", s2->port, FX->ca_cert);
        ck_resumed(1, c, "tls+tcp://127.0.0.1:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s&alpn=h2", s->port, FX->ca_cert);

        /* another context shares nothing */
        conduit_ctx *c2 = client_ctx();
        ck_resumed(0, c2, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(1, c2, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        conduit_ctx_free(c2);

        /* the first context still has its own */
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);

        /* calls given no context share the default one, sessions too */
        ck_resumed(0, NULL, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(1, NULL, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        conduit_ctx_free(c);
        srv_stop_clean(s);
        srv_stop_clean(s2);
        conduit_ctx_free(sc);
}
END_TEST

START_TEST(resumption_unix)
{
        char *dir = tc_tmpdir();
        struct srv *s = srv_start(NULL, NULL, NULL, NULL, "tls+unix://%s/tls.sock?cert=%s&key=%s",
                                  dir, FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        ck_resumed(0, c, "%s?servername=localhost&cafile=%s", s->base, FX->ca_cert);
        ck_resumed(1, c, "%s?servername=localhost&cafile=%s", s->base, FX->ca_cert);
        ck_assert_int_eq(srv_facts(s, 1).resumed, 1);
        /* another name for the same socket: its own session */
        ck_resumed(0, c, "%s?servername=127.0.0.1&cafile=%s", s->base, FX->ca_cert);
        ck_resumed(1, c, "%s?servername=127.0.0.1&cafile=%s", s->base, FX->ca_cert);
        conduit_ctx_free(c);
        srv_stop_clean(s);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(resumption_tls12)
{
        struct srv *s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                  FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        for (int i = 0; i < 3; i++) {
                conduit_flow *f =
                        connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&max_version=1.2", s->port,
                                   FX->ca_cert);
                ping(f);
                ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.2");
                ck_assert_msg(resumed(f) == (i > 0), "TLS 1.2 connection %d: resumed %d", i,
                              resumed(f));
                conduit_flow_free(f);
        }
        ck_assert_int_eq(srv_facts(s, 2).resumed, 1);
        /* a 1.2 session is not offered where 1.3 may be negotiated */
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        conduit_ctx_free(c);
        srv_stop_clean(s);
}
END_TEST

/* A session made without verification is never offered by a verifying
 * connection: against a server that does not verify, that connection
 * fails as it would without any session. */
START_TEST(resumption_unverified_not_offered)
{
        struct srv *s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                  FX->self_cert, FX->self_key);
        conduit_ctx *c = client_ctx();
        ck_resumed(0, c, "tls+tcp://localhost:%lld?verify=0", s->port);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?verify=0", s->port);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?verify=0", s->port);
        expect_verify(c, "self-signed certificate|self signed certificate",
                      "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        expect_verify(c, "self-signed certificate|self signed certificate",
                      "tls+tcp://localhost:%lld", s->port);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?verify=0", s->port);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(resumption_checks_pin)
{
        struct srv *s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                  FX->self_cert, FX->self_key);
        char *pin = pct(FX->self_pin), *wrong = pct(FX->server_pin);
        conduit_ctx *c = client_ctx();
        ck_resumed(0, c, "tls+tcp://localhost:%lld?pin=%s", s->port, pin);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?pin=%s", s->port, pin);
        /* a wrong pin fails though a session for the server exists */
        expect_verify(c, "pin", "tls+tcp://localhost:%lld?pin=%s", s->port, wrong);

        /* and fails on a resumed handshake too: the session's certificate
         * is checked. Sessions are handed to OpenSSL directly, as no
         * connection with another pin would ever be offered them; one each
         * (OpenSSL uses a TLS 1.3 session once), kept out of the cache. */
        SSL_SESSION *sess[2];
        for (int i = 0; i < 2; i++) {
                conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?pin=%s&session_cache=0",
                                             s->port, pin);
                ping(f);
                sess[i] = SSL_get1_session(qssl(f));
                ck_assert_ptr_nonnull(sess[i]);
                ck_assert(SSL_SESSION_is_resumable(sess[i]));
                ck_assert_ptr_nonnull(SSL_SESSION_get0_peer(sess[i]));
                conduit_flow_free(f);
        }
        static const char *const what[] = { "wrong pin", "right pin" };
        for (int i = 0; i < 2; i++) {
                char *opts = fmt("servername=localhost&pin=%s", i ? FX->self_pin : FX->server_pin);
                conduit_flow *raw = connect_ok(c, "tcp://127.0.0.1:%lld", s->port), *f = NULL;
                tc_ok(conduit_tls_client(c, raw, opts, &f));
                ck_assert_int_eq(SSL_set_session(qssl(f), sess[i]), 1);
                int r = conduit_tls_handshake(f);
                ck_assert_msg(r == (i ? 0 : CONDUIT_E_TLS_VERIFY),
                              "resumed handshake, %s: %d (%s) %s", what[i], r, conduit_strerror(r),
                              conduit_flow_error_message(f));
                ck_assert_msg(SSL_session_reused(qssl(f)) == 1, "%s: not resumed", what[i]);
                if (i) {
                        ping(f);
                        ck_assert_int_eq(resumed(f), 1);
                } else {
                        ck_assert(has_ci(conduit_flow_error_message(f), "pin"));
                }
                conduit_flow_free(f);
                SSL_SESSION_free(sess[i]);
                free(opts);
        }
        free(pin);
        free(wrong);
        conduit_ctx_free(c);
        srv_stop(s);
}
END_TEST

START_TEST(resumption_off)
{
        struct srv *s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                  FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        /* by the URI */
        for (int i = 0; i < 3; i++)
                ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&session_cache=0", s->port,
                           FX->ca_cert);
        /* by the context, unless the URI says otherwise */
        tc_ok(conduit_ctx_set_tls_option(c, "session_cache", "off"));
        for (int i = 0; i < 2; i++)
                ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&session_cache=1", s->port,
                   FX->ca_cert);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s&session_cache=1", s->port,
                   FX->ca_cert);
        tc_err(conduit_ctx_set_tls_option(c, "session_cache", "maybe"), CONDUIT_E_OPTION_VALUE);
        conduit_ctx_free(c);
        srv_stop_clean(s);

        /* a server with session_cache=0 issues no tickets and resumes nothing */
        s = srv_start(NULL, NULL, NULL, NULL,
                      "tls+tcp://127.0.0.1:0?cert=%s&key=%s&session_cache=0", FX->server_cert,
                      FX->server_key);
        c = client_ctx();
        for (int i = 0; i < 2; i++) {
                ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
                ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&max_version=1.2", s->port,
                           FX->ca_cert);
        }
        conduit_ctx_free(c);
        srv_stop_clean(s);
}
END_TEST

/* ---- resumption with the openssl command-line tool ------------------------- */

static bool have_openssl_cli(void)
{
        int r = system("command -v openssl >/dev/null 2>&1");
        if (r != 0)
                fprintf(stderr, "# skipped: no openssl command\n");
        return r == 0;
}

/* openssl s_server -rev (lines come back reversed) on Unix socket path,
 * speaking only version ("-tls1_3"), with only the given TLS 1.3 suites
 * (NULL: its defaults); waits (bounded) for the socket. */
static pid_t start_s_server(const char *path, const char *version, const char *ciphersuites)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                if (null >= 0) {
                        dup2(null, 0);
                        dup2(null, 1);
                        dup2(null, 2);
                }
                execlp("timeout", "timeout", "60", "openssl", "s_server", "-unix", path, "-cert",
                       FX->server_cert, "-key", FX->server_key, "-rev", "-naccept", "8", version,
                       ciphersuites ? "-ciphersuites" : (char *)NULL, ciphersuites, (char *)NULL);
                _exit(127);
        }
        struct stat st;
        for (int i = 0; i < 1000 && stat(path, &st) != 0; i++)
                usleep(10000);
        ck_assert_msg(stat(path, &st) == 0, "openssl s_server did not create %s", path);
        return pid;
}

static void stop_s_server(pid_t pid)
{
        kill(pid, SIGTERM);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
}

/* "ping\n" comes back as "gnip\n". */
static int visit_s_server(conduit_ctx *c, const char *uri, const char *version)
{
        conduit_flow *f = connect_ok(c, "%s", uri);
        tc_write_all(f, "ping\n", 5);
        char buf[5];
        read_exact(f, buf, 5);
        ck_assert(memcmp(buf, "gnip\n", 5) == 0);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), version);
        int r = resumed(f);
        conduit_flow_free(f);
        return r;
}

START_TEST(resumption_with_s_server)
{
        if (!have_openssl_cli())
                return;
        /* s_server -unix wants a short path */
        char dir[] = "/tmp/ctrXXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        static const char *const versions[][2] = { { "-tls1_3", "TLSv1.3" },
                                                   { "-tls1_2", "TLSv1.2" } };
        for (size_t v = 0; v < 2; v++) {
                char *path = fmt("%s/s%zu", dir, v);
                pid_t pid = start_s_server(path, versions[v][0], NULL);
                conduit_ctx *c = client_ctx();
                char *uri = fmt("tls+unix://%s?servername=localhost&cafile=%s", path, FX->ca_cert);
                ck_assert_msg(visit_s_server(c, uri, versions[v][1]) == 0, "%s: first resumed",
                              versions[v][1]);
                ck_assert_msg(visit_s_server(c, uri, versions[v][1]) == 1, "%s: not resumed",
                              versions[v][1]);
                ck_assert_msg(visit_s_server(c, uri, versions[v][1]) == 1, "%s: third not resumed",
                              versions[v][1]);
                free(uri);
                conduit_ctx_free(c);
                stop_s_server(pid);
                unlink(path);
                free(path);
        }
        rmdir(dir);
}
END_TEST

/* Says hello (after the handshake, so after any TLS 1.3 tickets), then
 * closes once the client did. */
static void serve_hello(struct srv *s, conduit_flow *f)
{
        (void)s;
        if (conduit_flow_write(f, "hello\n", 6) == 6)
                (void)conduit_flow_shutdown(f, CONDUIT_SHUT_WR);
        char b[64];
        while (conduit_flow_read(f, b, sizeof(b)) > 0)
                ;
        conduit_flow_free(f);
}

/* Runs s_client against port with extra arguments; returns its output. */
static char *s_client(const char *dir, long long port, const char *args)
{
        char *out = fmt("%s/out", dir);
        char *cmd = fmt("timeout 60 openssl s_client -connect 127.0.0.1:%lld -servername localhost "
                        "-CAfile %s -verify_return_error -ign_eof %s </dev/null >%s 2>&1",
                        port, FX->ca_cert, args, out);
        int r = system(cmd);
        ck_assert_msg(r == 0, "%s: status %d", cmd, r);
        size_t len = 0;
        FILE *fp = fopen(out, "r");
        ck_assert_ptr_nonnull(fp);
        char *text = calloc(1, 65536);
        ck_assert_ptr_nonnull(text);
        len = fread(text, 1, 65535, fp);
        text[len] = '\0';
        fclose(fp);
        unlink(out);
        free(out);
        free(cmd);
        return text;
}

START_TEST(resumed_by_s_client)
{
        if (!have_openssl_cli())
                return;
        char *dir = tc_tmpdir();
        static const char *const versions[][2] = { { "-tls1_3", "TLSv1.3" },
                                                   { "-tls1_2", "TLSv1.2" } };
        for (size_t v = 0; v < 2; v++) {
                struct srv *s = srv_start(NULL, serve_hello, NULL, NULL,
                                          "tls+tcp://127.0.0.1:0?cert=%s&key=%s", FX->server_cert,
                                          FX->server_key);
                char *sess = fmt("%s/sess%zu.pem", dir, v);
                char *args = fmt("%s -sess_out %s", versions[v][0], sess);
                char *out = s_client(dir, s->port, args);
                char *want = fmt("New, %s", versions[v][1]);
                ck_assert_msg(strstr(out, want) && strstr(out, "hello"), "first s_client %s: %s",
                              versions[v][1], out);
                free(out);
                free(args);
                free(want);
                args = fmt("%s -sess_in %s", versions[v][0], sess);
                out = s_client(dir, s->port, args);
                want = fmt("Reused, %s", versions[v][1]);
                ck_assert_msg(strstr(out, want) && strstr(out, "hello"), "second s_client %s: %s",
                              versions[v][1], out);
                ck_assert_int_eq(srv_facts(s, 0).resumed, 0);
                ck_assert_int_eq(srv_facts(s, 1).resumed, 1);
                ck_assert_str_eq(srv_facts(s, 1).version, versions[v][1]);
                free(out);
                free(args);
                free(want);
                unlink(sess);
                free(sess);
                srv_stop(s);
        }
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* ---- TLS 1.3 cipher suites (ciphersuites=) ------------------------------------- */

#define CHACHA "TLS_CHACHA20_POLY1305_SHA256"
#define AES128 "TLS_AES_128_GCM_SHA256"
#define AES256 "TLS_AES_256_GCM_SHA384"

START_TEST(ciphersuites_agree)
{
        /* a listener that allows only ChaCha20-Poly1305 */
        struct srv *s = srv_start(NULL, NULL, NULL, NULL,
                                  "tls+tcp://127.0.0.1:0?cert=%s&key=%s&ciphersuites=" CHACHA,
                                  FX->server_cert, FX->server_key);
        conduit_ctx *c = client_ctx();
        conduit_flow *f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&ciphersuites=" CHACHA,
                                     s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.3");
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_CIPHER), CHACHA);
        ck_assert_str_eq(srv_facts(s, 0).cipher, CHACHA);
        conduit_flow_free(f);
        /* a client with OpenSSL's default list gets it too */
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&session_cache=0", s->port,
                       FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_CIPHER), CHACHA);
        conduit_flow_free(f);
        /* a client without it fails the handshake; so does the 'same'
         * client on the same context, its SSL_CTX is not the other's */
        int r = tls_connect(c, &f, "tls+tcp://localhost:%lld?cafile=%s&ciphersuites=" AES128,
                            s->port, FX->ca_cert);
        ck_assert_msg(r == CONDUIT_E_TLS, "connect %s: %d (%s) [%s]", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        ck_assert_ptr_null(f);
        /* TLS 1.2 keeps OpenSSL's default cipher list */
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&max_version=1.2&ciphersuites=" AES128,
                       s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_VERSION), "TLSv1.2");
        conduit_flow_free(f);
        srv_stop(s);

        /* the client's order is its preference, and the server follows it */
        s = srv_start(NULL, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                      FX->server_cert, FX->server_key);
        static const char *const prefs[][2] = {
                { AES256 "," CHACHA, AES256 },
                { CHACHA ":" AES256, CHACHA },
                { AES128, AES128 },
        };
        for (size_t i = 0; i < sizeof(prefs) / sizeof(prefs[0]); i++) {
                f = connect_ok(c,
                               "tls+tcp://localhost:%lld?cafile=%s&session_cache=0&ciphersuites=%s",
                               s->port, FX->ca_cert, prefs[i][0]);
                ping(f);
                ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_CIPHER), prefs[i][1]);
                conduit_flow_free(f);
        }

        /* a session is only offered to connections asking the same suites */
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&ciphersuites=" CHACHA, s->port,
                   FX->ca_cert);
        ck_resumed(1, c, "tls+tcp://localhost:%lld?cafile=%s&ciphersuites=" CHACHA, s->port,
                   FX->ca_cert);
        ck_resumed(0, c, "tls+tcp://localhost:%lld?cafile=%s&ciphersuites=" AES256 "," CHACHA,
                   s->port, FX->ca_cert);
        srv_stop(s);

        /* context defaults, on both sides */
        conduit_ctx *sctx = server_ctx();
        tc_ok(conduit_ctx_set_tls_option(sctx, "cert", FX->server_cert));
        tc_ok(conduit_ctx_set_tls_option(sctx, "key", FX->server_key));
        tc_ok(conduit_ctx_set_tls_option(sctx, "ciphersuites", AES256 ":" CHACHA));
        s = srv_start(sctx, NULL, NULL, NULL, "tls+tcp://127.0.0.1:0");
        tc_ok(conduit_ctx_set_tls_option(c, "ciphersuites", CHACHA "," AES256));
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s", s->port, FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_CIPHER), CHACHA);
        ck_assert_str_eq(srv_facts(s, 0).cipher, CHACHA);
        conduit_flow_free(f);
        /* the URI's own list wins over the default */
        f = connect_ok(c, "tls+tcp://localhost:%lld?cafile=%s&ciphersuites=" AES256, s->port,
                       FX->ca_cert);
        ping(f);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_CIPHER), AES256);
        conduit_flow_free(f);
        tc_ok(conduit_ctx_set_tls_option(c, "ciphersuites", NULL));
        srv_stop(s);
        conduit_ctx_free(sctx);
        conduit_ctx_free(c);
}
END_TEST

START_TEST(ciphersuites_wrap_api)
{
        conduit_ctx *c = client_ctx(), *sctx = server_ctx();
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        conduit_flow *ci = NULL, *si = NULL, *cl = NULL, *srv = NULL;
        tc_ok(conduit_flow_from_fd(sv[0], CONDUIT_FD_OWN, &ci));
        tc_ok(conduit_flow_from_fd(sv[1], CONDUIT_FD_OWN, &si));
        char *copts = fmt("servername=localhost&cafile=%s&ciphersuites=" AES256, FX->ca_cert);
        char *sopts = fmt("cert=%s&key=%s&ciphersuites=" CHACHA "," AES256, FX->server_cert,
                          FX->server_key);
        tc_ok(conduit_tls_client(c, ci, copts, &cl));
        tc_ok(conduit_tls_server(sctx, si, sopts, &srv));
        handshake_both(cl, srv);
        ck_assert_pstr_eq(qstr(cl, CONDUIT_QUERY_TLS_CIPHER), AES256);
        ck_assert_pstr_eq(qstr(srv, CONDUIT_QUERY_TLS_CIPHER), AES256);
        conduit_flow_free(cl);
        conduit_flow_free(srv);
        free(copts);
        free(sopts);
        conduit_ctx_free(sctx);
        conduit_ctx_free(c);
}
END_TEST

/* A refused value is CONDUIT_E_OPTION_VALUE with a message naming it. */
static void expect_suite_error(int r, conduit_ctx *c, const char *want)
{
        const char *m = conduit_ctx_error_message(c);
        ck_assert_msg(r == CONDUIT_E_OPTION_VALUE, "%d (%s) [%s], want CONDUIT_E_OPTION_VALUE", r,
                      conduit_strerror(r), m);
        ck_assert_msg(m && strstr(m, "ciphersuites") && strstr(m, want),
                      "message '%s' lacks 'ciphersuites' or '%s'", m ? m : "(null)", want);
}

START_TEST(ciphersuites_parse_errors)
{
        conduit_ctx *c = client_ctx();
        expect_suite_error(
                conduit_ctx_set_tls_option(c, "ciphersuites", "TLS_AES_128_CCM_8_SHA256"), c,
                "TLS_AES_128_CCM_8_SHA256 is not supported");
        expect_suite_error(conduit_ctx_set_tls_option(c, "ciphersuites", AES128 ",FOO"), c,
                           "unknown TLS 1.3 cipher suite 'FOO'");
        expect_suite_error(
                conduit_ctx_set_tls_option(c, "ciphersuites", "ECDHE-ECDSA-AES128-GCM-SHA256"), c,
                "unknown TLS 1.3 cipher suite 'ECDHE-ECDSA-AES128-GCM-SHA256'");
        expect_suite_error(conduit_ctx_set_tls_option(c, "ciphersuites", ""), c,
                           "expected TLS 1.3 cipher suite names");
        expect_suite_error(conduit_ctx_set_tls_option(c, "ciphersuites", AES128 ",," CHACHA), c,
                           "empty cipher suite name");
        expect_suite_error(conduit_ctx_set_tls_option(c, "ciphersuites", AES128 ":" AES128), c,
                           "listed twice");
        conduit_flow *f = NULL;
        expect_suite_error(
                conduit_connect(c, "tls+tcp://localhost:1?ciphersuites=TLS_AES_128_CCM_8_SHA256",
                                &f),
                c, "not supported");
        ck_assert_ptr_null(f);
        expect_suite_error(conduit_connect(c, "OPENSSL:localhost:1,ciphersuites=TLS_NULL", &f), c,
                           "'TLS_NULL'");
        ck_assert_ptr_null(f);
        conduit_listener *l = NULL;
        expect_suite_error(conduit_listen(c, "tls+tcp://127.0.0.1:0?ciphersuites=AES128", &l), c,
                           "'AES128'");
        ck_assert_ptr_null(l);
        tc_err(conduit_connect(c, "tcp://localhost:1?ciphersuites=" AES128, &f), CONDUIT_E_OPTION);
        /* the wrap API: the options string is checked before anything else */
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        conduit_flow *in = NULL;
        tc_ok(conduit_flow_from_fd(sv[0], CONDUIT_FD_OWN, &in));
        int r = conduit_tls_client(
                c, in, "servername=localhost&ciphersuites=TLS_AES_128_CCM_8_SHA256", &f);
        expect_suite_error(r, NULL, "TLS_AES_128_CCM_8_SHA256");
        ck_assert_ptr_null(f);
        conduit_flow_free(in);
        close(sv[1]);
        conduit_ctx_free(c);
}
END_TEST

/* openssl s_server with only ChaCha20-Poly1305: a client that asks for
 * AES-128-GCM only fails the handshake, one that asks for ChaCha gets it. */
START_TEST(ciphersuites_with_s_server)
{
        if (!have_openssl_cli())
                return;
        char dir[] = "/tmp/ctcXXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        char *path = fmt("%s/s", dir);
        pid_t pid = start_s_server(path, "-tls1_3", CHACHA);
        conduit_ctx *c = client_ctx();
        char *base = fmt("tls+unix://%s?servername=localhost&cafile=%s", path, FX->ca_cert);
        conduit_flow *f = NULL;
        int r = tls_connect(c, &f, "%s&ciphersuites=" AES128, base);
        ck_assert_msg(r == CONDUIT_E_TLS, "connect %s: %d (%s) [%s]", last_uri, r,
                      conduit_strerror(r), conduit_ctx_error_message(c));
        ck_assert_ptr_null(f);
        f = connect_ok(c, "%s&ciphersuites=" AES128 "," CHACHA, base);
        tc_write_all(f, "ping\n", 5);
        char buf[5];
        read_exact(f, buf, 5);
        ck_assert(memcmp(buf, "gnip\n", 5) == 0);
        ck_assert_pstr_eq(qstr(f, CONDUIT_QUERY_TLS_CIPHER), CHACHA);
        conduit_flow_free(f);
        free(base);
        conduit_ctx_free(c);
        stop_s_server(pid);
        unlink(path);
        free(path);
        rmdir(dir);
}
END_TEST

static void fixtures_setup(void)
{
        (void)tls_fixtures();
}

static Suite *suite(void)
{
        Suite *s = suite_create("tls");
        TCase *tc = tcase_create("verify");
        tcase_set_timeout(tc, 30);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, dns_name_verified_with_sni_and_queries);
        tcase_add_test(tc, ip_literal_checked_without_sni);
        tcase_add_test(tc, expired_rejected);
        tcase_add_test(tc, not_yet_valid_rejected);
        tcase_add_test(tc, wrong_host_rejected);
        tcase_add_test(tc, tls_over_tls_outer_rejected);
        tcase_add_test(tc, server_cert_wrong_name_by_dns);
        tcase_add_test(tc, self_signed_rejected);
        tcase_add_test(tc, unknown_ca_rejected);
        tcase_add_test(tc, wildcard_matches_one_label);
        tcase_add_test(tc, system_trust_store_by_default);
        tcase_add_test(tc, capath_directory);
        suite_add_tcase(s, tc);

        tc = tcase_create("pin");
        tcase_set_timeout(tc, 30);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, pin_alone_authenticates);
        tcase_add_test(tc, pin_with_verify_requires_everything);
        tcase_add_test(tc, pin_with_verify_off);
        tcase_add_test(tc, pin_hex_form);
        suite_add_tcase(s, tc);

        tc = tcase_create("transports");
        tcase_set_timeout(tc, 30);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, unix_requires_servername);
        tcase_add_test(tc, abstract_requires_servername);
        tcase_add_test(tc, fd_requires_servername);
        tcase_add_test(tc, user_flow_requires_servername);
        suite_add_tcase(s, tc);

        tc = tcase_create("server");
        tcase_set_timeout(tc, 30);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, mtls_requires_client_certificate);
        tcase_add_test(tc, encrypted_key_passphrase);
        tcase_add_test(tc, alpn_negotiation);
        tcase_add_test(tc, protocol_versions);
        tcase_add_test(tc, tls12_is_the_minimum);
        tcase_add_test(tc, listeners_keep_their_certificates);
        suite_add_tcase(s, tc);

        tc = tcase_create("io");
        tcase_set_timeout(tc, 60);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, half_close_over_tcp);
        tcase_add_test(tc, half_close_shuts_transport_after_close_notify);
        tcase_add_test(tc, eof_without_close_notify_is_truncation);
        tcase_add_test(tc, key_update_tls13);
        tcase_add_test(tc, bulk_tls12);
        tcase_add_test(tc, blocking_write_leaves_nothing_behind);
        tcase_add_test(tc, wrap_socketpair_handshake_on_first_io);
        tcase_add_test(tc, tls_over_tls_read_wants_read);
        tcase_add_test(tc, partial_record_in_handshake_is_not_pending);
        tcase_add_test(tc, tls_over_tls);
        tcase_add_test(tc, no_sigpipe);
        suite_add_tcase(s, tc);

        tc = tcase_create("context");
        tcase_set_timeout(tc, 60);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, context_defaults);
        tcase_add_test(tc, client_handshake_timeout);
        tcase_add_test(tc, listener_serves_while_silent_client_waits);
        suite_add_tcase(s, tc);

        tc = tcase_create("resumption");
        tcase_set_timeout(tc, 120);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, resumption_tcp);
        tcase_add_test(tc, resumption_unix);
        tcase_add_test(tc, resumption_tls12);
        tcase_add_test(tc, resumption_unverified_not_offered);
        tcase_add_test(tc, resumption_checks_pin);
        tcase_add_test(tc, resumption_off);
        tcase_add_test(tc, resumption_with_s_server);
        tcase_add_test(tc, resumed_by_s_client);
        suite_add_tcase(s, tc);

        tc = tcase_create("ciphersuites");
        tcase_set_timeout(tc, 60);
        tcase_add_unchecked_fixture(tc, fixtures_setup, NULL);
        tcase_add_test(tc, ciphersuites_agree);
        tcase_add_test(tc, ciphersuites_wrap_api);
        tcase_add_test(tc, ciphersuites_parse_errors);
        tcase_add_test(tc, ciphersuites_with_s_server);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
