/* SPDX-License-Identifier: MIT */
/* Throwaway TLS key material for the TLS suite, generated at test time with
 * the OpenSSL 3 API (never committed): EC P-256 keys, PEM files in a private
 * temporary directory made once per process and removed at exit by the
 * process that made it (Check's forked children inherit it and leave it).
 *
 * Every leaf but the self-signed one and "rogue" is signed by ca. Server
 * leaves carry EKU serverAuth and a SAN; the CA has critical
 * basicConstraints CA:TRUE and keyCertSign. */
#ifndef CONDUIT_TESTS_TLS_FIXTURES_H
#define CONDUIT_TESTS_TLS_FIXTURES_H

struct tls_fixtures {
        char *dir;
        /* the trusted test CA */
        char *ca_cert;
        /* a second CA nobody trusts */
        char *unknown_ca_cert;
        /* CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1 */
        char *server_cert, *server_key;
        /* server_key encrypted (PKCS#8 PEM, AES-256-CBC), passphrase "secret" */
        char *server_key_enc;
        /* CN=*.wild.test, SAN DNS:*.wild.test */
        char *wild_cert, *wild_key;
        /* localhost (+ IP SANs), validity ended yesterday */
        char *expired_cert, *expired_key;
        /* localhost (+ IP SANs), valid from tomorrow */
        char *future_cert, *future_key;
        /* CN=other.test, SAN DNS:other.test only (no IP SAN) */
        char *wrong_cert, *wrong_key;
        /* self-signed CN=localhost, SAN DNS:localhost */
        char *self_cert, *self_key;
        /* CN=localhost (+ IP SANs) signed by the unknown CA */
        char *rogue_cert, *rogue_key;
        /* CN=client, EKU clientAuth, signed by ca */
        char *client_cert, *client_key;
        /* CN=alpha and CN=beta, both for localhost and 127.0.0.1 */
        char *alpha_cert, *alpha_key;
        char *beta_cert, *beta_key;
        /* "sha256//BASE64" of the DER SubjectPublicKeyInfo */
        char *server_pin, *self_pin;
        /* the same SHA-256 of server_key as 64 hex digits with colons */
        char *server_pin_hex;
};

/* Generates the files on the first call (thread-safe), aborting the process
 * if that fails; later calls return the same paths. */
const struct tls_fixtures *tls_fixtures(void);

#endif
