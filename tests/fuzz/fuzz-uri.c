/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the URI parser and printer (docs/uri.md).
 *
 * The input is a URI (up to its first NUL byte). Whenever the built-in
 * parser (conduit_endp_parse()) or a context's (conduit_ctx_parse(), with
 * user services, rewrite rules and static hosts) accepts it, the endp must
 * print, parse back equal and print the same string again, for every kind.
 * The parsed endp is then resolved with that context, without DNS (see
 * fuzz-endp.h), and every candidate must round-trip as well. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conduit/conduit.h"

#include "fuzz-common.h"
#include "fuzz-endp.h"

static conduit_ctx *plain; /* built-in table only, no services file */
static conduit_ctx *rich;  /* with user services, rewrites and hosts */

static void setup(void)
{
        if (conduit_ctx_new(&plain) < 0 || conduit_ctx_new(&rich) < 0)
                fuzz_fail("conduit_ctx_new");
        /* no /etc/services: the same answers on every machine, no I/O */
        conduit_ctx_set_services_file(plain, NULL);
        conduit_ctx_set_services_file(rich, NULL);
        int r = conduit_ctx_add_service(rich, "agent", 7070, true);
        r |= conduit_ctx_add_service(rich, "plain", 8080, false);
        r |= conduit_ctx_add_service(rich, "http", 8081, true); /* overrides the built-in */
        r |= conduit_ctx_add_rewrite(rich, "vm.internal", "vsock://{label}:{port}");
        r |= conduit_ctx_add_rewrite(rich, "mux.internal",
                                     "vsock-mux:///run/{label}.sock:{port}?handshake=lenient");
        r |= conduit_ctx_add_rewrite(rich, "sock.internal", "unix:///run/{host}/{port}");
        r |= conduit_ctx_add_rewrite(rich, "alias.test", "tcp://{label}.example:{port}");
        r |= conduit_ctx_add_rewrite(rich, "loop.test", "tcp://x.loop.test:{port}");
        r |= conduit_ctx_add_rewrite(rich, "tls.test", "tls+tcp://{label}.local.test:{port}");
        r |= conduit_ctx_add_host(rich, "a.local.test", "192.0.2.1");
        r |= conduit_ctx_add_host(rich, "a.local.test", "2001:db8::1");
        r |= conduit_ctx_add_host(rich, "a.local.test", "192.0.2.1");
        r |= conduit_ctx_add_host(rich, "ll.test", "fe80::1%7");
        r |= conduit_ctx_add_host(rich, "localhost", "127.0.0.1");
        r |= conduit_ctx_add_host(rich, "x.example", "198.51.100.9");
        if (r != 0)
                fuzz_fail("context setup");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        setup();
        return 0;
}

static void touch_getters(const conduit_endp *e)
{
        static const char *const keys[] = {
                "connect_timeout", "nodelay",     "keepalive", "mode",
                "unlink",          "to_host",     "handshake", "retry",
                "max_io",          "servername",  "verify",    "cafile",
                "capath",          "cert",        "key",       "alpn",
                "min_version",     "max_version", "pin",       "session_cache",
                "ciphersuites",    "bogus",
        };
        size_t len;
        uint8_t vmid[16], svc[16];
        (void)conduit_endp_kind_name(conduit_endp_get_kind(e));
        (void)conduit_endp_get_host(e);
        (void)conduit_endp_get_port(e);
        (void)conduit_endp_get_cid(e);
        (void)conduit_endp_get_path(e, &len);
        (void)conduit_endp_is_abstract(e);
        (void)conduit_endp_get_fd(e);
        (void)conduit_endp_get_hyperv(e, vmid, svc);
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
                (void)conduit_endp_get_option(e, keys[i]);
        struct sockaddr_storage ss;
        socklen_t sl;
        if (conduit_endp_to_sockaddr(e, &ss, &sl) == 0) {
                /* a kernel address maps back to an endp of the same kind */
                conduit_endp *b = NULL;
                int r = conduit_endp_from_sockaddr((struct sockaddr *)&ss, sl, &b);
                FUZZ_CHECK(r == 0 || r == -ENOMEM, "from_sockaddr of to_sockaddr: %d", r);
                if (b)
                        FUZZ_CHECK(conduit_endp_get_kind(b) == conduit_endp_get_kind(e),
                                   "sockaddr round trip changed the kind");
                conduit_endp_free(b);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 4096)
                return -1;
        char *uri = malloc(size + 1);
        if (!uri)
                return 0;
        memcpy(uri, data, size);
        uri[size] = '\0';

        conduit_endp *e = NULL;
        int r = conduit_endp_parse(uri, &e);
        bool builtin_ok = r == 0;
        if (r == 0) {
                touch_getters(e);
                fuzz_check_roundtrip(plain, e, "built-in parse");
                fuzz_check_resolve(plain, e);
                conduit_endp_free(e);
        }

        e = NULL;
        r = conduit_ctx_parse(rich, uri, &e);
        /* (a user service that adds TLS may pass the cap on TLS layers) */
        FUZZ_CHECK(!builtin_ok || r == 0 || r == -ENOMEM ||
                           (r == CONDUIT_E_URI &&
                            strstr(conduit_ctx_error_message(rich), "TLS layers")),
                   "'%s' parses with the built-in table but not with a context that adds "
                   "services: %d",
                   uri, r);
        if (r == 0) {
                touch_getters(e);
                fuzz_check_roundtrip(rich, e, "context parse");
                fuzz_check_resolve(rich, e);
                conduit_endp_free(e);
        }
        free(uri);
        return 0;
}
