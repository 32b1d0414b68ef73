/* SPDX-License-Identifier: MIT */
/* Listeners: TCP families and wildcards, port 0, Unix paths (modes,
 * unlink, long paths, relative paths), abstract names, inherited sockets,
 * accept timeouts and EMFILE. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* Connects to uri and accepts on l; asserts a byte goes through. */
static void roundtrip(conduit_listener *l, const char *uri)
{
        conduit_flow *c = NULL, *s = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        tc_ok(conduit_listener_accept(l, &s));
        tc_write_all(c, "q", 1);
        char b;
        ck_assert_int_eq(conduit_flow_read(s, &b, 1), 1);
        ck_assert_int_eq(b, 'q');
        /* the server's view of the client is the client's own address */
        if (conduit_endp_get_kind(conduit_flow_peer(s)) == CONDUIT_ENDP_TCP)
                ck_assert(conduit_endp_equal(conduit_flow_peer(s), conduit_flow_local(c)));
        conduit_flow_free(c);
        conduit_flow_free(s);
}

START_TEST(tcp_port_zero)
{
        static const char *const uris[] = { "tcp://127.0.0.1:0", "tcp://[::1]:0",
                                            "tcp://localhost:0" };
        for (size_t i = 0; i < 3; i++) {
                char *uri = NULL;
                conduit_listener *l = tc_listen(uris[i], &uri);
                long long port = conduit_endp_get_port(conduit_listener_endp(l));
                ck_assert_msg(port > 0 && port < 65536, "%s bound port %lld", uris[i], port);
                ck_assert_int_ge(conduit_listener_fd(l), 0);
                ck_assert(fcntl(conduit_listener_fd(l), F_GETFD) & FD_CLOEXEC);
                roundtrip(l, uri);
                conduit_listener_free(l);
                free(uri);
        }
}
END_TEST

static void connect_expect(const char *host, long long port, int want)
{
        char uri[96];
        snprintf(uri, sizeof(uri), "tcp://%s:%lld", host, port);
        conduit_flow *c = NULL;
        int r = conduit_connect(NULL, uri, &c);
        if (want == 0) {
                tc_ok(r);
                conduit_flow_free(c);
        } else {
                tc_err(r, want);
        }
}

/* Listens on uri (one family) and binds the same port on the other
 * family's loopback address without listening. */
static conduit_listener *single_family_listener(const char *uri, int other, long long *port,
                                                int *hold)
{
        for (int tries = 0; tries < 50; tries++) {
                conduit_listener *l = tc_listen(uri, NULL);
                *port = conduit_endp_get_port(conduit_listener_endp(l));
                struct sockaddr_in in = { .sin_family = AF_INET,
                                          .sin_port = htons((uint16_t)*port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
                                            .sin6_port = htons((uint16_t)*port),
                                            .sin6_addr = IN6ADDR_LOOPBACK_INIT };
                *hold = socket(other, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int one = 1;
                setsockopt(*hold, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (other == AF_INET ? bind(*hold, (struct sockaddr *)&in, sizeof(in)) == 0
                                     : bind(*hold, (struct sockaddr *)&in6, sizeof(in6)) == 0)
                        return l;
                close(*hold);
                conduit_listener_free(l);
        }
        ck_abort_msg("no port free in both families");
        return NULL;
}

START_TEST(tcp_wildcards)
{
        int hold;
        /* tcp://:0 serves both families; tcp4 only IPv4; tcp6 only IPv6 */
        conduit_listener *l = tc_listen("tcp://:0", NULL);
        long long port = conduit_endp_get_port(conduit_listener_endp(l));
        char *printed = NULL;
        tc_ok(conduit_endp_format(conduit_listener_endp(l), &printed));
        char want[64];
        snprintf(want, sizeof(want), "tcp://:%lld", port);
        ck_assert_str_eq(printed, want);
        free(printed);
        for (int i = 0; i < 2; i++) {
                connect_expect(i ? "[::1]" : "127.0.0.1", port, 0);
                conduit_flow *s = NULL;
                tc_ok(conduit_listener_accept(l, &s));
                conduit_flow_free(s);
        }
        conduit_listener_free(l);

        /* one family only: the other family's port is held by a bound,
         * non-listening socket of ours, so nobody else can answer there */
        l = single_family_listener("tcp6://:0", AF_INET, &port, &hold);
        connect_expect("127.0.0.1", port, -ECONNREFUSED);
        connect_expect("[::1]", port, 0);
        conduit_listener_free(l);
        close(hold);

        l = single_family_listener("tcp4://:0", AF_INET6, &port, &hold);
        connect_expect("[::1]", port, -ECONNREFUSED);
        connect_expect("127.0.0.1", port, 0);
        close(hold);
        conduit_listener_free(l);
}
END_TEST

START_TEST(tcp_address_in_use)
{
        char *uri = NULL;
        conduit_listener *l = tc_listen("tcp://127.0.0.1:0", &uri);
        conduit_listener *again = NULL;
        tc_err(conduit_listen(NULL, uri, &again), -EADDRINUSE);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), uri));
        ck_assert_ptr_null(again);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

START_TEST(unix_path_lifecycle)
{
        char *dir = tc_tmpdir();
        char path[512], uri[600];
        snprintf(path, sizeof(path), "%s/srv.sock", dir);
        snprintf(uri, sizeof(uri), "unix://%s", path);
        conduit_listener *l = tc_listen(uri, NULL);
        ck_assert(fcntl(conduit_listener_fd(l), F_GETFD) & FD_CLOEXEC);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        roundtrip(l, uri);
        /* a second listener on the same path: in use, the first one's file
         * stays */
        conduit_listener *l2 = NULL;
        tc_err(conduit_listen(NULL, uri, &l2), -EADDRINUSE);
        conduit_listener_free(l);
        ck_assert_msg(stat(path, &st) < 0 && errno == ENOENT, "socket file left behind");

        /* a stale socket file: in use without unlink=1, replaced with it */
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        ck_assert_uint_lt(strlen(path), sizeof(un.sun_path));
        memcpy(un.sun_path, path, strlen(path) + 1);
        ck_assert_int_eq(bind(s, (struct sockaddr *)&un, sizeof(un)), 0);
        close(s);
        tc_err(conduit_listen(NULL, uri, &l2), -EADDRINUSE);
        char uri2[700];
        snprintf(uri2, sizeof(uri2), "%s?unlink=1&mode=0600", uri);
        l = tc_listen(uri2, NULL);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        roundtrip(l, uri);
        conduit_listener_free(l);

        /* unlink=1 never removes something that is not a socket */
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
        tc_err(conduit_listen(NULL, uri2, &l2), -EADDRINUSE);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "not a socket"));
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(unix_mode_other_values)
{
        char *dir = tc_tmpdir();
        char uri[600], path[512];
        snprintf(path, sizeof(path), "%s/m.sock", dir);
        snprintf(uri, sizeof(uri), "unix://%s?mode=0666", path);
        conduit_listener *l = tc_listen(uri, NULL);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0666);
        conduit_listener_free(l);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(unix_relative_path)
{
        char *dir = tc_tmpdir();
        char old[4096];
        ck_assert_ptr_nonnull(getcwd(old, sizeof(old)));
        ck_assert_int_eq(chdir(dir), 0);
        conduit_listener *l = tc_listen("unix:rel.sock", NULL);
        struct stat st;
        ck_assert_int_eq(stat("rel.sock", &st), 0);
        roundtrip(l, "unix:rel.sock");
        conduit_listener_free(l);
        ck_assert_int_ne(stat("rel.sock", &st), 0);
        ck_assert_int_eq(chdir(old), 0);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(unix_long_path)
{
        /* longer than sun_path (108): reached through the directory, never
         * truncated */
        char *dir = tc_tmpdir();
        char path[1024], uri[1100];
        int n = snprintf(path, sizeof(path), "%s/", dir);
        for (int i = 0; i < 3; i++) {
                memset(path + n, 'd' + i, 60);
                n += 60;
                path[n] = '\0';
                ck_assert_int_eq(mkdir(path, 0700), 0);
                path[n++] = '/';
        }
        snprintf(path + n, sizeof(path) - (size_t)n, "long-name.sock");
        ck_assert_int_gt(strlen(path), 200);
        snprintf(uri, sizeof(uri), "unix://%s", path);
        conduit_listener *l = tc_listen(uri, NULL);
        struct stat st;
        ck_assert_msg(stat(path, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at the full path");
        size_t len = 0;
        ck_assert_str_eq(conduit_endp_get_path(conduit_listener_endp(l), &len), path);
        ck_assert_uint_eq(len, strlen(path));
        conduit_flow *c = NULL, *s = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        tc_ok(conduit_listener_accept(l, &s));
        /* the client reports the path it asked for, not a /proc detour */
        ck_assert_str_eq(conduit_endp_get_path(conduit_flow_peer(c), NULL), path);
        conduit_flow_free(c);
        conduit_flow_free(s);
        conduit_listener_free(l);
        ck_assert_int_ne(stat(path, &st), 0);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(abstract_exact_length)
{
        char *name = tc_abstract_name();
        char uri[256], with_nul[256];
        snprintf(uri, sizeof(uri), "unix-abstract:%s", name);
        snprintf(with_nul, sizeof(with_nul), "unix-abstract:%s%%00tail", name);
        conduit_listener *l = tc_listen(with_nul, NULL);
        size_t len = 0;
        conduit_endp_get_path(conduit_listener_endp(l), &len);
        ck_assert_uint_eq(len, strlen(name) + 5);
        /* the name without the tail is another socket */
        conduit_flow *c = NULL;
        tc_err(conduit_connect(NULL, uri, &c), -ECONNREFUSED);
        roundtrip(l, with_nul);
        conduit_listener_free(l);
        /* systemd's @name spelling reaches the same socket */
        l = tc_listen(uri, NULL);
        char at[256];
        snprintf(at, sizeof(at), "@%s", name);
        roundtrip(l, at);
        conduit_listener_free(l);
        free(name);
}
END_TEST

START_TEST(inherited_listening_socket)
{
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = { .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        ck_assert_int_eq(bind(s, (struct sockaddr *)&in, sizeof(in)), 0);
        ck_assert_int_eq(listen(s, 8), 0);
        socklen_t len = sizeof(in);
        getsockname(s, (struct sockaddr *)&in, &len);
        char fduri[32], uri[64];
        snprintf(fduri, sizeof(fduri), "fd:%d", s);
        snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", ntohs(in.sin_port));
        conduit_listener *l = tc_listen(fduri, NULL);
        ck_assert_int_eq(conduit_listener_fd(l), s);
        roundtrip(l, uri);
        conduit_listener_free(l);
        ck_assert_int_ge(fcntl(s, F_GETFD), 0); /* borrowed: still open */
        close(s);

        /* a descriptor that does not listen is refused */
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        snprintf(fduri, sizeof(fduri), "fd:%d", sv[0]);
        tc_err(conduit_listen(NULL, fduri, &l), -EINVAL);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

START_TEST(accept_timeout_and_nonblocking)
{
        conduit_listener *l = tc_listen("tcp://127.0.0.1:0", NULL);
        conduit_flow *f = NULL;
        tc_ok(conduit_listener_set_timeout(l, 100));
        tc_err(conduit_listener_accept(l, &f), -ETIMEDOUT);
        ck_assert_str_eq(conduit_listener_error_message(l), "accept timed out");
        tc_ok(conduit_listener_set_timeout(l, -1));
        tc_ok(conduit_listener_set_nonblocking(l, true));
        tc_err(conduit_listener_accept(l, &f), -EAGAIN);
        ck_assert_ptr_null(f);
        conduit_listener_free(l);
        ck_assert_ptr_null(conduit_listener_free(NULL));
}
END_TEST

START_TEST(emfile_returns_then_recovers)
{
        /* valgrind virtualises RLIMIT_NOFILE: the kernel accepts, valgrind
         * then closes the new descriptor and reports EMFILE, losing the
         * connection this test relies on. */
        if (getenv("CONDUIT_UNDER_VALGRIND"))
                return;
        char *uri = NULL;
        conduit_listener *l = tc_listen("tcp://127.0.0.1:0", &uri);
        /* never hang: a lost connection shows as a timeout */
        tc_ok(conduit_listener_set_timeout(l, 10000));
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        /* leave no descriptor free, then accept: an error, not a spin */
        struct rlimit old, lim;
        getrlimit(RLIMIT_NOFILE, &old);
        int used = tc_fd_count();
        lim = old;
        lim.rlim_cur = (rlim_t)used + 1;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
        int spare = -1;
        for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
                spare = fd;
        conduit_flow *s = NULL;
        tc_err(conduit_listener_accept(l, &s), -EMFILE);
        tc_err(conduit_listener_accept(l, &s), -EMFILE);
        ck_assert_ptr_null(s);
        /* the connection stayed queued: freeing one descriptor is enough */
        ck_assert_int_ge(spare, 0);
        close(spare);
        tc_ok(conduit_listener_accept(l, &s));
        tc_write_all(c, "z", 1);
        char b;
        ck_assert_int_eq(conduit_flow_read(s, &b, 1), 1);
        setrlimit(RLIMIT_NOFILE, &old);
        conduit_flow_free(s);
        conduit_flow_free(c);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

START_TEST(unsupported_listeners)
{
        conduit_listener *l = NULL;
        tc_err(conduit_listen(NULL, "vchan://0/x", &l), CONDUIT_E_UNSUPPORTED);
        /* a TLS listener without a certificate fails at once, not per client */
        tc_err(conduit_listen(NULL, "tls+tcp://127.0.0.1:0", &l), CONDUIT_E_TLS);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "cert="));
        tc_err(conduit_listen(NULL, "unix:", &l), -EINVAL);
        tc_err(conduit_listen(NULL, "bogus://x", &l), CONDUIT_E_SCHEME);
        ck_assert_ptr_null(l);
}
END_TEST

START_TEST(unlink_spares_a_live_listener)
{
        char *dir = tc_tmpdir();
        char uri[600], path[512];
        snprintf(path, sizeof(path), "%s/live.sock", dir);
        snprintf(uri, sizeof(uri), "unix://%s?unlink=1", path);
        conduit_listener *live = tc_listen(uri, NULL);
        conduit_listener *l2 = NULL;
        tc_err(conduit_listen(NULL, uri, &l2), -EADDRINUSE);
        ck_assert_ptr_nonnull(strstr(conduit_ctx_error_message(NULL), "live"));
        ck_assert_ptr_null(l2);
        /* the probe that found it live was a connection that closed at
         * once; then the first listener still owns the path and answers */
        conduit_flow *probe = NULL;
        tc_ok(conduit_listener_accept(live, &probe));
        char b;
        ck_assert_int_eq(conduit_flow_read(probe, &b, 1), 0);
        conduit_flow_free(probe);
        char plain[600];
        snprintf(plain, sizeof(plain), "unix://%s", path);
        roundtrip(live, plain);
        conduit_listener_free(live);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(forked_child_leaves_the_socket_file)
{
        char *dir = tc_tmpdir();
        char uri[600], path[512];
        snprintf(path, sizeof(path), "%s/fork.sock", dir);
        snprintf(uri, sizeof(uri), "unix://%s", path);
        conduit_listener *l = tc_listen(uri, NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* a child that cleans up what it inherited */
                conduit_listener_free(l);
                _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        struct stat st;
        ck_assert_msg(stat(path, &st) == 0, "the child removed the parent's socket file");
        roundtrip(l, uri);
        conduit_listener_free(l);
        ck_assert_int_ne(stat(path, &st), 0);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* An accepted Unix flow's peer is the client's address — unnamed, or the
 * name the client bound — and stays known after the client has gone (the
 * listener asks for it when it is first wanted). */
START_TEST(unix_peer_after_client_gone)
{
        char *name = tc_abstract_name(), *lname = tc_abstract_name(), *luri = NULL, *uri = NULL;
        ck_assert_int_ge(asprintf(&luri, "unix-abstract:%s", lname), 0);
        conduit_listener *l = tc_listen(luri, &uri);
        conduit_flow *s = NULL;
        /* an unnamed client */
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        tc_ok(conduit_listener_accept(l, &s));
        conduit_flow_free(c);
        const conduit_endp *peer = conduit_flow_peer(s);
        ck_assert_ptr_nonnull(peer);
        ck_assert_int_eq(conduit_endp_get_kind(peer), CONDUIT_ENDP_UNIX);
        size_t len = 99;
        ck_assert_ptr_nonnull(conduit_endp_get_path(peer, &len));
        ck_assert_uint_eq(len, 0);
        conduit_flow_free(s);
        /* a client bound to an abstract name */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t n = strlen(name);
        memcpy(sa.sun_path + 1, name, n);
        socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, salen), 0);
        struct sockaddr_storage ls;
        socklen_t lslen = 0;
        tc_ok(conduit_endp_to_sockaddr(conduit_listener_endp(l), &ls, &lslen));
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&ls, lslen), 0);
        tc_ok(conduit_listener_accept(l, &s));
        close(fd);
        peer = conduit_flow_peer(s);
        ck_assert_ptr_nonnull(peer);
        ck_assert(conduit_endp_is_abstract(peer));
        const char *got = conduit_endp_get_path(peer, &len);
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(got, name, n) == 0);
        conduit_flow_free(s);
        conduit_listener_free(l);
        free(uri);
        free(luri);
        free(lname);
        free(name);
}
END_TEST

START_TEST(borrowed_socket_flags_untouched)
{
        for (int nb = 0; nb < 2; nb++) {
                int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nb ? SOCK_NONBLOCK : 0), 0);
                struct sockaddr_in in = { .sin_family = AF_INET,
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                ck_assert_int_eq(bind(s, (struct sockaddr *)&in, sizeof(in)), 0);
                ck_assert_int_eq(listen(s, 8), 0);
                int before = fcntl(s, F_GETFL);
                char fduri[32];
                snprintf(fduri, sizeof(fduri), "fd:%d", s);
                conduit_listener *l = tc_listen(fduri, NULL);
                conduit_flow *f = NULL;
                tc_ok(conduit_listener_set_timeout(l, 50));
                tc_err(conduit_listener_accept(l, &f), -ETIMEDOUT);
                ck_assert_int_eq(fcntl(s, F_GETFL), before);
                tc_ok(conduit_listener_set_timeout(l, -1));
                tc_ok(conduit_listener_set_nonblocking(l, true));
                tc_err(conduit_listener_accept(l, &f), -EAGAIN);
                ck_assert_int_eq(fcntl(s, F_GETFL), before);
                conduit_listener_free(l);
                ck_assert_int_eq(fcntl(s, F_GETFL), before);
                close(s);
        }
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("listener");
        TCase *tc = tcase_create("listener");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, tcp_port_zero);
        tcase_add_test(tc, tcp_wildcards);
        tcase_add_test(tc, tcp_address_in_use);
        tcase_add_test(tc, unix_path_lifecycle);
        tcase_add_test(tc, unix_mode_other_values);
        tcase_add_test(tc, unix_relative_path);
        tcase_add_test(tc, unix_long_path);
        tcase_add_test(tc, abstract_exact_length);
        tcase_add_test(tc, inherited_listening_socket);
        tcase_add_test(tc, accept_timeout_and_nonblocking);
        tcase_add_test(tc, emfile_returns_then_recovers);
        tcase_add_test(tc, unsupported_listeners);
        tcase_add_test(tc, unlink_spares_a_live_listener);
        tcase_add_test(tc, forked_child_leaves_the_socket_file);
        tcase_add_test(tc, borrowed_socket_flags_untouched);
        tcase_add_test(tc, unix_peer_after_client_gone);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
