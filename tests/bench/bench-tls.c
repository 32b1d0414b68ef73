/* SPDX-License-Identifier: MIT */
/* conduit-bench, group "tls": libconduit TLS flows against plain OpenSSL on
 * the same kind of socket, with the same throwaway certificate (EC P-256,
 * self-signed, made at run time), the same TLS 1.3 suite and the same
 * verification (the client checks the chain against the certificate and
 * the name "localhost"):
 *  - bulk throughput, TLS 1.3 with AES-128-GCM and with ChaCha20-Poly1305,
 *    over TCP loopback and Unix sockets, writes of 16 KiB and 1 MiB: one
 *    writer thread, the reader in the main thread;
 *  - handshakes per second over TCP loopback (connect, full handshake, one
 *    byte from the server, close; client and server in two threads), and
 *    libconduit's resumed handshakes against its full ones. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"
#include "conduit/conduit.h"

/* ---- a watchdog: a stuck peer ends the run instead of hanging it ------------- */

static atomic_bool wd_stop;
static _Atomic double wd_deadline; /* bench_now() seconds, 0: disarmed */

static void *wd_main(void *arg)
{
        (void)arg;
        while (!atomic_load(&wd_stop)) {
                double d = atomic_load(&wd_deadline);
                if (d > 0 && bench_now() > d)
                        bench_die("tls: a case took too long (a peer stuck?)", -ETIMEDOUT);
                usleep(100000);
        }
        return NULL;
}

static void arm(double seconds)
{
        atomic_store(&wd_deadline, bench_now() + seconds);
}

static void disarm(void)
{
        atomic_store(&wd_deadline, 0.0);
}

/* ---- the setup --------------------------------------------------------------- */

struct env {
        const struct bench_opts *o;
        char cert[512], key[512], sock[512];
        conduit_ctx *cctx, *sctx; /* client and server contexts (sessions apart) */
};

static void ssl_die(const char *what)
{
        unsigned long e = ERR_get_error();
        char reason[256] = "";
        if (e)
                ERR_error_string_n(e, reason, sizeof(reason));
        fprintf(stderr, "conduit-bench: %s: %s\n", what, e ? reason : "(no OpenSSL error)");
        exit(1);
}

/* What a program using OpenSSL directly sets up: TLS 1.3 with one suite;
 * the server with the certificate, the client verifying it. */
static SSL_CTX *raw_ctx(const struct env *env, bool server, const char *suite)
{
        SSL_CTX *sc = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (!sc || SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) != 1 ||
            SSL_CTX_set_ciphersuites(sc, suite) != 1)
                ssl_die("raw SSL_CTX");
        if (server) {
                if (SSL_CTX_use_certificate_chain_file(sc, env->cert) != 1 ||
                    SSL_CTX_use_PrivateKey_file(sc, env->key, SSL_FILETYPE_PEM) != 1)
                        ssl_die("raw server certificate");
        } else {
                if (SSL_CTX_load_verify_locations(sc, env->cert, NULL) != 1)
                        ssl_die("raw client CA");
                SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
        }
        return sc;
}

static SSL *raw_ssl(SSL_CTX *sc, int fd, bool server)
{
        SSL *ssl = SSL_new(sc);
        if (!ssl || SSL_set_fd(ssl, fd) != 1)
                ssl_die("SSL_new");
        if (!server && (SSL_set_tlsext_host_name(ssl, "localhost") != 1 ||
                        SSL_set1_host(ssl, "localhost") != 1))
                ssl_die("SSL_set1_host");
        return ssl;
}

/* A loopback TCP listener on an ephemeral port. */
static int tcp_listen(struct sockaddr_in *sin)
{
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        *sin = (struct sockaddr_in){ .sin_family = AF_INET,
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(*sin);
        if (l < 0 || bind(l, (struct sockaddr *)sin, len) < 0 || listen(l, 64) < 0 ||
            getsockname(l, (struct sockaddr *)sin, &len) < 0)
                bench_die("raw listen", -errno);
        return l;
}

/* A connected pair of sockets of the kind libconduit uses for the URI. */
static void raw_socket_pair(bool unix_, int fds[2])
{
        if (unix_) {
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                        bench_die("socketpair", -errno);
                return;
        }
        struct sockaddr_in sin;
        int l = tcp_listen(&sin);
        fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&sin, sizeof(sin)) < 0)
                bench_die("raw connect", -errno);
        fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (fds[1] < 0)
                bench_die("raw accept", -errno);
        close(l);
}

/* ---- one connected TLS pair, either kind --------------------------------------- */

struct tpair {
        conduit_flow *c, *s; /* libconduit */
        SSL *cs, *ss;        /* raw OpenSSL */
        int fds[2];
};

struct accept_arg {
        conduit_listener *l;
        conduit_flow *f;
        SSL *ssl;
        int r;
};

static void *accept_main(void *arg)
{
        struct accept_arg *a = arg;
        if (a->l)
                a->r = conduit_listener_accept(a->l, &a->f);
        else
                a->r = SSL_accept(a->ssl) == 1 ? 0 : -EPROTO;
        return NULL;
}

static void check_suite(const char *got, const char *want, const char *who)
{
        if (!got || strcmp(got, want) != 0) {
                fprintf(stderr, "conduit-bench: %s negotiated %s, not %s\n", who,
                        got ? got : "(nothing)", want);
                exit(1);
        }
}

static void conduit_pair(struct env *env, bool unix_, const char *suite, struct tpair *p)
{
        char uri[2048];
        if (unix_)
                snprintf(uri, sizeof(uri),
                         "tls+unix://%s?cert=%s&key=%s&min_version=1.3&ciphersuites=%s", env->sock,
                         env->cert, env->key, suite);
        else
                snprintf(uri, sizeof(uri),
                         "tls+tcp://127.0.0.1:0?cert=%s&key=%s&min_version=1.3&ciphersuites=%s",
                         env->cert, env->key, suite);
        conduit_listener *l = NULL;
        int r = conduit_listen(env->sctx, uri, &l);
        if (r < 0)
                bench_die("tls listen", r);
        const conduit_endp *bound = conduit_endp_get_inner(conduit_listener_endp(l));
        char *b = NULL;
        if (!bound || (r = conduit_endp_format(bound, &b)) < 0)
                bench_die("format", r < 0 ? r : -EINVAL);
        snprintf(uri, sizeof(uri),
                 "tls+%s?cafile=%s&servername=localhost&min_version=1.3&ciphersuites=%s", b,
                 env->cert, suite);
        free(b);
        struct accept_arg a = { l, NULL, NULL, 0 };
        pthread_t t;
        arm(20);
        pthread_create(&t, NULL, accept_main, &a);
        if ((r = conduit_connect(env->cctx, uri, &p->c)) < 0)
                bench_die("tls connect", r);
        pthread_join(t, NULL);
        disarm();
        if (a.r < 0)
                bench_die("tls accept", a.r);
        p->s = a.f;
        conduit_listener_free(l);
        const char *got = NULL;
        conduit_flow_query(p->c, CONDUIT_QUERY_TLS_CIPHER, &got);
        check_suite(got, suite, "libconduit");
}

static void openssl_pair(struct env *env, bool unix_, const char *suite, struct tpair *p)
{
        raw_socket_pair(unix_, p->fds);
        SSL_CTX *cc = raw_ctx(env, false, suite), *sc = raw_ctx(env, true, suite);
        p->cs = raw_ssl(cc, p->fds[0], false);
        p->ss = raw_ssl(sc, p->fds[1], true);
        SSL_CTX_free(cc);
        SSL_CTX_free(sc);
        struct accept_arg a = { NULL, NULL, p->ss, 0 };
        pthread_t t;
        arm(20);
        pthread_create(&t, NULL, accept_main, &a);
        if (SSL_connect(p->cs) != 1)
                ssl_die("raw SSL_connect");
        pthread_join(t, NULL);
        disarm();
        if (a.r < 0)
                ssl_die("raw SSL_accept");
        check_suite(SSL_get_cipher_name(p->cs), suite, "openssl");
}

static void tpair_close(struct tpair *p)
{
        if (p->c) {
                conduit_flow_free(p->c);
                conduit_flow_free(p->s);
        } else {
                SSL_free(p->cs);
                SSL_free(p->ss);
                close(p->fds[0]);
                close(p->fds[1]);
        }
}

/* ---- bulk throughput ----------------------------------------------------------- */

static ssize_t pair_write(struct tpair *p, const void *buf, size_t n)
{
        if (p->c)
                return conduit_flow_write(p->c, buf, n);
        size_t w = 0;
        return SSL_write_ex(p->cs, buf, n, &w) == 1 ? (ssize_t)w : -1;
}

static ssize_t pair_read(struct tpair *p, void *buf, size_t n)
{
        if (p->c)
                return conduit_flow_read(p->s, buf, n);
        size_t r = 0;
        return SSL_read_ex(p->ss, buf, n, &r) == 1 ? (ssize_t)r : -1;
}

struct writer {
        struct tpair *p;
        size_t chunk, total;
        unsigned char *buf;
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        for (size_t done = 0; done < w->total;) {
                size_t n = w->total - done < w->chunk ? w->total - done : w->chunk;
                ssize_t r = pair_write(w->p, w->buf, n);
                if (r <= 0) {
                        fprintf(stderr, "conduit-bench: tls write failed: %zd\n", r);
                        exit(1);
                }
                done += (size_t)r;
        }
        return NULL;
}

/* Bytes per second moving total bytes in writes (and reads) of chunk. */
static double throughput(struct tpair *p, size_t chunk, size_t total)
{
        unsigned char *wbuf = malloc(chunk), *rbuf = malloc(chunk);
        if (!wbuf || !rbuf)
                bench_die("memory", -ENOMEM);
        memset(wbuf, 0x5a, chunk);
        struct writer w = { p, chunk, total, wbuf };
        pthread_t t;
        arm(60);
        double t0 = bench_now();
        pthread_create(&t, NULL, writer_main, &w);
        for (size_t got = 0; got < total;) {
                ssize_t r = pair_read(p, rbuf, chunk);
                if (r <= 0) {
                        fprintf(stderr, "conduit-bench: tls read failed: %zd\n", r);
                        exit(1);
                }
                got += (size_t)r;
        }
        pthread_join(t, NULL);
        double dt = bench_now() - t0;
        disarm();
        free(wbuf);
        free(rbuf);
        return (double)total / dt;
}

/* ---- handshakes ------------------------------------------------------------------ */

/* raw OpenSSL full and resumed, libconduit full and resumed */
enum hs_kind { HS_RAW, HS_RAW_RESUMED, HS_FULL, HS_RESUMED };

struct hs_server {
        int n;
        conduit_listener *l; /* libconduit */
        int lfd;             /* raw */
        SSL_CTX *sc;
};

/* Accepts n connections, handshakes, sends one byte, closes. */
static void *hs_server_main(void *arg)
{
        struct hs_server *s = arg;
        for (int i = 0; i < s->n; i++) {
                if (s->l) {
                        conduit_flow *f = NULL;
                        int r = conduit_listener_accept(s->l, &f);
                        if (r < 0)
                                bench_die("tls accept", r);
                        if (conduit_flow_write(f, "x", 1) != 1)
                                bench_die("tls server write", -EIO);
                        conduit_flow_free(f);
                } else {
                        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (fd < 0)
                                bench_die("raw accept", -errno);
                        SSL *ssl = raw_ssl(s->sc, fd, true);
                        size_t w = 0;
                        if (SSL_accept(ssl) != 1 || SSL_write_ex(ssl, "x", 1, &w) != 1)
                                ssl_die("raw server handshake");
                        SSL_free(ssl);
                        close(fd);
                }
        }
        return NULL;
}

/* Handshakes per second: n times connect, handshake, read the server's
 * byte (a TLS 1.3 client gets its session tickets on the way), close. */
static double handshakes(struct env *env, enum hs_kind kind, const char *suite, int n)
{
        struct hs_server s = { n, NULL, -1, NULL };
        SSL_CTX *cc = NULL;
        struct sockaddr_in sin;
        char uri[2048];
        bool raw = kind == HS_RAW || kind == HS_RAW_RESUMED;
        bool resume = kind == HS_RAW_RESUMED || kind == HS_RESUMED;
        SSL_SESSION *sess = NULL;
        if (raw) {
                s.lfd = tcp_listen(&sin);
                s.sc = raw_ctx(env, true, suite);
                cc = raw_ctx(env, false, suite);
        } else {
                snprintf(uri, sizeof(uri),
                         "tls+tcp://127.0.0.1:0?cert=%s&key=%s&min_version=1.3&ciphersuites=%s",
                         env->cert, env->key, suite);
                int r = conduit_listen(env->sctx, uri, &s.l);
                if (r < 0)
                        bench_die("tls listen", r);
                int port =
                        conduit_endp_get_port(conduit_endp_get_inner(conduit_listener_endp(s.l)));
                snprintf(uri, sizeof(uri),
                         "tls+tcp://127.0.0.1:%d?cafile=%s&servername=localhost&min_version=1.3&"
                         "ciphersuites=%s%s",
                         port, env->cert, suite, kind == HS_FULL ? "&session_cache=0" : "");
        }
        /* one connection first: sessions to resume, and SSL_CTXs built */
        bool warm = resume;
        s.n += warm;
        pthread_t t;
        arm(60);
        pthread_create(&t, NULL, hs_server_main, &s);
        double t0 = bench_now();
        for (int i = 0; i < n + warm; i++) {
                if (i == 1 && warm)
                        t0 = bench_now();
                char b;
                if (raw) {
                        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
                                bench_die("raw connect", -errno);
                        SSL *ssl = raw_ssl(cc, fd, false);
                        if (sess && SSL_set_session(ssl, sess) != 1)
                                ssl_die("SSL_set_session");
                        size_t got = 0;
                        if (SSL_connect(ssl) != 1 || SSL_read_ex(ssl, &b, 1, &got) != 1)
                                ssl_die("raw client handshake");
                        if (SSL_session_reused(ssl) != (resume && i > 0))
                                bench_die("raw resumption", -EPROTO);
                        if (resume) {
                                /* the newest ticket (read with the byte);
                                 * freed without close_notify, a session
                                 * would be marked not resumable */
                                SSL_SESSION_free(sess);
                                sess = SSL_get1_session(ssl);
                                SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN);
                        }
                        SSL_free(ssl);
                        close(fd);
                        continue;
                }
                conduit_flow *f = NULL;
                int r = conduit_connect(env->cctx, uri, &f);
                if (r < 0)
                        bench_die("tls connect", r);
                if (conduit_flow_read(f, &b, 1) != 1)
                        bench_die("tls client read", -EIO);
                int resumed = -1;
                if ((r = conduit_flow_query(f, CONDUIT_QUERY_TLS_RESUMED, &resumed)) < 0)
                        bench_die("CONDUIT_QUERY_TLS_RESUMED", r);
                if (resumed != (resume && i > 0)) {
                        fprintf(stderr, "conduit-bench: %s handshake %d %s\n",
                                resume ? "resumed" : "full", i,
                                resumed ? "resumed" : "did not resume");
                        bench_die("tls resumption", -EPROTO);
                }
                conduit_flow_free(f);
        }
        double dt = bench_now() - t0;
        pthread_join(t, NULL);
        disarm();
        if (raw) {
                SSL_SESSION_free(sess);
                SSL_CTX_free(s.sc);
                SSL_CTX_free(cc);
                close(s.lfd);
        } else {
                conduit_listener_free(s.l);
        }
        return n / dt;
}

/* ---- the group ------------------------------------------------------------------- */

static conduit_ctx *new_ctx(void)
{
        conduit_ctx *c = NULL;
        int r = conduit_ctx_new(&c);
        if (r < 0)
                bench_die("conduit_ctx_new", r);
        return c;
}

void bench_tls(const struct bench_opts *o)
{
        struct env env = { .o = o };
        snprintf(env.cert, sizeof(env.cert), "%s/tls-cert.pem", o->dir);
        snprintf(env.key, sizeof(env.key), "%s/tls-key.pem", o->dir);
        snprintf(env.sock, sizeof(env.sock), "%s/tls.sock", o->dir);
        bench_make_cert(env.cert, env.key, false);
        env.cctx = new_ctx();
        env.sctx = new_ctx();
        atomic_store(&wd_stop, false);
        disarm();
        pthread_t wd;
        pthread_create(&wd, NULL, wd_main, NULL);

        static const struct {
                const char *name, *suite;
        } suites[] = {
                { "aes128gcm", "TLS_AES_128_GCM_SHA256" },
                { "chacha20", "TLS_CHACHA20_POLY1305_SHA256" },
        };
        static const size_t sizes[] = { 16384, 1048576 };
        size_t total = o->quick ? 64u << 20 : 512u << 20;
        int reps = o->reps;
        double b[99], c[99];
        char name[64];
        for (size_t s = 0; s < 2; s++) {
                for (int u = 0; u < 2; u++) {
                        for (size_t k = 0; k < 2; k++) {
                                struct tpair cp = { 0 }, rp = { 0 };
                                conduit_pair(&env, u, suites[s].suite, &cp);
                                openssl_pair(&env, u, suites[s].suite, &rp);
                                for (int i = 0; i < reps; i++) {
                                        b[i] = throughput(&rp, sizes[k], total) / 1048576;
                                        c[i] = throughput(&cp, sizes[k], total) / 1048576;
                                }
                                tpair_close(&cp);
                                tpair_close(&rp);
                                snprintf(name, sizeof(name), "tls13 %s %s %zuK", suites[s].name,
                                         u ? "unix" : "tcp", sizes[k] / 1024);
                                bench_record(name, "openssl", "MiB/s", true, b, c, reps);
                        }
                }
        }

        const char *suite = suites[0].suite;
        int n = o->quick ? 200 : 800;
        for (int i = 0; i < reps; i++) {
                b[i] = handshakes(&env, HS_RAW, suite, n);
                c[i] = handshakes(&env, HS_FULL, suite, n);
        }
        bench_record("tls13 handshake full tcp", "openssl", "hs/s", true, b, c, reps);
        for (int i = 0; i < reps; i++) {
                b[i] = handshakes(&env, HS_RAW_RESUMED, suite, n);
                c[i] = handshakes(&env, HS_RESUMED, suite, n);
        }
        bench_record("tls13 handshake resumed tcp", "openssl", "hs/s", true, b, c, reps);
        for (int i = 0; i < reps; i++) {
                b[i] = handshakes(&env, HS_FULL, suite, n);
                c[i] = handshakes(&env, HS_RESUMED, suite, n);
        }
        bench_record("tls13 resumed vs full tcp", "full", "hs/s", true, b, c, reps);
        /* the same with an RSA-2048 server key: a full handshake signs
         * with it, a resumed one does not */
        struct env rsa = env;
        snprintf(rsa.cert, sizeof(rsa.cert), "%s/tls-rsa-cert.pem", o->dir);
        snprintf(rsa.key, sizeof(rsa.key), "%s/tls-rsa-key.pem", o->dir);
        bench_make_cert(rsa.cert, rsa.key, true);
        for (int i = 0; i < reps; i++) {
                b[i] = handshakes(&rsa, HS_FULL, suite, n);
                c[i] = handshakes(&rsa, HS_RESUMED, suite, n);
        }
        bench_record("tls13 resumed vs full tcp rsa2048", "full", "hs/s", true, b, c, reps);

        atomic_store(&wd_stop, true);
        pthread_join(wd, NULL);
        conduit_ctx_free(env.cctx);
        conduit_ctx_free(env.sctx);
}
