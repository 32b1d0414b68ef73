/* SPDX-License-Identifier: MIT */
/* TLS over any flow: OpenSSL talks to the inner flow through a custom BIO
 * whose read/write call conduit_flow_read/write on it. The inner flow is
 * kept non-blocking whenever it has a descriptor to poll, so every TLS
 * operation only tries once; the generic layer waits outside the lock that
 * serialises OpenSSL calls, which lets one thread read while another
 * writes. -EAGAIN from the inner flow's reads becomes BIO retry, and the
 * inner flow's own wants (a TLS inner flow may want the opposite
 * direction) are reported upward.
 *
 * Writes never make OpenSSL retry: what the inner flow does not take at
 * once waits in the flow's own output buffer (at most about one record:
 * a write stops adding records while it is not empty), flushed at the
 * start and end of every operation. So OpenSSL never holds a half-sent
 * record, a write after -EAGAIN may pass any buffer (the flow contract;
 * OpenSSL alone would insist on the same one), and what OpenSSL sends
 * from inside a read (a KeyUpdate answer, session tickets, alerts) never
 * waits behind application data. */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "resolver/options.h"
#include "tls-private.h"
#include "util.h"

struct tls_flow {
        conduit_flow base; /* base.inner: the transport */
        SSL *ssl;
        pthread_mutex_t lock;
        bool server;
        bool done;           /* handshake complete */
        bool inner_pollable; /* inner has a descriptor: kept non-blocking */
        bool allow_truncation;
        bool chain;          /* the peer's chain is verified (else verify=0 or pin only) */
        bool read_starved;   /* the last SSL_read wanted more bytes */
        bool notify_sent;    /* our close_notify is out */
        int bio_err;         /* the inner flow's error behind a BIO failure */
        int bio_wants;       /* the inner flow's wants behind a BIO read retry */
        int out_wants;       /* ... behind an output buffer the inner flow did not take */
        int out_err;         /* the inner flow's error when flushing it, for the next write */
        unsigned char *obuf; /* bytes OpenSSL wrote that the inner flow has not taken */
        size_t olen, ooff, ocap;
        bool bio_eof;
        char *pins; /* "sha256//B64,..." to match, or NULL */
        char *name; /* the server name checked (client), or NULL */
        char *subject;
        char *alpn;
        conduit_endp *tls_endp; /* options and server name of this layer */
        char *sess_key;         /* client: where its sessions go (NULL: nowhere) */
        SSL_SESSION *sess_held; /* a session from the handshake, until it passed */
};

/* What the last TLS operation of this thread waits for: the reader and the
 * writer of one flow may be different threads, each with its own wait. */
static _Thread_local int last_wants;

static struct tls_flow *tls(conduit_flow *f)
{
        return conduit__container_of(f, struct tls_flow, base);
}

/* ---- session resumption ---------------------------------------------------- */

/* Ex-data slot of a client SSL: its flow, for the new-session callback. */
static int flow_index = -1;
static pthread_once_t flow_index_once = PTHREAD_ONCE_INIT;

static void flow_index_init(void)
{
        flow_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A session to resume later: TLS 1.3 tickets arrive after the handshake
 * (read by SSL_read) and go to the cache at once; a TLS 1.2 session comes
 * within the handshake, before our own checks (pins) passed, and waits in
 * the flow until they did. Called with the flow's lock held. */
int conduit__tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
        struct tls_flow *t = flow_index >= 0 ? SSL_get_ex_data(ssl, flow_index) : NULL;
        if (!t || !t->sess_key || !t->base.ctx)
                return 0;
        if (!t->done) {
                SSL_SESSION_free(t->sess_held);
                t->sess_held = sess;
                return 1;
        }
        return conduit__tls_session_put(t->base.ctx, t->sess_key, sess);
}

/* ---- the BIO over the inner flow ----------------------------------------- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* OpenSSL's error queue is per thread, and an inner TLS flow must start its
 * own calls with it empty: what the outer layer queued (a verification
 * failure about to be sent as an alert) is set aside meanwhile. */
struct saved_errors {
        unsigned long code[8];
        int n;
};

static void errors_save(const struct tls_flow *t, struct saved_errors *se)
{
        se->n = 0;
        if (!conduit__is_tls(t->base.inner))
                return;
        unsigned long e;
        while ((e = ERR_get_error()) != 0)
                if (se->n < 8)
                        se->code[se->n++] = e;
}

static void errors_restore(const struct tls_flow *t, const struct saved_errors *se)
{
        if (!conduit__is_tls(t->base.inner))
                return;
        ERR_clear_error(); /* the inner layer's own are on its flow */
        for (int i = 0; i < se->n; i++)
                ERR_raise(ERR_GET_LIB(se->code[i]), ERR_GET_REASON(se->code[i]));
}

/* Writes the output buffer to the inner flow: 0 when empty, -EAGAIN
 * (out_wants set) or the inner flow's error. Lock held. */
static int flush_out(struct tls_flow *t)
{
        while (t->olen > 0) {
                struct saved_errors se;
                errors_save(t, &se);
                ssize_t n = conduit_flow_write(t->base.inner, t->obuf + t->ooff, t->olen);
                errors_restore(t, &se);
                if (n == -EAGAIN) {
                        t->out_wants = conduit_flow_wants(t->base.inner);
                        return -EAGAIN;
                }
                if (n <= 0)
                        return n < 0 ? (int)n : -EIO;
                t->ooff += (size_t)n;
                t->olen -= (size_t)n;
        }
        t->ooff = 0;
        return 0;
}

static int out_append(struct tls_flow *t, const char *buf, size_t len)
{
        if (t->ooff + t->olen + len > t->ocap) {
                if (t->olen > 0)
                        memmove(t->obuf, t->obuf + t->ooff, t->olen);
                t->ooff = 0;
                if (t->olen + len > t->ocap) {
                        size_t cap = t->ocap ? t->ocap : 4096;
                        while (cap < t->olen + len)
                                cap *= 2;
                        unsigned char *nb = realloc(t->obuf, cap);
                        if (!nb)
                                return -ENOMEM;
                        t->obuf = nb;
                        t->ocap = cap;
                }
        }
        memcpy(t->obuf + t->ooff + t->olen, buf, len);
        t->olen += len;
        return 0;
}

static int bio_write(BIO *b, const char *buf, int len)
{
        struct tls_flow *t = BIO_get_data(b);
        BIO_clear_retry_flags(b);
        /* After our close_notify the transport's write side is shut down,
         * and the peer must ignore anything that follows (RFC 8446 6.1):
         * what OpenSSL still sends (the KeyUpdate a TLS 1.3 peer's request
         * makes it answer from inside SSL_read, an alert) is dropped rather
         * than failing the read that produced it with -EPIPE. */
        if (t->notify_sent)
                return len;
        size_t done = 0;
        if (t->olen == 0) {
                struct saved_errors se;
                errors_save(t, &se);
                ssize_t n = conduit_flow_write(t->base.inner, buf, (size_t)len);
                errors_restore(t, &se);
                if (n < 0 && n != -EAGAIN) {
                        t->bio_err = (int)n;
                        return -1;
                }
                if (n == -EAGAIN)
                        t->out_wants = conduit_flow_wants(t->base.inner);
                else
                        done = (size_t)n;
        }
        /* the rest waits in the output buffer */
        if (done < (size_t)len && out_append(t, buf + done, (size_t)len - done) < 0) {
                t->bio_err = -ENOMEM;
                return -1;
        }
        return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
        struct tls_flow *t = BIO_get_data(b);
        BIO_clear_retry_flags(b);
        if (len <= 0)
                return 0;
        struct saved_errors se;
        errors_save(t, &se);
        ssize_t n = conduit_flow_read(t->base.inner, buf, (size_t)len);
        errors_restore(t, &se);
        if (n > 0)
                return (int)n;
        if (n == 0) {
                t->bio_eof = true;
                return 0;
        }
        if (n == -EAGAIN) {
                t->bio_wants = conduit_flow_wants(t->base.inner);
                BIO_set_retry_read(b);
                return -1;
        }
        t->bio_err = (int)n;
        return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
        struct tls_flow *t = BIO_get_data(b);
        (void)num;
        (void)ptr;
        switch (cmd) {
        case BIO_CTRL_FLUSH: return 1;
        case BIO_CTRL_EOF: return t && t->bio_eof;
        default: return 0;
        }
}

static int bio_create(BIO *b)
{
        BIO_set_init(b, 1);
        return 1;
}

static void bio_init_method(void)
{
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "conduit flow");
        if (!m)
                return;
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
        BIO_meth_set_create(m, bio_create);
        bio_method = m;
}

/* ---- errors ---------------------------------------------------------------- */

/* Makes the inner flow follow this flow's mode when it cannot be polled
 * (a user flow that blocks by itself). */
static void sync_inner(struct tls_flow *t)
{
        if (t->inner_pollable)
                return;
        conduit_flow *in = t->base.inner;
        in->nonblocking = t->base.nonblocking;
        in->timeout[CONDUIT_TIMEOUT_READ] = t->base.timeout[CONDUIT_TIMEOUT_READ];
        in->timeout[CONDUIT_TIMEOUT_WRITE] = t->base.timeout[CONDUIT_TIMEOUT_WRITE];
}

static void begin(struct tls_flow *t)
{
        pthread_mutex_lock(&t->lock);
        sync_inner(t);
        t->bio_wants = 0;
        t->out_wants = 0;
        t->bio_err = 0;
        ERR_clear_error();
}

/* Turns the outcome of an SSL_* call that returned r <= 0 into a conduit
 * error, recording wants and the detail message. Called with the lock. */
static int fail(struct tls_flow *t, int r, const char *what)
{
        conduit_flow *f = &t->base;
        int e = SSL_get_error(t->ssl, r);
        switch (e) {
        case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify */
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
                last_wants = t->bio_wants               ? t->bio_wants
                             : e == SSL_ERROR_WANT_READ ? CONDUIT_WANT_READ
                                                        : CONDUIT_WANT_WRITE;
                return -EAGAIN;
        default: break;
        }
        unsigned long code = ERR_peek_error();
        /* Our verdict on the peer's certificate comes first: the alert that
         * announces it may well fail to reach a peer that hangs up. */
        long vr = t->done || !t->chain ? X509_V_OK : SSL_get_verify_result(t->ssl);
        if (vr != X509_V_OK) {
                ERR_clear_error();
                t->bio_err = 0;
                return conduit_flow_set_error(f, CONDUIT_E_TLS_VERIFY,
                                              "certificate verification failed: %s%s%s",
                                              X509_verify_cert_error_string(vr),
                                              t->name ? " for " : "", t->name ? t->name : "");
        }
        bool eof = t->bio_eof || (e == SSL_ERROR_SSL &&
                                  ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
        bool writing = strcmp(what, "write") == 0;
        /* A read that met the transport's EOF reports that (below), not
         * the failure to send the alert OpenSSL then sends to a peer that
         * may be gone (the inner flow's reads are at EOF for good: any
         * error of this read came from a write). */
        if (t->bio_err && !(eof && strcmp(what, "read") == 0)) {
                int err = t->bio_err;
                t->bio_err = 0;
                ERR_clear_error();
                return conduit_flow_set_error(f, err, "TLS %s: %s", what,
                                              conduit_flow_error_message(f->inner)[0]
                                                      ? conduit_flow_error_message(f->inner)
                                                      : conduit_strerror(err));
        }
        t->bio_err = 0;
        if (eof || (e == SSL_ERROR_SYSCALL && code == 0)) {
                ERR_clear_error();
                if (!t->done)
                        return conduit_flow_set_error(f, -ECONNRESET,
                                                      "TLS %s: the peer closed the connection "
                                                      "during the handshake",
                                                      what);
                /* Truncation is about what we read. A write after the
                 * peer's transport ended (OpenSSL refuses once a read met
                 * the EOF) goes to a peer that is gone: -EPIPE, as for
                 * every flow (docs/flow.md). */
                if (writing)
                        return conduit_flow_set_error(f, -EPIPE,
                                                      "TLS write: the peer closed the connection");
                if (t->allow_truncation)
                        return 0;
                return conduit_flow_set_error(f, CONDUIT_E_TLS_TRUNCATED,
                                              "TLS %s: the peer closed the transport without "
                                              "close_notify (truncation)",
                                              what);
        }
        char buf[256] = "unknown error";
        if (code)
                ERR_error_string_n(code, buf, sizeof(buf));
        const char *reason = code ? ERR_reason_error_string(code) : NULL;
        ERR_clear_error();
        /* a peer that rejected our certificate says so with an alert */
        int err =
                ERR_GET_LIB(code) == ERR_LIB_SSL &&
                                (ERR_GET_REASON(code) == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
                                 ERR_GET_REASON(code) == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
                                 ERR_GET_REASON(code) == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
                                 ERR_GET_REASON(code) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
                                 ERR_GET_REASON(code) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
                        ? CONDUIT_E_TLS_VERIFY
                        : CONDUIT_E_TLS;
        return conduit_flow_set_error(f, err, "TLS %s: %s", what, reason ? reason : buf);
}

/* After an operation: what is left in the output buffer goes out as far
 * as the inner flow takes it now. An operation that ends with -EAGAIN then
 * also waits for what the buffer needs. A write error is reported by the
 * next write; for a read it only means the peer stopped reading. */
static void settle(struct tls_flow *t, ssize_t ret)
{
        /* The inner flow's write may be a TLS flow's operation in this
         * thread (TLS over TLS, or over a user flow that uses one), which
         * sets last_wants to its own: this operation's stays ours. */
        int wants = last_wants;
        int fr = flush_out(t);
        last_wants = wants;
        if (fr < 0 && fr != -EAGAIN && fr != -ENOMEM) {
                t->out_err = fr;
                t->olen = t->ooff = 0;
        }
        if (ret == -EAGAIN && t->olen > 0)
                last_wants |= t->out_wants ? t->out_wants : CONDUIT_WANT_WRITE;
}

/* A write that finds the output buffer still full: -EAGAIN with what it
 * waits for, or the error that flushing it met. Lock held. */
static int write_blocked(struct tls_flow *t, const char *what)
{
        int fr = t->out_err ? t->out_err : flush_out(t);
        if (fr == 0)
                return 0;
        if (fr == -EAGAIN) {
                last_wants = t->out_wants ? t->out_wants : CONDUIT_WANT_WRITE;
                return -EAGAIN;
        }
        t->out_err = fr;
        t->olen = t->ooff = 0;
        const char *why = conduit_flow_error_message(t->base.inner);
        return conduit_flow_set_error(&t->base, fr, "TLS %s: %s", what,
                                      why[0] ? why : conduit_strerror(fr));
}

/* ---- pins ------------------------------------------------------------------ */

/* "sha256//" + base64(SHA-256(DER SubjectPublicKeyInfo)) of the peer. */
static int peer_pin(SSL *ssl, char out[64])
{
        X509 *cert = SSL_get0_peer_certificate(ssl);
        if (!cert)
                return -ENOENT;
        unsigned char *der = NULL;
        int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
        if (len <= 0)
                return -ENOMEM;
        unsigned char md[32];
        unsigned mdlen = 0;
        int ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
        OPENSSL_free(der);
        if (!ok || mdlen != 32)
                return -ENOMEM;
        memcpy(out, "sha256//", 8);
        EVP_EncodeBlock((unsigned char *)out + 8, md, 32);
        return 0;
}

static int check_pin(struct tls_flow *t)
{
        char got[64];
        if (peer_pin(t->ssl, got) < 0)
                return conduit_flow_set_error(&t->base, CONDUIT_E_TLS_VERIFY,
                                              "TLS public key pin: the peer sent no certificate");
        size_t gl = strlen(got);
        for (const char *p = t->pins; p && *p;) {
                const char *comma = strchr(p, ',');
                size_t l = comma ? (size_t)(comma - p) : strlen(p);
                if (l == gl && memcmp(p, got, l) == 0)
                        return 0;
                p += l + (comma ? 1 : 0);
        }
        return conduit_flow_set_error(&t->base, CONDUIT_E_TLS_VERIFY,
                                      "TLS public key pin mismatch: the peer's key is %s", got);
}

/* ---- handshake -------------------------------------------------------------- */

static void log_handshake(struct tls_flow *t)
{
        conduit_ctx *ctx = t->base.ctx;
        if (!ctx || !ctx->log_fn)
                return;
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(t->ssl, &alpn, &alen);
        X509 *cert = SSL_get0_peer_certificate(t->ssl);
        char subject[512] = "none";
        if (cert)
                X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
        conduit__log(ctx, CONDUIT_LOG_DEBUG, "TLS handshake done (%s%s): %s %s, ALPN %.*s, peer %s",
                     t->server ? "server" : "client", SSL_session_reused(t->ssl) ? ", resumed" : "",
                     SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), alen ? (int)alen : 4,
                     alen ? (const char *)alpn : "none", subject);
}

/* With the lock held. */
static int step(struct tls_flow *t)
{
        if (t->done)
                return 0;
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
                r = fail(t, r, "handshake");
                /* what read-ahead holds is no record to read yet: pending()
                 * must not call a loop back before the transport is ready */
                if (r == -EAGAIN)
                        t->read_starved = true;
                return r == 0 ? conduit_flow_set_error(&t->base, -ECONNRESET,
                                                       "TLS handshake: closed by the peer")
                              : r;
        }
        /* A resumed session has no certificate message: the peer's
         * certificate is the session's, and the pin is checked all the same. */
        if (t->pins && (r = check_pin(t)) < 0)
                return r;
        t->done = true;
        t->read_starved = false; /* read-ahead may hold the first records */
        if (t->sess_held) {
                if (!conduit__tls_session_put(t->base.ctx, t->sess_key, t->sess_held))
                        SSL_SESSION_free(t->sess_held);
                t->sess_held = NULL;
        }
        log_handshake(t);
        return 0;
}

int conduit__tls_handshake_step(conduit_flow *f)
{
        struct tls_flow *t = tls(f);
        begin(t);
        int r = write_blocked(t, "handshake");
        if (r == 0 || r == -EAGAIN) {
                int h = step(t);
                if (h != 0 || r == 0)
                        r = h;
        }
        settle(t, r);
        /* done once the last flight is out, too */
        if (r == 0 && t->olen > 0) {
                r = -EAGAIN;
                last_wants = t->out_wants ? t->out_wants : CONDUIT_WANT_WRITE;
        }
        pthread_mutex_unlock(&t->lock);
        if (r == -EAGAIN)
                f->wants = last_wants;
        return r;
}

int conduit__tls_handshake(conduit_flow *f, int64_t deadline)
{
        for (;;) {
                int r = conduit__tls_handshake_step(f);
                if (r != -EAGAIN || f->nonblocking)
                        return r;
                r = conduit__flow_wait(f, f->wants, deadline);
                if (r == -ETIMEDOUT)
                        return conduit_flow_set_error(f, r, "TLS handshake timed out");
                if (r < 0)
                        return r;
        }
}

int conduit_tls_handshake(conduit_flow *f)
{
        if (!conduit__is_tls(f))
                return -EINVAL;
        return conduit__tls_handshake(f, conduit__deadline(f->timeout[CONDUIT_TIMEOUT_HANDSHAKE]));
}

int conduit_tls_set_allow_truncation(conduit_flow *f, bool allow)
{
        if (!conduit__is_tls(f))
                return -EINVAL;
        tls(f)->allow_truncation = allow;
        return 0;
}

/* ---- flow operations ------------------------------------------------------ */

static ssize_t tls_read(conduit_flow *f, void *buf, size_t len)
{
        struct tls_flow *t = tls(f);
        begin(t);
        settle(t, 0);
        ssize_t ret = step(t);
        if (ret == 0) {
                size_t n = 0;
                int r = SSL_read_ex(t->ssl, buf, len, &n);
                t->read_starved = false;
                if (r == 1) {
                        ret = (ssize_t)n;
                } else {
                        ret = fail(t, r, "read");
                        t->read_starved = ret == -EAGAIN;
                }
        }
        settle(t, ret);
        pthread_mutex_unlock(&t->lock);
        return ret;
}

static ssize_t tls_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        struct tls_flow *t = tls(f);
        begin(t);
        ssize_t total = write_blocked(t, "write");
        if (total == 0)
                total = step(t);
        for (int i = 0; total >= 0 && i < iovcnt; i++) {
                size_t off = 0;
                while (off < iov[i].iov_len) {
                        /* One record per SSL_write: between records is
                         * where OpenSSL sends the KeyUpdate a peer asked
                         * for (RFC 8446 4.6.3 wants it before our next
                         * application data). */
                        size_t len = iov[i].iov_len - off, n = 0;
                        if (len > SSL3_RT_MAX_PLAIN_LENGTH)
                                len = SSL3_RT_MAX_PLAIN_LENGTH;
                        int r = SSL_write_ex(t->ssl, (const char *)iov[i].iov_base + off, len, &n);
                        if (r != 1) {
                                int e = fail(t, r, "write");
                                if (total == 0)
                                        total = e == 0 ? -EPIPE : e;
                                goto out;
                        }
                        off += n;
                        total += (ssize_t)n;
                        /* at most one record waits in the output buffer */
                        if (t->olen > 0)
                                goto out;
                }
        }
out:
        settle(t, total);
        /* A blocking write is done when its bytes are on the transport: a
         * record the full transport left in the output buffer is waited
         * out here (without the lock, so a reader goes on), not left to a
         * next operation that may never come while the peer waits for it.
         * A timeout leaves it for the next operation; an error is the
         * next write's. */
        int64_t deadline = conduit__deadline(f->timeout[CONDUIT_TIMEOUT_WRITE]);
        while (total > 0 && !f->nonblocking && t->inner_pollable && t->olen > 0) {
                int w = t->out_wants ? t->out_wants : CONDUIT_WANT_WRITE;
                pthread_mutex_unlock(&t->lock);
                int r = conduit__flow_wait(f->inner, w, deadline);
                pthread_mutex_lock(&t->lock);
                if (r < 0)
                        break;
                int fr = flush_out(t);
                if (fr < 0 && fr != -EAGAIN) {
                        t->out_err = fr;
                        t->olen = t->ooff = 0;
                }
        }
        pthread_mutex_unlock(&t->lock);
        return total;
}

static int tls_shutdown(conduit_flow *f, int how)
{
        struct tls_flow *t = tls(f);
        if (how == CONDUIT_SHUT_RD)
                return conduit_flow_shutdown(f->inner, CONDUIT_SHUT_RD);
        begin(t);
        int r = 0;
        /* close_notify after a handshake (a half-done one is abandoned),
         * behind what the output buffer holds; then the buffer must be
         * out before the transport's write side is shut */
        if (t->done && !t->notify_sent) {
                int s = SSL_shutdown(t->ssl);
                if (s >= 0)
                        t->notify_sent = true;
                else if ((r = fail(t, s, "shutdown")) == 0)
                        t->notify_sent = true; /* the peer closed first: nothing to add */
        }
        if (r == 0)
                r = write_blocked(t, "shutdown");
        pthread_mutex_unlock(&t->lock);
        if (r < 0)
                return r;
        /* then the transport's own half-close */
        return conduit_flow_shutdown(f->inner, CONDUIT_SHUT_WR);
}

static int tls_wants(conduit_flow *f)
{
        (void)f;
        return last_wants;
}

static size_t tls_pending(conduit_flow *f)
{
        struct tls_flow *t = tls(f);
        pthread_mutex_lock(&t->lock);
        size_t n = (size_t)SSL_pending(t->ssl);
        /* read-ahead may hold whole records not yet decrypted: they count,
         * unless the last read already found them incomplete */
        if (n == 0 && !t->read_starved &&
            (SSL_has_pending(t->ssl) || conduit_flow_pending(f->inner) > 0))
                n = 1;
        pthread_mutex_unlock(&t->lock);
        return n;
}

static int tls_get_fd(conduit_flow *f, int want)
{
        return conduit_flow_poll_fd(f->inner, want);
}

static int peer_endp(struct tls_flow *t, bool local, conduit_endp **ret)
{
        const conduit_endp *in =
                local ? conduit_flow_local(t->base.inner) : conduit_flow_peer(t->base.inner);
        if (!in)
                return -ENOPROTOOPT;
        conduit_endp *e = conduit__endp_new(CONDUIT_ENDP_TLS);
        if (!e || conduit_endp_copy(in, &e->inner) < 0)
                goto nomem;
        /* A client's peer carries the options it connects with; a server's
         * own (cert, key, cafile) mean something else to a client, as the
         * listener's endp says too: its peer has none. */
        if (!local && !t->server && t->tls_endp) {
                bool ok = true;
                for (int o = CONDUIT__OPT_FIRST_TLS; o < CONDUIT__OPT_COUNT; o++)
                        e->opt[o] = conduit__strdup_null(t->tls_endp->opt[o], &ok);
                if (!ok)
                        goto nomem;
        }
        *ret = e;
        return 0;
nomem:
        conduit_endp_free(e);
        return -ENOMEM;
}

static int tls_query(conduit_flow *f, int what, void *ret)
{
        struct tls_flow *t = tls(f);
        const char **s = ret;
        switch (what) {
        case CONDUIT_QUERY_FD: *(int *)ret = -1; return 0;
        case CONDUIT_QUERY_PEER_ENDP: return peer_endp(t, false, ret);
        case CONDUIT_QUERY_LOCAL_ENDP: return peer_endp(t, true, ret);
        case CONDUIT_QUERY_TLS_SSL: *(void **)ret = t->ssl; return 0;
        default: break;
        }
        if ((what < CONDUIT_QUERY_TLS_VERSION || what > CONDUIT_QUERY_TLS_SERVERNAME) &&
            what != CONDUIT_QUERY_TLS_RESUMED)
                return -ENOPROTOOPT;
        if (!t->done)
                return conduit_flow_set_error(f, -ENOTCONN, "TLS handshake not done");
        switch (what) {
        case CONDUIT_QUERY_TLS_VERSION: *s = SSL_get_version(t->ssl); return 0;
        case CONDUIT_QUERY_TLS_CIPHER: *s = SSL_get_cipher_name(t->ssl); return 0;
        case CONDUIT_QUERY_TLS_ALPN: {
                if (!t->alpn) {
                        const unsigned char *a = NULL;
                        unsigned al = 0;
                        SSL_get0_alpn_selected(t->ssl, &a, &al);
                        if (!al) {
                                *s = NULL;
                                return 0;
                        }
                        if (!(t->alpn = strndup((const char *)a, al)))
                                return -ENOMEM;
                }
                *s = t->alpn;
                return 0;
        }
        case CONDUIT_QUERY_TLS_PEER_SUBJECT: {
                X509 *cert = SSL_get0_peer_certificate(t->ssl);
                if (!cert) {
                        *s = NULL;
                        return 0;
                }
                if (!t->subject) {
                        BIO *mem = BIO_new(BIO_s_mem());
                        if (!mem)
                                return -ENOMEM;
                        X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
                        char *data = NULL;
                        long n = BIO_get_mem_data(mem, &data);
                        t->subject = n >= 0 ? strndup(data, (size_t)n) : NULL;
                        BIO_free(mem);
                        if (!t->subject)
                                return -ENOMEM;
                }
                *s = t->subject;
                return 0;
        }
        case CONDUIT_QUERY_TLS_VERIFY_RESULT:
                *(long *)ret = SSL_get_verify_result(t->ssl);
                return 0;
        case CONDUIT_QUERY_TLS_SERVERNAME:
                /* the SNI sent or received; none for an IP literal */
                *s = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
                return 0;
        case CONDUIT_QUERY_TLS_RESUMED: *(int *)ret = SSL_session_reused(t->ssl); return 0;
        }
        return -ENOPROTOOPT;
}

static void tls_destroy(conduit_flow *f)
{
        struct tls_flow *t = tls(f);
        /* Freeing a client's SSL without our close_notify makes OpenSSL
         * mark its session not resumable. An authenticated connection that
         * is merely dropped leaves its sessions good (OpenSSL itself drops
         * them on fatal alerts, sent or received). */
        if (!t->server && t->done)
                SSL_set_shutdown(t->ssl, SSL_get_shutdown(t->ssl) | SSL_SENT_SHUTDOWN);
        SSL_free(t->ssl);
        free(t->obuf);
        pthread_mutex_destroy(&t->lock);
        free(t->pins);
        free(t->name);
        free(t->subject);
        free(t->alpn);
        conduit_endp_free(t->tls_endp);
        free(t->sess_key);
        SSL_SESSION_free(t->sess_held);
}

static const conduit_flow_ops tls_ops = {
        .name = "tls",
        .read = tls_read,
        .writev = tls_writev,
        .shutdown = tls_shutdown,
        .wants = tls_wants,
        .pending = tls_pending,
        .get_fd = tls_get_fd,
        .query = tls_query,
        .destroy = tls_destroy,
};

bool conduit__is_tls(const conduit_flow *f)
{
        return f && f->ops == &tls_ops;
}

/* ---- construction --------------------------------------------------------- */

static bool is_ip_literal(const char *s)
{
        unsigned char buf[16];
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The name a client checks the certificate against: servername=, else the
 * TCP host of the transport (a name, or an address literal). */
static const char *check_name(const struct conduit__tls_config *c, const conduit_endp *transport)
{
        if (c->opt[CONDUIT__OPT_SERVERNAME])
                return c->opt[CONDUIT__OPT_SERVERNAME];
        if (transport && transport->kind == CONDUIT_ENDP_TCP && transport->host)
                return transport->host;
        return NULL;
}

int conduit__tls_wrap(conduit_ctx *ctx, conduit_flow *inner, const conduit_endp *tls_endp,
                      bool server, conduit_flow **ret)
{
        struct conduit__tls_config c;
        char err[512] = "";
        conduit__tls_config(ctx, tls_endp, server, &c);
        const conduit_endp *transport = tls_endp ? conduit__endp_transport(tls_endp->inner) : NULL;
        if (!transport)
                transport = conduit__endp_transport(conduit_flow_peer(inner));
        const char *name = server ? NULL : check_name(&c, transport);
        bool chain = c.verify == 1 || (c.verify == -1 && !c.opt[CONDUIT__OPT_PIN]);
        if (!server && chain && !name)
                return conduit__set_error(-EINVAL,
                                          "TLS over %s has no host name to verify: give "
                                          "servername=, pin= or verify=0",
                                          transport ? conduit_endp_kind_name(transport->kind)
                                                    : "this flow");
        pthread_once(&bio_once, bio_init_method);
        pthread_once(&flow_index_once, flow_index_init);
        if (!bio_method || flow_index < 0)
                return conduit__set_error(-ENOMEM, "cannot create the TLS BIO method");
        SSL_CTX *sc = conduit__tls_sslctx(ctx, &c, err, sizeof(err));
        if (!sc)
                return conduit__set_error(CONDUIT_E_TLS, "%s", err);
        struct tls_flow *t = calloc(1, sizeof(*t));
        SSL *ssl = SSL_new(sc);
        BIO *bio = BIO_new(bio_method);
        SSL_CTX_free(sc);
        if (!t || !ssl || !bio)
                goto nomem;
        t->ssl = ssl;
        BIO_set_data(bio, t);
        SSL_set_bio(ssl, bio, bio);
        bio = NULL;
        pthread_mutex_init(&t->lock, NULL);
        t->server = server;
        t->chain =
                server ? (c.opt[CONDUIT__OPT_CAFILE] || c.opt[CONDUIT__OPT_CAPATH]) && c.verify != 0
                       : chain;
        bool ok = true;
        t->pins = conduit__strdup_null(c.opt[CONDUIT__OPT_PIN], &ok);
        t->name = conduit__strdup_null(name, &ok);
        if (!ok || (tls_endp && conduit_endp_copy(tls_endp, &t->tls_endp) < 0))
                goto nomem;
        if (server) {
                SSL_set_accept_state(ssl);
        } else {
                SSL_set_connect_state(ssl);
                bool ip = name && is_ip_literal(name);
                if (name && !ip && SSL_set_tlsext_host_name(ssl, name) != 1)
                        goto nomem;
                if (name && chain) {
                        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
                        int r = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
                                   : X509_VERIFY_PARAM_set1_host(vp, name, 0);
                        if (r != 1)
                                goto nomem;
                }
                /* a session from an earlier connection to the same peer
                 * with the same settings (docs/tls.md: session resumption) */
                if (SSL_set_ex_data(ssl, flow_index, t) != 1)
                        goto nomem;
                t->sess_key = conduit__tls_session_key(&c, name, conduit_flow_peer(inner));
                SSL_SESSION *sess = t->sess_key ? conduit__tls_session_get(ctx, t->sess_key) : NULL;
                if (sess) {
                        int r = SSL_set_session(ssl, sess);
                        SSL_SESSION_free(sess);
                        if (r != 1)
                                goto nomem;
                }
                if (c.opt[CONDUIT__OPT_ALPN]) {
                        unsigned len = 0;
                        unsigned char *w = conduit__tls_alpn_wire(c.opt[CONDUIT__OPT_ALPN], &len);
                        if (!w)
                                goto nomem;
                        int r = SSL_set_alpn_protos(ssl, w, len);
                        free(w);
                        if (r != 0)
                                goto nomem;
                }
        }
        conduit__flow_init(&t->base, &tls_ops, ctx);
        t->base.inner = inner;
        /* The TLS flow takes over inner's mode and deadlines; inner itself
         * only ever tries once when it can be polled. */
        t->base.nonblocking = inner->nonblocking;
        for (int i = 0; i < CONDUIT__TIMEOUT_COUNT; i++)
                if (i != CONDUIT_TIMEOUT_HANDSHAKE)
                        t->base.timeout[i] = inner->timeout[i];
        /* TLS writes whole records: Nagle's algorithm only delays the
         * small flights of the handshake (40 ms a round with delayed ACKs,
         * more when TLS runs in TLS). nodelay=0 on the URI keeps it. */
        if (!transport || !transport->opt[CONDUIT__OPT_NODELAY]) {
                int fd = conduit__flow_transport_fd(inner), domain = 0, one = 1;
                socklen_t dl = sizeof(domain);
                if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 &&
                    (domain == AF_INET || domain == AF_INET6))
                        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        t->inner_pollable = conduit_flow_poll_fd(inner, CONDUIT_WANT_READ) >= 0 &&
                            conduit_flow_poll_fd(inner, CONDUIT_WANT_WRITE) >= 0;
        if (t->inner_pollable)
                inner->nonblocking = true;
        *ret = &t->base;
        return 0;
nomem:
        BIO_free(bio);
        SSL_free(ssl);
        if (t) {
                free(t->pins);
                free(t->name);
                free(t->sess_key);
                conduit_endp_free(t->tls_endp);
                free(t);
        }
        return conduit__set_error(-ENOMEM, "out of memory setting up TLS");
}

/* Parses "k=v&k=v" TLS options into a TLS endp (inner unset). */
static int parse_options(const char *options, conduit_endp **ret)
{
        conduit_endp *e = conduit__endp_new(CONDUIT_ENDP_TLS);
        if (!e)
                return -ENOMEM;
        char err[512];
        for (const char *p = options ? options : ""; *p;) {
                const char *amp = strchr(p, '&');
                size_t l = amp ? (size_t)(amp - p) : strlen(p);
                const char *eq = memchr(p, '=', l);
                size_t kl = eq ? (size_t)(eq - p) : l;
                enum conduit__opt o;
                int r = 0;
                if (!conduit__opt_lookup(p, kl, &o) || !conduit__opt_is_tls(o)) {
                        r = conduit__set_error(CONDUIT_E_OPTION, "'%.*s' is not a TLS option",
                                               (int)kl, p);
                } else if (e->opt[o]) {
                        r = conduit__set_error(CONDUIT_E_URI, "option '%.*s' given twice", (int)kl,
                                               p);
                } else {
                        char *v = eq ? strndup(eq + 1, l - kl - 1) : NULL;
                        if (eq && !v)
                                r = -ENOMEM;
                        else if ((r = conduit__opt_canon(o, v, v ? strlen(v) : 0, &e->opt[o], err,
                                                         sizeof(err))) < 0)
                                conduit__set_error(r, "%.*s: %s", (int)kl, p, err);
                        free(v);
                }
                if (r < 0) {
                        conduit_endp_free(e);
                        return r;
                }
                p += l + (amp ? 1 : 0);
        }
        *ret = e;
        return 0;
}

static int wrap_public(conduit_ctx *ctx, conduit_flow *inner, const char *options, bool server,
                       conduit_flow **ret)
{
        if (!inner || !ret)
                return conduit__set_error(-EINVAL, "no flow");
        conduit_endp *e = NULL;
        int r = parse_options(options, &e);
        if (r < 0)
                return r;
        conduit_ctx *c = conduit__ctx_get(ctx);
        if (!c) {
                conduit_endp_free(e);
                return -ENOMEM;
        }
        const conduit_endp *peer = conduit_flow_peer(inner);
        if (peer && conduit_endp_copy(peer, &e->inner) < 0)
                r = -ENOMEM;
        if (r == 0)
                r = conduit__tls_wrap(c, inner, e, server, ret);
        conduit_endp_free(e);
        conduit_ctx_free(c);
        return r;
}

int conduit_tls_client(conduit_ctx *ctx, conduit_flow *inner, const char *options,
                       conduit_flow **ret)
{
        return wrap_public(ctx, inner, options, false, ret);
}

int conduit_tls_server(conduit_ctx *ctx, conduit_flow *inner, const char *options,
                       conduit_flow **ret)
{
        return wrap_public(ctx, inner, options, true, ret);
}
