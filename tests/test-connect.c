/* SPDX-License-Identifier: MIT */
/* The connector: refused, deadlines, Happy Eyeballs, dispatch by kind. */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

/* A TCP listener on addr:port (port 0: any) that never answers new
 * connections: backlog 0 and one connection parked in the accept queue, so
 * the kernel drops further SYNs. Returns the socket; *port gets the port;
 * *parked the parked client. */
static int silent_listener(int family, const char *addr, uint16_t *port, int *parked)
{
        struct sockaddr_storage ss = { 0 };
        socklen_t len;
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                in->sin_family = AF_INET;
                in->sin_port = htons(*port);
                ck_assert_int_eq(inet_pton(AF_INET, addr, &in->sin_addr), 1);
                len = sizeof(*in);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(*port);
                ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
                len = sizeof(*in6);
        }
        int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);
        if (bind(s, (struct sockaddr *)&ss, len) < 0) {
                /* the caller picks another port */
                ck_assert_msg(errno == EADDRINUSE && *port != 0, "bind %s: %s", addr,
                              strerror(errno));
                close(s);
                return -1;
        }
        ck_assert_int_eq(listen(s, 0), 0);
        ck_assert_int_eq(getsockname(s, (struct sockaddr *)&ss, &len), 0);
        *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
        /* fill the accept queue (backlog 0 holds one) */
        *parked = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(*parked, (struct sockaddr *)&ss, len), 0);
        return s;
}

static uint16_t closed_port(void)
{
        char *uri = NULL;
        conduit_listener *l = tc_listen("tcp://127.0.0.1:0", &uri);
        uint16_t port = (uint16_t)conduit_endp_get_port(conduit_listener_endp(l));
        conduit_listener_free(l);
        free(uri);
        return port;
}

START_TEST(refused_names_the_address)
{
        uint16_t port = closed_port();
        char uri[64], want[64];
        snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
        snprintf(want, sizeof(want), "tcp://127.0.0.1:%u", port);
        conduit_flow *f = NULL;
        tc_err(conduit_connect(NULL, uri, &f), -ECONNREFUSED);
        ck_assert_ptr_null(f);
        ck_assert_msg(strstr(conduit_ctx_error_message(NULL), want), "message '%s' lacks '%s'",
                      conduit_ctx_error_message(NULL), want);
}
END_TEST

START_TEST(unix_missing_and_refused)
{
        char *dir = tc_tmpdir();
        char uri[1024];
        conduit_flow *f = NULL;
        snprintf(uri, sizeof(uri), "unix://%s/none.sock", dir);
        tc_err(conduit_connect(NULL, uri, &f), -ENOENT);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "none.sock"));
        /* a bound socket nobody listens on refuses */
        char path[512];
        snprintf(path, sizeof(path), "%s/bound.sock", dir);
        snprintf(uri, sizeof(uri), "unix://%s", path);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        ck_assert_uint_lt(strlen(path), sizeof(un.sun_path));
        memcpy(un.sun_path, path, strlen(path) + 1);
        ck_assert_int_eq(bind(s, (struct sockaddr *)&un, sizeof(un)), 0);
        tc_err(conduit_connect(NULL, uri, &f), -ECONNREFUSED);
        close(s);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(deadline_against_silent_peer)
{
        uint16_t port = 0;
        int parked;
        int s = silent_listener(AF_INET, "127.0.0.1", &port, &parked);
        char uri[96];
        conduit_flow *f = NULL;
        /* the URI option */
        snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u?connect_timeout=200ms", port);
        tc_err(conduit_connect(NULL, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "timed out"));
        /* the context default */
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_CONNECT, 150));
        snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
        tc_err(conduit_connect(ctx, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        conduit_ctx_free(ctx);
        close(parked);
        close(s);
}
END_TEST

struct log {
        char text[4096];
};

static void log_cb(void *ud, int level, const char *msg)
{
        struct log *l = ud;
        (void)level;
        size_t n = strlen(l->text);
        snprintf(l->text + n, sizeof(l->text) - n, "%s\n", msg);
}

/* He.test resolves to a dead address first and a live one second; the
 * connect must end on the live one. */
static void happy_eyeballs(int dead_family, const char *dead_addr, bool dead_silent)
{
        char *uri = NULL;
        conduit_listener *live = NULL;
        uint16_t port = 0;
        int s = -1, parked = -1;
        /* the dead address needs the live one's port: other programs may
         * hold it there, so try a few */
        for (int tries = 0; tries < 50; tries++) {
                live = tc_listen("tcp://127.0.0.1:0", &uri);
                port = (uint16_t)conduit_endp_get_port(conduit_listener_endp(live));
                if (!dead_silent ||
                    (s = silent_listener(dead_family, dead_addr, &port, &parked)) >= 0)
                        break;
                conduit_listener_free(live);
                free(uri);
                live = NULL;
                uri = NULL;
        }
        ck_assert_ptr_nonnull(live);
        conduit_ctx *ctx;
        struct log log = { "" };
        tc_ok(conduit_ctx_new(&ctx));
        conduit_ctx_set_log(ctx, log_cb, &log);
        tc_ok(conduit_ctx_add_host(ctx, "he.test", dead_addr));
        tc_ok(conduit_ctx_add_host(ctx, "he.test", "127.0.0.1"));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_CONNECT, 30000));
        char target[64];
        snprintf(target, sizeof(target), "tcp://he.test:%u", port);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(ctx, target, &f));
        ck_assert_msg(conduit_endp_equal(conduit_flow_peer(f), conduit_listener_endp(live)),
                      "connected to the wrong address; log:\n%s", log.text);
        ck_assert_msg(strstr(log.text, "attempt 1 of 2") && strstr(log.text, "attempt 2 of 2"),
                      "both attempts should be logged:\n%s", log.text);
        /* the live listener really got it */
        conduit_flow *srv = NULL;
        tc_ok(conduit_listener_accept(live, &srv));
        tc_write_all(f, "x", 1);
        char c;
        ck_assert_int_eq(conduit_flow_read(srv, &c, 1), 1);
        conduit_flow_free(srv);
        conduit_flow_free(f);
        conduit_ctx_free(ctx);
        conduit_listener_free(live);
        if (s >= 0) {
                close(parked);
                close(s);
        }
        free(uri);
}

START_TEST(he_silent_v4_first)
{
        happy_eyeballs(AF_INET, "127.0.0.2", true);
}
END_TEST

START_TEST(he_silent_v6_first)
{
        happy_eyeballs(AF_INET6, "::1", true);
}
END_TEST

START_TEST(he_refused_first)
{
        /* nothing listens on 127.0.0.3: the refusal starts the next attempt */
        happy_eyeballs(AF_INET, "127.0.0.3", false);
}
END_TEST

START_TEST(he_deadline_covers_all_attempts)
{
        uint16_t port = 0;
        int p1, p2, s1, s2 = -1;
        for (int tries = 0; tries < 50 && s2 < 0; tries++) {
                port = 0;
                s1 = silent_listener(AF_INET, "127.0.0.2", &port, &p1);
                if ((s2 = silent_listener(AF_INET, "127.0.0.3", &port, &p2)) < 0) {
                        close(p1);
                        close(s1);
                }
        }
        ck_assert_int_ge(s2, 0);
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_add_host(ctx, "dead.test", "127.0.0.2"));
        tc_ok(conduit_ctx_add_host(ctx, "dead.test", "127.0.0.3"));
        tc_ok(conduit_ctx_set_happy_eyeballs_delay(ctx, 50));
        char target[80];
        snprintf(target, sizeof(target), "tcp://dead.test:%u?connect_timeout=400ms", port);
        conduit_flow *f = NULL;
        tc_err(conduit_connect(ctx, target, &f), -ETIMEDOUT);
        conduit_ctx_free(ctx);
        close(p1);
        close(p2);
        close(s1);
        close(s2);
}
END_TEST

START_TEST(unsupported_kinds)
{
        conduit_flow *f = NULL;
        tc_err(conduit_connect(NULL, "vchan://3/data", &f), CONDUIT_E_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "Xen"));
        tc_err(conduit_connect(NULL, "unknown:gone", &f), CONDUIT_E_NOT_FOUND);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "gone"));
        ck_assert_ptr_null(f);
}
END_TEST

START_TEST(bad_targets)
{
        conduit_flow *f = NULL;
        tc_err(conduit_connect(NULL, "tcp://:80", &f), -EDESTADDRREQ);
        tc_err(conduit_connect(NULL, "unix:", &f), -EDESTADDRREQ);
        tc_err(conduit_connect(NULL, "tcp://h:99999", &f), CONDUIT_E_URI);
        tc_err(conduit_connect(NULL, "nope://h", &f), CONDUIT_E_SCHEME);
        tc_err(conduit_connect(NULL, NULL, &f), -EINVAL);
        tc_err(conduit_connect(NULL, "tcp://127.0.0.1:1", NULL), -EINVAL);
        tc_err(conduit_connect_endp(NULL, NULL, &f), -EINVAL);
        ck_assert_ptr_null(f);
        /* the name does not exist in the context's static table nor DNS */
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_add_rewrite(ctx, "gone.test", "unknown:{host}"));
        tc_err(conduit_connect(ctx, "tcp://a.gone.test:80", &f), CONDUIT_E_NOT_FOUND);
        conduit_ctx_free(ctx);
}
END_TEST

START_TEST(context_outlived_by_flow)
{
        char *uri = NULL;
        conduit_listener *l = tc_listen("tcp://127.0.0.1:0", &uri);
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_READ, 1234));
        conduit_flow *f = NULL, *srv = NULL;
        tc_ok(conduit_connect(ctx, uri, &f));
        conduit_ctx_free(ctx); /* the flow keeps what it needs */
        ck_assert_int_eq(conduit_flow_get_timeout(f, CONDUIT_TIMEOUT_READ), 1234);
        tc_ok(conduit_listener_accept(l, &srv));
        tc_write_all(f, "ok", 2);
        char buf[2];
        ck_assert_int_eq(conduit_flow_read(srv, buf, 2), 2);
        conduit_flow_free(f);
        conduit_flow_free(srv);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

START_TEST(connect_by_endp_and_fd)
{
        char *uri = NULL;
        conduit_listener *l = tc_listen("unix-abstract:conduit-connect-endp", &uri);
        conduit_endp *e;
        tc_ok(conduit_endp_parse(uri, &e));
        conduit_flow *f = NULL, *srv = NULL;
        tc_ok(conduit_connect_endp(NULL, e, &f));
        ck_assert_str_eq(conduit_flow_backend(f), "unix");
        ck_assert(conduit_endp_equal(conduit_flow_peer(f), e));
        tc_ok(conduit_listener_accept(l, &srv));
        /* fd:N borrows the descriptor */
        int fd = conduit_flow_fd(srv);
        char fduri[32];
        snprintf(fduri, sizeof(fduri), "fd:%d", fd);
        conduit_flow *byfd = NULL;
        tc_ok(conduit_connect(NULL, fduri, &byfd));
        ck_assert_str_eq(conduit_flow_backend(byfd), "fd");
        tc_write_all(f, "abc", 3);
        char buf[3];
        ck_assert_int_eq(conduit_flow_read(byfd, buf, 3), 3);
        conduit_flow_free(byfd);
        ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* still open */
        conduit_flow_free(srv);
        conduit_flow_free(f);
        conduit_endp_free(e);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

/* A link-local address is reachable only through its zone. In a private
 * network namespace (this forked test child's own), lo gets fe80::1. */
START_TEST(ipv6_zone_reaches_link_local)
{
        if (unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "# skipped: no network namespace (%s)\n", strerror(errno));
                return;
        }
        ck_assert_int_eq(system("ip link set lo up && ip -6 addr add fe80::1/64 dev lo nodad"), 0);
        char *uri = NULL;
        conduit_listener *l = tc_listen("tcp://[fe80::1%lo]:0", &uri);
        ck_assert_ptr_nonnull(strstr(uri, "[fe80::1%lo]"));
        conduit_flow *c = NULL, *s = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        tc_ok(conduit_listener_accept(l, &s));
        /* the accepted peer carries the zone too */
        char *peer = NULL;
        tc_ok(conduit_endp_format(conduit_flow_peer(s), &peer));
        ck_assert_msg(strstr(peer, "%lo]"), "peer %s has no zone", peer);
        tc_write_all(c, "z", 1);
        char b;
        ck_assert_int_eq(conduit_flow_read(s, &b, 1), 1);
        /* without the zone, or with a zone that does not exist, it fails */
        long long port = conduit_endp_get_port(conduit_listener_endp(l));
        char bad[96];
        conduit_flow *f = NULL;
        snprintf(bad, sizeof(bad), "tcp://[fe80::1]:%lld", port);
        ck_assert_int_lt(conduit_connect(NULL, bad, &f), 0);
        snprintf(bad, sizeof(bad), "tcp://[fe80::1%%nosuchif0]:%lld", port);
        tc_err(conduit_connect(NULL, bad, &f), -ENODEV);
        ck_assert_ptr_null(f);
        free(peer);
        conduit_flow_free(c);
        conduit_flow_free(s);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("connect");
        TCase *tc = tcase_create("connect");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, refused_names_the_address);
        tcase_add_test(tc, unix_missing_and_refused);
        tcase_add_test(tc, deadline_against_silent_peer);
        tcase_add_test(tc, he_silent_v4_first);
        tcase_add_test(tc, he_silent_v6_first);
        tcase_add_test(tc, he_refused_first);
        tcase_add_test(tc, he_deadline_covers_all_attempts);
        tcase_add_test(tc, unsupported_kinds);
        tcase_add_test(tc, bad_targets);
        tcase_add_test(tc, context_outlived_by_flow);
        tcase_add_test(tc, connect_by_endp_and_fd);
        tcase_add_test(tc, ipv6_zone_reaches_link_local);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
