/* SPDX-License-Identifier: MIT */
/* conduit-bench and conduit-soak: the throwaway certificate the TLS cases
 * share, and the removal of the scratch directory it goes in. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench.h"

#define need(x)                                                     \
        do {                                                        \
                if (!(x))                                           \
                        bench_die("tls certificate: " #x, -EPROTO); \
        } while (0)

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
        need(ext);
        need(X509_add_ext(x, ext, -1));
        X509_EXTENSION_free(ext);
}

/* A self-signed certificate for localhost and 127.0.0.1 with an EC P-256
 * key (or RSA-2048, the common web key), its own trust anchor (the
 * client's cafile). */
void bench_make_cert(const char *cert_path, const char *key_path, bool rsa)
{
        EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
        X509 *x = X509_new();
        need(k && x);
        need(X509_set_version(x, X509_VERSION_3));
        unsigned char serial[8];
        need(RAND_bytes(serial, sizeof(serial)) == 1);
        serial[0] = (unsigned char)((serial[0] & 0x7f) | 1);
        BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
        need(bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
        BN_free(bn);
        X509_NAME *name = X509_get_subject_name(x);
        need(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"localhost", -1, -1, 0));
        need(X509_set_issuer_name(x, name));
        need(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
        need(X509_gmtime_adj(X509_getm_notAfter(x), 7 * 24 * 3600));
        need(X509_set_pubkey(x, k));
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, &v3, NID_key_usage, "critical,digitalSignature,keyCertSign");
        add_ext(x, &v3, NID_ext_key_usage, "serverAuth");
        add_ext(x, &v3, NID_subject_key_identifier, "hash");
        add_ext(x, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        need(X509_sign(x, k, EVP_sha256()));
        FILE *f = fopen(cert_path, "w");
        need(f && PEM_write_X509(f, x));
        need(fclose(f) == 0);
        f = fopen(key_path, "w");
        need(f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
        need(fclose(f) == 0);
        X509_free(x);
        EVP_PKEY_free(k);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        if (remove(path) != 0)
                fprintf(stderr, "could not remove %s: %s\n", path, strerror(errno));
        return 0; /* the rest goes all the same */
}

void bench_rmtree(const char *dir)
{
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
