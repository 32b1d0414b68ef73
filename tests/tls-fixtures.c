/* SPDX-License-Identifier: MIT */
/* Throwaway CA and certificates for the TLS suite (see tls-fixtures.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "tls-fixtures.h"

#define DAY (24L * 60 * 60)

static struct tls_fixtures fx;
static pid_t creator;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void die(const char *fmt, ...) CONDUIT_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "tls-fixtures: ");
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        ERR_print_errors_fp(stderr);
        abort();
}

#define need(cond)                               \
        do {                                     \
                if (!(cond))                     \
                        die("%s failed", #cond); \
        } while (0)

static EVP_PKEY *new_key(void)
{
        EVP_PKEY *k = EVP_EC_gen("P-256");
        need(k);
        return k;
}

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
        if (!ext)
                die("extension %s = %s", OBJ_nid2sn(nid), value);
        need(X509_add_ext(x, ext, -1));
        X509_EXTENSION_free(ext);
}

struct cert_spec {
        const char *cn;
        const char *san;      /* NULL: none */
        const char *eku;      /* NULL: none */
        bool ca;              /* a CA certificate */
        long not_before;      /* seconds from now */
        long not_after;       /* seconds from now */
        X509 *issuer;         /* NULL: self-signed */
        EVP_PKEY *issuer_key; /* NULL: self-signed */
};

static X509 *new_cert(EVP_PKEY *key, const struct cert_spec *s)
{
        X509 *x = X509_new();
        need(x);
        need(X509_set_version(x, X509_VERSION_3));
        unsigned char serial[8];
        need(RAND_bytes(serial, sizeof(serial)) == 1);
        serial[0] &= 0x7f; /* positive */
        serial[0] |= 0x01; /* non-zero */
        BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
        need(bn);
        need(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
        BN_free(bn);

        X509_NAME *name = X509_get_subject_name(x);
        need(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                        (const unsigned char *)"libconduit tests", -1, -1, 0));
        need(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)s->cn, -1,
                                        -1, 0));
        need(X509_set_issuer_name(x, s->issuer ? X509_get_subject_name(s->issuer) : name));
        need(X509_gmtime_adj(X509_getm_notBefore(x), s->not_before));
        need(X509_gmtime_adj(X509_getm_notAfter(x), s->not_after));
        need(X509_set_pubkey(x, key));

        X509V3_CTX v3;
        X509V3_set_ctx(&v3, s->issuer ? s->issuer : x, x, NULL, NULL, 0);
        if (s->ca) {
                add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        } else {
                add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
                add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
        }
        add_ext(x, &v3, NID_subject_key_identifier, "hash");
        if (s->issuer)
                add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
        if (s->san)
                add_ext(x, &v3, NID_subject_alt_name, s->san);
        if (s->eku)
                add_ext(x, &v3, NID_ext_key_usage, s->eku);
        if (!X509_sign(x, s->issuer_key ? s->issuer_key : key, EVP_sha256()))
                die("signing %s", s->cn);
        return x;
}

static char *path_of(const char *file)
{
        char *p = NULL;
        need(asprintf(&p, "%s/%s", fx.dir, file) >= 0);
        return p;
}

static char *write_cert(X509 *x, const char *file)
{
        char *p = path_of(file);
        FILE *f = fopen(p, "w");
        if (!f)
                die("open %s", p);
        need(PEM_write_X509(f, x));
        need(fclose(f) == 0);
        return p;
}

static char *write_key(EVP_PKEY *k, const char *file, const char *passphrase)
{
        char *p = path_of(file);
        FILE *f = fopen(p, "w");
        if (!f)
                die("open %s", p);
        if (passphrase)
                need(PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(),
                                          (const unsigned char *)passphrase,
                                          (int)strlen(passphrase), NULL, NULL));
        else
                need(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
        need(fclose(f) == 0);
        return p;
}

/* SHA-256 of the DER SubjectPublicKeyInfo, as "sha256//BASE64" and as hex
 * with colons. */
static void pins(EVP_PKEY *k, char **ret_b64, char **ret_hex)
{
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(k, &der);
        need(n > 0);
        unsigned char md[32];
        unsigned int mdlen = 0;
        need(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL));
        need(mdlen == 32);
        OPENSSL_free(der);
        unsigned char b64[64];
        need(EVP_EncodeBlock(b64, md, 32) == 44);
        need(asprintf(ret_b64, "sha256//%s", (const char *)b64) >= 0);
        if (ret_hex) {
                char *h = malloc(32 * 3);
                need(h);
                for (int i = 0; i < 32; i++)
                        snprintf(h + 3 * i, 4, i < 31 ? "%02X:" : "%02X", md[i]);
                *ret_hex = h;
        }
}

static void cleanup(void)
{
        /* Check forks a child per test and the children exit through exit():
         * only the process that made the directory removes it. */
        if (getpid() == creator && fx.dir)
                tc_rmtree(fx.dir);
}

/* A leaf signed by issuer, written as NAME.pem / NAME.key. */
static void leaf(const char *name, const struct cert_spec *spec, char **ret_cert, char **ret_key,
                 EVP_PKEY **ret_pkey)
{
        char file[64];
        EVP_PKEY *k = new_key();
        X509 *x = new_cert(k, spec);
        snprintf(file, sizeof(file), "%s.pem", name);
        *ret_cert = write_cert(x, file);
        snprintf(file, sizeof(file), "%s.key", name);
        *ret_key = write_key(k, file, NULL);
        X509_free(x);
        if (ret_pkey)
                *ret_pkey = k;
        else
                EVP_PKEY_free(k);
}

static void generate(void)
{
        fx.dir = tc_tmpdir();
        creator = getpid();
        atexit(cleanup);

        const char *local_san = "DNS:localhost,IP:127.0.0.1,IP:::1";
        const long now = 0, year = 365 * DAY;

        EVP_PKEY *ca_key = new_key();
        X509 *ca = new_cert(ca_key, &(struct cert_spec){ .cn = "libconduit test CA",
                                                         .ca = true,
                                                         .not_before = now - DAY,
                                                         .not_after = 10 * year });
        fx.ca_cert = write_cert(ca, "ca.pem");

        EVP_PKEY *unk_key = new_key();
        X509 *unk = new_cert(unk_key, &(struct cert_spec){ .cn = "libconduit unknown CA",
                                                           .ca = true,
                                                           .not_before = now - DAY,
                                                           .not_after = 10 * year });
        fx.unknown_ca_cert = write_cert(unk, "unknown-ca.pem");

        struct cert_spec s = { .cn = "localhost",
                               .san = local_san,
                               .eku = "serverAuth",
                               .not_before = now - DAY,
                               .not_after = year,
                               .issuer = ca,
                               .issuer_key = ca_key };
        EVP_PKEY *server_key = NULL;
        leaf("server", &s, &fx.server_cert, &fx.server_key, &server_key);
        fx.server_key_enc = write_key(server_key, "server-enc.key", "secret");
        pins(server_key, &fx.server_pin, &fx.server_pin_hex);
        EVP_PKEY_free(server_key);

        struct cert_spec w = s;
        w.cn = "*.wild.test";
        w.san = "DNS:*.wild.test";
        leaf("wild", &w, &fx.wild_cert, &fx.wild_key, NULL);

        struct cert_spec e = s;
        e.not_before = now - 30 * DAY;
        e.not_after = now - DAY;
        leaf("expired", &e, &fx.expired_cert, &fx.expired_key, NULL);

        struct cert_spec fu = s;
        fu.not_before = now + DAY;
        fu.not_after = now + 30 * DAY;
        leaf("future", &fu, &fx.future_cert, &fx.future_key, NULL);

        struct cert_spec o = s;
        o.cn = "other.test";
        o.san = "DNS:other.test";
        leaf("wrong", &o, &fx.wrong_cert, &fx.wrong_key, NULL);

        struct cert_spec ss = s;
        ss.san = "DNS:localhost";
        ss.issuer = NULL;
        ss.issuer_key = NULL;
        EVP_PKEY *self_key = NULL;
        leaf("self", &ss, &fx.self_cert, &fx.self_key, &self_key);
        pins(self_key, &fx.self_pin, NULL);
        EVP_PKEY_free(self_key);

        struct cert_spec r = s;
        r.issuer = unk;
        r.issuer_key = unk_key;
        leaf("rogue", &r, &fx.rogue_cert, &fx.rogue_key, NULL);

        struct cert_spec c = s;
        c.cn = "client";
        c.san = "DNS:client.test";
        c.eku = "clientAuth";
        leaf("client", &c, &fx.client_cert, &fx.client_key, NULL);

        struct cert_spec a = s;
        a.cn = "alpha";
        leaf("alpha", &a, &fx.alpha_cert, &fx.alpha_key, NULL);
        a.cn = "beta";
        leaf("beta", &a, &fx.beta_cert, &fx.beta_key, NULL);

        X509_free(ca);
        X509_free(unk);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(unk_key);
}

const struct tls_fixtures *tls_fixtures(void)
{
        pthread_once(&once, generate);
        return &fx;
}
