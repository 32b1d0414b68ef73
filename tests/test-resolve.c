/* SPDX-License-Identifier: MIT */
/* Name resolution: static hosts, rewrite rules, service schemes,
 * getaddrinfo, TLS server names, errors. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* Resolves uri with ctx and returns the canonical URIs joined by " ". */
static char *resolve_str(conduit_ctx *ctx, const char *uri)
{
        conduit_endp **list = NULL;
        int n = conduit_resolve(ctx, uri, &list);
        ck_assert_msg(n > 0, "resolve %s: %d (%s) %s", uri, n, conduit_strerror(n),
                      conduit_ctx_error_message(ctx));
        char *out = calloc(1, 1);
        for (int i = 0; i < n; i++) {
                char *s = NULL, *joined = NULL;
                tc_ok(conduit_endp_format(list[i], &s));
                ck_assert_int_ge(asprintf(&joined, "%s%s%s", out, i ? " " : "", s), 0);
                free(out);
                free(s);
                out = joined;
        }
        ck_assert_ptr_null(list[n]);
        conduit_endp_list_free(list);
        return out;
}

/* Names that go to DNS must fail fast even where no DNS server answers. */
static void fast_dns(void)
{
        setenv("RES_OPTIONS", "timeout:1 attempts:1", 1);
}

static void expect(conduit_ctx *ctx, const char *uri, const char *want)
{
        char *got = resolve_str(ctx, uri);
        ck_assert_msg(strcmp(got, want) == 0, "resolve %s:\n got  %s\n want %s", uri, got, want);
        free(got);
}

START_TEST(literals_and_non_tcp_pass_through)
{
        expect(NULL, "tcp://127.0.0.1:80", "tcp://127.0.0.1:80");
        expect(NULL, "tcp://[::1]:80", "tcp://[::1]:80");
        expect(NULL, "unix:///run/x.sock", "unix:///run/x.sock");
        expect(NULL, "unix-abstract:x", "unix-abstract:x");
        expect(NULL, "vsock://3:1024", "vsock://3:1024");
        expect(NULL, "fd:3", "fd:3");
        expect(NULL, "tcp://:80", "tcp://:80");
}
END_TEST

START_TEST(static_hosts_in_order)
{
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_add_host(ctx, "db.example", "192.0.2.10"));
        tc_ok(conduit_ctx_add_host(ctx, "db.example", "2001:db8::10"));
        tc_ok(conduit_ctx_add_host(ctx, "db.example", "192.0.2.11"));
        tc_ok(conduit_ctx_add_host(ctx, "LL.example", "fe80::1%lo"));
        expect(ctx, "tcp://db.example:5432",
               "tcp://192.0.2.10:5432 tcp://[2001:db8::10]:5432 tcp://192.0.2.11:5432");
        /* case and a trailing dot do not matter; families filter */
        expect(ctx, "tcp://DB.Example.:1",
               "tcp://192.0.2.10:1 tcp://[2001:db8::10]:1 tcp://192.0.2.11:1");
        expect(ctx, "tcp4://db.example:1", "tcp://192.0.2.10:1 tcp://192.0.2.11:1");
        expect(ctx, "tcp6://db.example:1", "tcp://[2001:db8::10]:1");
        expect(ctx, "tcp://ll.example:22", "tcp://[fe80::1%lo]:22");
        /* options survive resolution */
        expect(ctx, "tcp://db.example:1?nodelay=1",
               "tcp://192.0.2.10:1?nodelay=1 tcp://[2001:db8::10]:1?nodelay=1 "
               "tcp://192.0.2.11:1?nodelay=1");
        /* the name stays available */
        conduit_endp **list = NULL;
        ck_assert_int_eq(conduit_resolve(ctx, "tcp://db.example:5432", &list), 3);
        ck_assert_str_eq(conduit_endp_get_host(list[0]), "db.example");
        conduit_endp_list_free(list);
        tc_err(conduit_ctx_add_host(ctx, "x", "not-an-ip"), -EINVAL);
        tc_err(conduit_ctx_add_host(ctx, "x", "192.0.2.1%eth0"), -EINVAL);
        tc_err(conduit_ctx_add_host(ctx, "", "192.0.2.1"), -EINVAL);
        conduit_ctx_free(ctx);
}
END_TEST

/* A hosts(5) file of the context: read at each resolution, after static
 * hosts, before DNS; comments, aliases, case, a trailing dot, zones and
 * families as in /etc/hosts. */
START_TEST(hosts_file)
{
        char *dir = tc_tmpdir();
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/hosts", dir), 0);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("# a comment\n"
              "192.0.2.20   app.test  app   # trailing comment\n"
              "2001:db8::20 app.test\n"
              "fe80::2%lo   ll.test\n"
              "not-an-address bad.test\n"
              "192.0.2.21   static.test\n",
              f);
        fclose(f);
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_hosts_file(ctx, path));
        tc_ok(conduit_ctx_add_host(ctx, "static.test", "192.0.2.99"));
        expect(ctx, "tcp://app.test:1", "tcp://192.0.2.20:1 tcp://[2001:db8::20]:1");
        expect(ctx, "tcp://APP.Test.:1", "tcp://192.0.2.20:1 tcp://[2001:db8::20]:1");
        expect(ctx, "tcp://app:2", "tcp://192.0.2.20:2");
        expect(ctx, "tcp6://app.test:1", "tcp://[2001:db8::20]:1");
        expect(ctx, "tcp://ll.test:3", "tcp://[fe80::2%lo]:3");
        /* static hosts come first */
        expect(ctx, "tcp://static.test:4", "tcp://192.0.2.99:4");
        /* it is read each time: a change shows at once */
        f = fopen(path, "w");
        fputs("192.0.2.30 app.test\n", f);
        fclose(f);
        expect(ctx, "tcp://app.test:1", "tcp://192.0.2.30:1");
        /* a name it does not list (and a line it cannot read) goes to DNS */
        fast_dns();
        conduit_endp **list = NULL;
        tc_err(conduit_resolve(ctx, "tcp://bad.test.invalid:1", &list), CONDUIT_E_NOT_FOUND);
        /* NULL removes it; a missing file is no error */
        tc_ok(conduit_ctx_set_hosts_file(ctx, NULL));
        tc_err(conduit_resolve(ctx, "tcp://app.test.invalid:1", &list), CONDUIT_E_NOT_FOUND);
        tc_ok(conduit_ctx_set_hosts_file(ctx, "/nonexistent/hosts"));
        expect(ctx, "tcp://static.test:4", "tcp://192.0.2.99:4");
        tc_err(conduit_ctx_set_hosts_file(NULL, path), -EINVAL);
        conduit_ctx_free(ctx);
        unlink(path);
        free(path);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(tls_gets_the_name)
{
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_add_host(ctx, "www.example", "192.0.2.80"));
        expect(ctx, "https://www.example", "tls+tcp://192.0.2.80:443?servername=www.example");
        expect(ctx, "tls+tcp://www.example:8443?servername=other.example",
               "tls+tcp://192.0.2.80:8443?servername=other.example");
        /* an IP literal gets no server name */
        expect(ctx, "tls+tcp://192.0.2.80:443", "tls+tcp://192.0.2.80:443");
        conduit_ctx_free(ctx);
}
END_TEST

START_TEST(rewrites)
{
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_add_rewrite(ctx, "*.vm.internal", "vsock://{label}:{port}"));
        tc_ok(conduit_ctx_add_rewrite(ctx, "db.vm.internal", "unix:///run/db/{port}.sock"));
        tc_ok(conduit_ctx_add_rewrite(ctx, "svc.test", "tcp://127.0.0.1:{port}"));
        tc_ok(conduit_ctx_add_rewrite(ctx, "echo.test", "unix-abstract:{host}"));
        expect(ctx, "tcp://3.vm.internal:1024", "vsock://3:1024");
        /* longest suffix wins, case-insensitively, trailing dot ignored */
        expect(ctx, "tcp://DB.VM.Internal.:5432", "unix:///run/db/5432.sock");
        expect(ctx, "tcp://x.db.vm.internal:7", "unix:///run/db/7.sock");
        /* label boundaries: "notvm.internal" is not under "vm.internal" */
        conduit_endp **list = NULL;
        fast_dns();
        int r = conduit_resolve(ctx, "tcp://notvm.internal:1", &list);
        ck_assert_int_lt(r, 0);
        expect(ctx, "tcp://a.svc.test:99", "tcp://127.0.0.1:99");
        expect(ctx, "tcp://echo.test:1", "unix-abstract:echo.test");
        /* TLS is kept, with the original name as server name */
        expect(ctx, "tls+tcp://db.vm.internal:5432",
               "tls+unix:///run/db/5432.sock?servername=db.vm.internal");
        expect(ctx, "https://7.vm.internal", "tls+vsock://7:443?servername=7.vm.internal");
        /* a rewrite onto a name that rewrites onto itself stops */
        tc_ok(conduit_ctx_add_rewrite(ctx, "loop.test", "tcp://{host}:{port}"));
        tc_err(conduit_resolve(ctx, "tcp://a.loop.test:1", &list), CONDUIT_E_NOT_FOUND);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(ctx), "loop"));
        /* templates are checked when added */
        tc_err(conduit_ctx_add_rewrite(ctx, "bad.test", "nope://{host}"), CONDUIT_E_SCHEME);
        tc_err(conduit_ctx_add_rewrite(ctx, "bad.test", "tcp://{host}"), CONDUIT_E_URI);
        tc_err(conduit_ctx_add_rewrite(ctx, "", "tcp://a:1"), -EINVAL);
        /* a rewrite onto a tls+ URI cannot pass the parser's 16 TLS layers:
         * the result would not print to a URI that parses back (found by
         * tests/fuzz/fuzz-uri) */
        tc_ok(conduit_ctx_add_rewrite(ctx, "deep.test", "tls+tcp://127.0.0.1:{port}"));
        expect(ctx, "tls+tcp://a.deep.test:1", "tls+tls+tcp://127.0.0.1:1?servername=a.deep.test");
        char deep[128] = "";
        for (int i = 0; i < 15; i++)
                strcat(deep, "tls+");
        strcat(deep, "tcp://a.deep.test:1");
        char *got = resolve_str(ctx, deep); /* 16 layers: fine */
        ck_assert_int_eq((int)(strstr(got, "tcp://") - got), 16 * 4);
        free(got);
        memmove(deep + 4, deep, strlen(deep) + 1);
        memcpy(deep, "tls+", 4);
        tc_err(conduit_resolve(ctx, deep, &list), CONDUIT_E_URI);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(ctx), "TLS layers"));
        conduit_ctx_free(ctx);
}
END_TEST

START_TEST(getaddrinfo_localhost)
{
        /* /etc/hosts names localhost; whatever families it lists come back,
         * each once */
        char *got = resolve_str(NULL, "tcp://localhost:631");
        ck_assert_msg(strstr(got, "tcp://127.0.0.1:631") || strstr(got, "tcp://[::1]:631"),
                      "localhost resolved to %s", got);
        char *dup = strstr(got, "tcp://127.0.0.1:631");
        ck_assert_msg(!dup || !strstr(dup + 1, "tcp://127.0.0.1:631"), "duplicate in %s", got);
        free(got);
        expect(NULL, "http://localhost", "tcp://127.0.0.1:80");
        expect(NULL, "tcp4://localhost:9", "tcp://127.0.0.1:9");
}
END_TEST

/* getaddrinfo's answer comes back with the families interleaved (RFC
 * 8305 §4). In a private mount namespace (this forked test child's own),
 * /etc/hosts is replaced by one naming four addresses. */
START_TEST(getaddrinfo_interleaves_families)
{
        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
                fprintf(stderr, "# skipped: no mount namespace (%s)\n", strerror(errno));
                return;
        }
        char *dir = tc_tmpdir();
        char path[512];
        snprintf(path, sizeof(path), "%s/hosts", dir);
        FILE *f = fopen(path, "w");
        fputs("192.0.2.1 multi.test\n192.0.2.2 multi.test\n"
              "2001:db8::1 multi.test\n2001:db8::2 multi.test\n2001:db8::3 multi.test\n",
              f);
        fclose(f);
        ck_assert_int_eq(mount(path, "/etc/hosts", "none", MS_BIND, NULL), 0);
        conduit_endp **list = NULL;
        int n = conduit_resolve(NULL, "tcp://multi.test:7", &list);
        ck_assert_int_eq(n, 5);
        /* whichever family comes first, they alternate while both last */
        int fam[5];
        for (int i = 0; i < n; i++) {
                struct sockaddr_storage ss;
                socklen_t len;
                tc_ok(conduit_endp_to_sockaddr(list[i], &ss, &len));
                fam[i] = ss.ss_family;
                ck_assert_str_eq(conduit_endp_get_host(list[i]), "multi.test");
        }
        char *got = resolve_str(NULL, "tcp://multi.test:7");
        ck_assert_msg(fam[0] != fam[1] && fam[1] != fam[2] && fam[2] != fam[3],
                      "families not interleaved: %s", got);
        ck_assert_msg(fam[4] == AF_INET6, "the extra IPv6 address goes last: %s", got);
        free(got);
        conduit_endp_list_free(list);
        umount("/etc/hosts");
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* getaddrinfo() as seen by the library: "ll.test" answers with a
 * link-local address and a scope id, as nss-mdns does for NAME.local
 * (/etc/hosts cannot carry one); other names go to the C library. */
static struct {
        struct addrinfo ai;
        struct sockaddr_in6 sin6;
} ll_answer;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
        if (node && strcmp(node, "ll.test") == 0) {
                ll_answer.sin6 =
                        (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_scope_id = 1 };
                inet_pton(AF_INET6, "fe80::1", &ll_answer.sin6.sin6_addr);
                ll_answer.ai = (struct addrinfo){ .ai_family = AF_INET6,
                                                  .ai_socktype = SOCK_STREAM,
                                                  .ai_addrlen = sizeof(ll_answer.sin6),
                                                  .ai_addr = (struct sockaddr *)&ll_answer.sin6 };
                *res = &ll_answer.ai;
                return 0;
        }
        int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
                (int (*)(const char *, const char *, const struct addrinfo *,
                         struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
        return real(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai)
{
        if (ai == &ll_answer.ai)
                return;
        void (*real)(struct addrinfo *) =
                (void (*)(struct addrinfo *))dlsym(RTLD_NEXT, "freeaddrinfo");
        real(ai);
}

START_TEST(getaddrinfo_keeps_scope)
{
        /* scope id 1 is the loopback interface, always */
        expect(NULL, "tcp://ll.test:631", "tcp://[fe80::1%lo]:631");
}
END_TEST

START_TEST(not_found)
{
        conduit_endp **list = NULL;
        fast_dns();
        int r = conduit_resolve(NULL, "tcp://no-such-host.invalid:80", &list);
        tc_err(r, CONDUIT_E_NOT_FOUND);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "no-such-host.invalid"));
        ck_assert_ptr_null(list);
        /* errors of parsing come through unchanged */
        tc_err(conduit_resolve(NULL, "tcp://h:1?bogus=1", &list), CONDUIT_E_OPTION);
        tc_err(conduit_resolve(NULL, "nope://h", &list), CONDUIT_E_SCHEME);
        tc_err(conduit_resolve(NULL, "tcp://h", &list), CONDUIT_E_URI);
        tc_err(conduit_resolve(NULL, NULL, &list), -EINVAL);
        tc_err(conduit_resolve_endp(NULL, NULL, &list), -EINVAL);
        ck_assert_ptr_null(conduit_endp_list_free(NULL));
}
END_TEST

START_TEST(service_table)
{
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_add_host(ctx, "h.test", "192.0.2.1"));
        tc_ok(conduit_ctx_add_service(ctx, "myproto", 4242, false));
        tc_ok(conduit_ctx_add_service(ctx, "mysecure", 4243, true));
        tc_ok(conduit_ctx_add_service(ctx, "http", 8080, false)); /* overrides built-in */
        expect(ctx, "myproto://h.test", "tcp://192.0.2.1:4242");
        expect(ctx, "mysecure://h.test", "tls+tcp://192.0.2.1:4243?servername=h.test");
        expect(ctx, "http://h.test", "tcp://192.0.2.1:8080");
        expect(ctx, "http://h.test:81", "tcp://192.0.2.1:81");
        expect(NULL, "http://192.0.2.1", "tcp://192.0.2.1:80");
        tc_err(conduit_ctx_add_service(ctx, "tcp", 1, false), -EEXIST);
        tc_err(conduit_ctx_add_service(ctx, "unix", 1, false), -EEXIST);
        tc_err(conduit_ctx_add_service(ctx, "1bad", 1, false), -EINVAL);
        tc_err(conduit_ctx_add_service(ctx, "zero", 0, false), -EINVAL);
        uint16_t port = 0;
        bool tls = false;
        tc_ok(conduit_ctx_lookup_service(ctx, "MYSECURE", &port, &tls));
        ck_assert_uint_eq(port, 4243);
        ck_assert(tls);
        tc_ok(conduit_ctx_lookup_service(NULL, "imaps", &port, &tls));
        ck_assert_uint_eq(port, 993);
        ck_assert(tls);
        conduit_ctx_free(ctx);
}
END_TEST

START_TEST(services_file_fallback)
{
        char *dir = tc_tmpdir();
        char path[512];
        snprintf(path, sizeof(path), "%s/services", dir);
        FILE *f = fopen(path, "w");
        fputs("# comment line\n"
              "gopherx   7070/tcp   gx gopherx-alias   # an entry with aliases\n"
              "udponly   7171/udp\n"
              "\n",
              f);
        fclose(f);
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_services_file(ctx, path));
        expect(ctx, "gopherx://127.0.0.1", "tcp://127.0.0.1:7070");
        expect(ctx, "gx://127.0.0.1", "tcp://127.0.0.1:7070");
        conduit_endp **list = NULL;
        tc_err(conduit_resolve(ctx, "udponly://127.0.0.1", &list), CONDUIT_E_SCHEME);
        tc_ok(conduit_ctx_set_services_file(ctx, NULL));
        tc_err(conduit_resolve(ctx, "gopherx://127.0.0.1", &list), CONDUIT_E_SCHEME);
        conduit_ctx_free(ctx);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(context_settings)
{
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        ck_assert_int_eq(conduit_ctx_get_timeout(ctx, CONDUIT_TIMEOUT_READ), -1);
        ck_assert_int_eq(conduit_ctx_get_timeout(ctx, CONDUIT_TIMEOUT_CLOSE), 10000);
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_WRITE, 5));
        ck_assert_int_eq(conduit_ctx_get_timeout(ctx, CONDUIT_TIMEOUT_WRITE), 5);
        tc_err(conduit_ctx_set_timeout(ctx, (conduit_timeout)99, 5), -EINVAL);
        tc_err(conduit_ctx_set_happy_eyeballs_delay(ctx, -1), -EINVAL);
        tc_ok(conduit_ctx_set_happy_eyeballs_delay(ctx, 0));
        ck_assert_ptr_null(conduit_ctx_free(ctx));
        ck_assert_ptr_null(conduit_ctx_free(NULL));
        tc_err(conduit_ctx_new(NULL), -EINVAL);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("resolve");
        TCase *tc = tcase_create("resolve");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, literals_and_non_tcp_pass_through);
        tcase_add_test(tc, static_hosts_in_order);
        tcase_add_test(tc, hosts_file);
        tcase_add_test(tc, tls_gets_the_name);
        tcase_add_test(tc, rewrites);
        tcase_add_test(tc, getaddrinfo_localhost);
        tcase_add_test(tc, getaddrinfo_interleaves_families);
        tcase_add_test(tc, getaddrinfo_keeps_scope);
        tcase_add_test(tc, not_found);
        tcase_add_test(tc, service_table);
        tcase_add_test(tc, services_file_fallback);
        tcase_add_test(tc, context_settings);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
