/* SPDX-License-Identifier: MIT */
/* The event API on a libevent event_base: asynchronous connect (evdns,
 * Happy Eyeballs, hybrid vsock, TLS, deadlines, retry, cancel), listeners
 * that run handshakes concurrently, readiness callbacks, the asynchronous
 * close and the bufferevent bridge — clients and servers on one loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common.h"
#include "event-echo.h"
#include "tls-fixtures.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Runs the loop until *done or a bound of seconds passes (a hang fails the
 * test instead of blocking the suite). */
static void run_until(struct event_base *base, const bool *done, int seconds)
{
        struct timeval tick = { 0, 50 * 1000 };
        for (int i = 0; i < seconds * 20 && !*done; i++) {
                /* a pass ends after its events ran or at the tick */
                event_base_loopexit(base, &tick);
                event_base_loop(base, EVLOOP_ONCE);
        }
        ck_assert_msg(*done, "the loop did not finish within %d s", seconds);
}

static void raise_nofile(rlim_t want)
{
        struct rlimit rl;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < want) {
                rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
                ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        }
}

struct connect_result {
        bool done;
        int err;
        conduit_flow *f;
        char msg[512];
};

static void on_connect(conduit_flow *f, int err, void *arg)
{
        struct connect_result *r = arg;
        r->done = true;
        r->err = err;
        r->f = f;
        snprintf(r->msg, sizeof(r->msg), "%s", conduit_ctx_error_message(NULL));
}

static char *fixture_uri(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fixture_uri(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
        va_end(ap);
        return s;
}

/* ---- echo through many clients ---------------------------------------------------- */

static bool under_valgrind(void)
{
        const char *v = getenv("CONDUIT_TEST_VALGRIND");
        return v && strcmp(v, "1") == 0;
}

/* Under valgrind (20 to 50 times slower) the loads shrink to what still
 * exercises every path: 1000 TLS handshakes would take an hour. */
static int scaled(int n)
{
        return under_valgrind() && n > 20 ? 20 : n;
}

static void echo_many(const char *listen_uri, const char *client_fmt, int clients, size_t size)
{
        clients = scaled(clients);
        raise_nofile(8192);
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        struct echo_server srv;
        echo_server_start(&srv, loop, listen_uri);
        char *target = echo_server_uri(&srv, client_fmt);
        struct echo_clients cl;
        echo_clients_start(&cl, loop, target, clients, size);
        run_until(base, &cl.finished, 240);
        ck_assert_msg(cl.failed == 0, "%d of %d clients failed; first: %s", cl.failed, clients,
                      cl.first_error);
        ck_assert_int_eq(cl.ok, clients);
        echo_clients_free(&cl);
        echo_server_stop(&srv);
        free(target);
        conduit_loop_free(loop);
        event_base_free(base);
}

START_TEST(echo_tcp_few)
{
        echo_many("tcp://127.0.0.1:0", "%s", 10, 100000);
}
END_TEST

START_TEST(echo_unix_1000)
{
        char *dir = tc_tmpdir();
        char *uri = fixture_uri("unix://%s/echo.sock", dir);
        echo_many(uri, "%s", 1000, 65536);
        free(uri);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(echo_tls_tcp_1000)
{
        const struct tls_fixtures *fx = tls_fixtures();
        char *uri = fixture_uri("tls+tcp://127.0.0.1:0?cert=%s&key=%s", fx->server_cert,
                                fx->server_key);
        char *client = fixture_uri("%%s?cafile=%s", fx->ca_cert);
        echo_many(uri, client, 1000, 65536);
        free(client);
        free(uri);
}
END_TEST

START_TEST(echo_tls_over_abstract)
{
        const struct tls_fixtures *fx = tls_fixtures();
        char *name = tc_abstract_name();
        char *uri =
                fixture_uri("tls+unix://@%s?cert=%s&key=%s", name, fx->server_cert, fx->server_key);
        char *client = fixture_uri("%%s?cafile=%s&servername=localhost", fx->ca_cert);
        echo_many(uri, client, 50, 200000);
        free(client);
        free(uri);
        free(name);
}
END_TEST

/* ---- stalled clients ---------------------------------------------------------------- */

/* 100 clients connect and send nothing; a normal client is still served
 * well within its deadline (the stalled handshakes wait for minutes). */
static void stalled(bool tls)
{
        raise_nofile(4096);
        const struct tls_fixtures *fx = tls_fixtures();
        struct event_base *base = event_base_new();
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 300000));
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(ctx, base, &loop));
        char *uri = tls ? fixture_uri("tls+tcp://127.0.0.1:0?cert=%s&key=%s", fx->server_cert,
                                      fx->server_key)
                        : fixture_uri("tcp://127.0.0.1:0");
        struct echo_server srv;
        echo_server_start(&srv, loop, uri);
        const conduit_endp *bound = conduit_loop_listener_endp(srv.l);
        struct sockaddr_in sin = { .sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)conduit_endp_get_port(bound)) };
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        int idle[100], nidle = scaled(100);
        for (int i = 0; i < nidle; i++) {
                idle[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(idle[i], 0);
                ck_assert_int_eq(connect(idle[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
        }
        /* the normal client gets 20 s for everything, the idle ones stay */
        char *fmt = tls ? fixture_uri("%%s?cafile=%s&connect_timeout=20s", fx->ca_cert)
                        : fixture_uri("%%s?connect_timeout=20s");
        char *target = echo_server_uri(&srv, fmt);
        struct echo_clients cl;
        echo_clients_start(&cl, loop, target, 1, 4096);
        run_until(base, &cl.finished, 60);
        ck_assert_msg(cl.ok == 1, "the normal client failed: %s", cl.first_error);
        for (int i = 0; i < nidle; i++)
                close(idle[i]);
        echo_clients_free(&cl);
        echo_server_stop(&srv);
        conduit_loop_free(loop);
        conduit_ctx_free(ctx);
        event_base_free(base);
        free(target);
        free(fmt);
        free(uri);
}

START_TEST(stalled_tls_clients)
{
        stalled(true);
}
END_TEST

START_TEST(stalled_plain_clients)
{
        stalled(false);
}
END_TEST

/* A TLS client that stalls is dropped at the handshake timeout, with the
 * reason in the listener's message, and the listener goes on. */
START_TEST(stalled_handshake_times_out)
{
        const struct tls_fixtures *fx = tls_fixtures();
        struct event_base *base = event_base_new();
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        /* short, but long enough for the good clients' handshakes, which
         * share it (valgrind makes them 20 to 50 times slower) */
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE,
                                      under_valgrind() ? 5000 : 200));
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(ctx, base, &loop));
        char *uri = fixture_uri("tls+tcp://127.0.0.1:0?cert=%s&key=%s", fx->server_cert,
                                fx->server_key);
        struct echo_server srv;
        echo_server_start(&srv, loop, uri);
        const conduit_endp *bound = conduit_loop_listener_endp(srv.l);
        struct sockaddr_in sin = { .sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)conduit_endp_get_port(bound)) };
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
        /* the server closes the stalled connection: our read sees EOF */
        bool gone = false;
        for (int i = 0; i < 1500 && !gone; i++) {
                struct timeval tv = { 0, 20000 };
                event_base_loopexit(base, &tv);
                event_base_dispatch(base);
                char c;
                ssize_t n = recv(s, &c, 1, MSG_DONTWAIT);
                gone = n == 0 || (n < 0 && errno != EAGAIN);
        }
        ck_assert_msg(gone, "the stalled client was not dropped");
        ck_assert_msg(strstr(conduit_loop_listener_error_message(srv.l), "timeout"),
                      "listener message: '%s'", conduit_loop_listener_error_message(srv.l));
        close(s);
        /* still serving */
        char *fmt = fixture_uri("%%s?cafile=%s", fx->ca_cert);
        char *target = echo_server_uri(&srv, fmt);
        struct echo_clients cl;
        echo_clients_start(&cl, loop, target, 3, 1000);
        run_until(base, &cl.finished, 60);
        ck_assert_msg(cl.ok == 3, "clients failed: %s", cl.first_error);
        echo_clients_free(&cl);
        echo_server_stop(&srv);
        conduit_loop_free(loop);
        conduit_ctx_free(ctx);
        event_base_free(base);
        free(target);
        free(fmt);
        free(uri);
}
END_TEST

/* At the descriptor limit the listener rests (100 ms at a time) instead
 * of spinning on EMFILE, and serves the waiting clients once descriptors
 * are free again. */
struct log_count {
        int pauses;
};

static void count_pauses(void *arg, int level, const char *msg)
{
        (void)level;
        if (strstr(msg, "pausing accept"))
                ((struct log_count *)arg)->pauses++;
}

START_TEST(listener_emfile_pauses)
{
        /* valgrind keeps descriptors of its own under a lowered limit and
         * emulates RLIMIT_NOFILE: the default and ASan runs cover this */
        if (under_valgrind())
                return;
        struct event_base *base = event_base_new();
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        struct log_count lc = { 0 };
        conduit_ctx_set_log(ctx, count_pauses, &lc);
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(ctx, base, &loop));
        struct echo_server srv;
        echo_server_start(&srv, loop, "tcp://127.0.0.1:0");
        const conduit_endp *bound = conduit_loop_listener_endp(srv.l);
        struct sockaddr_in sin = { .sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)conduit_endp_get_port(bound)) };
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        int cl[3];
        for (int i = 0; i < 3; i++) {
                cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_eq(connect(cl[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
                ck_assert_int_eq(send(cl[i], "ping", 4, MSG_NOSIGNAL), 4);
        }
        /* no descriptor left for accept() (this case runs in its own
         * process: Check forks) */
        struct rlimit old, rl;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        rl = old;
        /* the limit just above the highest descriptor open, and every
         * free one below it taken */
        int high = 0;
        for (int fd = 0; fd < 65536 && fd < (int)old.rlim_cur; fd++)
                if (fcntl(fd, F_GETFD) >= 0)
                        high = fd;
        int fill[256], nfill = 0;
        for (int fd; nfill < 256 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) {
                if (fd > high) {
                        close(fd);
                        break;
                }
                fill[nfill++] = fd;
        }
        rl.rlim_cur = (rlim_t)high + 1;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        struct timeval tv = { 0, 500000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ck_assert_int_eq(srv.accepted, 0);
        /* resting, not spinning: about one try per 100 ms (a spinning
         * listener tries thousands of times in half a second) */
        ck_assert_msg(lc.pauses >= 1 && lc.pauses <= 20, "%d accept pauses", lc.pauses);
        ck_assert_msg(strstr(conduit_loop_listener_error_message(srv.l), "accept"),
                      "listener message: '%s'", conduit_loop_listener_error_message(srv.l));
        /* descriptors again: the waiting clients are served */
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        for (int i = 0; i < nfill; i++)
                close(fill[i]);
        for (int i = 0; i < 3; i++) {
                shutdown(cl[i], SHUT_WR);
                char buf[8];
                size_t got = 0;
                for (int k = 0; k < 2000 && got < 5; k++) {
                        event_base_loop(base, EVLOOP_NONBLOCK);
                        ssize_t n = recv(cl[i], buf + got, sizeof(buf) - got, MSG_DONTWAIT);
                        if (n > 0)
                                got += (size_t)n;
                        else if (n == 0)
                                break;
                        else
                                usleep(5000);
                }
                ck_assert_uint_eq(got, 4);
                ck_assert(memcmp(buf, "ping", 4) == 0);
                close(cl[i]);
        }
        ck_assert_int_eq(srv.accepted, 3);
        echo_server_stop(&srv);
        conduit_loop_free(loop);
        conduit_ctx_free(ctx);
        event_base_free(base);
}
END_TEST

/* ---- resolution, Happy Eyeballs, deadlines, retry, cancel ---------------------- */

/* A TCP listener that never answers (backlog 0 with one connection parked
 * in the queue: the kernel drops further SYNs). */
static int silent_listener(const char *addr, uint16_t *port, int *parked)
{
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(*port) };
        ck_assert_int_eq(inet_pton(AF_INET, addr, &in.sin_addr), 1);
        socklen_t len = sizeof(in);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);
        if (bind(s, (struct sockaddr *)&in, len) < 0) {
                close(s);
                return -1;
        }
        ck_assert_int_eq(listen(s, 0), 0);
        ck_assert_int_eq(getsockname(s, (struct sockaddr *)&in, &len), 0);
        *port = ntohs(in.sin_port);
        *parked = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(*parked, (struct sockaddr *)&in, len), 0);
        return s;
}

static char *write_hosts(const char *dir, const char *text)
{
        char *path = fixture_uri("%s/hosts", dir);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        return path;
}

/* Names from a hosts file the test provides, through evdns; a name it
 * does not list fails as not found (no DNS server needed: resolv.conf is
 * whatever the machine has, and .invalid never resolves). */
START_TEST(evdns_hosts_file)
{
        char *dir = tc_tmpdir();
        char *hosts = write_hosts(dir, "# test hosts\n127.0.0.1 echo.conduit.test echo2\n");
        struct event_base *base = event_base_new();
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_hosts_file(ctx, hosts));
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(ctx, base, &loop));
        struct echo_server srv;
        echo_server_start(&srv, loop, "tcp://127.0.0.1:0");
        unsigned port = conduit_endp_get_port(conduit_loop_listener_endp(srv.l));
        const char *names[] = { "echo.conduit.test", "echo2", "ECHO.conduit.test." };
        for (size_t i = 0; i < 3; i++) {
                char *target = fixture_uri("tcp://%s:%u", names[i], port);
                struct echo_clients cl;
                echo_clients_start(&cl, loop, target, 2, 5000);
                run_until(base, &cl.finished, 60);
                ck_assert_msg(cl.ok == 2, "%s: %s", target, cl.first_error);
                echo_clients_free(&cl);
                free(target);
        }
        /* tls+ over a name: the name is the server name */
        echo_server_stop(&srv);
        struct connect_result r = { 0 };
        char *target = fixture_uri("tcp://nowhere.invalid:%u?connect_timeout=30s", port);
        tc_ok(conduit_loop_connect(loop, target, on_connect, &r, NULL));
        ck_assert(!r.done); /* never from inside the call */
        run_until(base, &r.done, 60);
        ck_assert_msg(r.err == CONDUIT_E_NOT_FOUND || r.err == -ETIMEDOUT, "err %d (%s): %s", r.err,
                      conduit_strerror(r.err), r.msg);
        ck_assert_msg(strstr(r.msg, "nowhere.invalid"), "message: %s", r.msg);
        free(target);
        conduit_loop_free(loop);
        conduit_ctx_free(ctx);
        event_base_free(base);
        unlink(hosts);
        free(hosts);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* he.test lists a silent address first and a live one second: the
 * connect ends on the live one, asynchronously. */
START_TEST(happy_eyeballs_async)
{
        struct event_base *base = event_base_new();
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(ctx, base, &loop));
        struct echo_server srv;
        uint16_t port = 0;
        int s = -1, parked = -1;
        for (int tries = 0; tries < 50 && s < 0; tries++) {
                echo_server_start(&srv, loop, "tcp://127.0.0.1:0");
                port = (uint16_t)conduit_endp_get_port(conduit_loop_listener_endp(srv.l));
                if ((s = silent_listener("127.0.0.2", &port, &parked)) < 0)
                        echo_server_stop(&srv);
        }
        ck_assert_int_ge(s, 0);
        char *dir = tc_tmpdir();
        char *hosts = write_hosts(dir, "127.0.0.2 he.test\n127.0.0.1 he.test\n");
        tc_ok(conduit_ctx_set_hosts_file(ctx, hosts));
        /* the hosts file reaches evdns when the loop first resolves */
        char *target = fixture_uri("tcp://he.test:%u?connect_timeout=30s", port);
        struct echo_clients cl;
        echo_clients_start(&cl, loop, target, 1, 1000);
        run_until(base, &cl.finished, 60);
        ck_assert_msg(cl.ok == 1, "%s", cl.first_error);
        /* a silent peer alone: the deadline */
        struct connect_result r = { 0 };
        char *dead = fixture_uri("tcp://127.0.0.2:%u?connect_timeout=300ms", port);
        tc_ok(conduit_loop_connect(loop, dead, on_connect, &r, NULL));
        run_until(base, &r.done, 60);
        tc_err(r.err, -ETIMEDOUT);
        ck_assert_msg(strstr(r.msg, "timed out"), "message: %s", r.msg);
        ck_assert_ptr_null(r.f);
        free(dead);
        echo_clients_free(&cl);
        echo_server_stop(&srv);
        close(parked);
        close(s);
        conduit_loop_free(loop);
        conduit_ctx_free(ctx);
        event_base_free(base);
        free(target);
        unlink(hosts);
        free(hosts);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(refused_and_unsupported)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        struct echo_server srv;
        echo_server_start(&srv, loop, "tcp://127.0.0.1:0");
        unsigned port = conduit_endp_get_port(conduit_loop_listener_endp(srv.l));
        echo_server_stop(&srv);
        struct connect_result r = { 0 };
        char *target = fixture_uri("tcp://127.0.0.1:%u", port);
        tc_ok(conduit_loop_connect(loop, target, on_connect, &r, NULL));
        run_until(base, &r.done, 30);
        tc_err(r.err, -ECONNREFUSED);
        ck_assert_msg(strstr(r.msg, "127.0.0.1"), "message: %s", r.msg);
        memset(&r, 0, sizeof(r));
        tc_ok(conduit_loop_connect(loop, "vchan://3/x", on_connect, &r, NULL));
        run_until(base, &r.done, 30);
        tc_err(r.err, CONDUIT_E_UNSUPPORTED);
        memset(&r, 0, sizeof(r));
        tc_ok(conduit_loop_connect(loop, "unix:///nonexistent/conduit/x.sock", on_connect, &r,
                                   NULL));
        run_until(base, &r.done, 30);
        tc_err(r.err, -ENOENT);
        /* parse errors come back at once, without a callback */
        tc_err(conduit_loop_connect(loop, "nosuchscheme://x", on_connect, &r, NULL),
               CONDUIT_E_SCHEME);
        free(target);
        conduit_loop_free(loop);
        event_base_free(base);
}
END_TEST

/* A Unix socket whose listen queue is full refuses a non-blocking connect
 * with EAGAIN (TCP would queue the SYN): the connect waits and tries again
 * until the server accepts, instead of failing. */
START_TEST(unix_backlog_full_retries)
{
        char *dir = tc_tmpdir();
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/full.sock", dir);
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
        ck_assert_int_eq(listen(lfd, 0), 0);
        ck_assert_int_eq(fcntl(lfd, F_SETFL, O_NONBLOCK), 0); /* a bug fails, never hangs */
        /* fill the queue with raw clients until the kernel says EAGAIN */
        int fill[16], nfill = 0;
        bool full = false;
        while (!full && nfill < 16) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(fd, 0);
                if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
                        fill[nfill++] = fd;
                        continue;
                }
                ck_assert_int_eq(errno, EAGAIN);
                close(fd);
                full = true;
        }
        ck_assert_msg(full, "the listen queue never filled");

        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        struct connect_result r = { 0 };
        char *target = fixture_uri("unix://%s", sun.sun_path);
        tc_ok(conduit_loop_connect(loop, target, on_connect, &r, NULL));
        /* while the queue stays full the connect cannot complete */
        struct timeval tick = { 0, 20 * 1000 };
        for (int i = 0; i < 10; i++) {
                event_base_loopexit(base, &tick);
                event_base_loop(base, EVLOOP_ONCE);
        }
        ck_assert_msg(!r.done, "connect completed against a full queue: %d (%s)", r.err, r.msg);
        /* one accepted: room for one more, and the retry gets in */
        int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(a, 0);
        run_until(base, &r.done, 30);
        ck_assert_msg(r.err == 0 && r.f, "connect: %d (%s)", r.err, r.msg);
        ck_assert_int_eq(conduit_flow_write(r.f, "z", 1), 1);
        /* the flow's connection is the last in the queue, after the raw
         * ones still there (one of the nfill was accepted above) */
        char got = 0;
        int last = -1;
        for (int i = 0; i < nfill; i++) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                ck_assert_int_ge(fd, 0);
                if (last >= 0)
                        close(last);
                last = fd;
        }
        struct pollfd p = { .fd = last, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 10000), 1);
        ck_assert_int_eq(read(last, &got, 1), 1);
        ck_assert_int_eq(got, 'z');
        close(last);
        close(a);
        for (int i = 0; i < nfill; i++)
                close(fill[i]);
        conduit_flow_free(r.f);
        free(target);
        conduit_loop_free(loop);
        event_base_free(base);
        close(lfd);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* A server socket that appears only after a while: retry= keeps trying. */
struct late_listener {
        conduit_loop *loop;
        char *uri;
        struct echo_server *srv;
};

static void start_late(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        struct late_listener *ll = arg;
        echo_server_start(ll->srv, ll->loop, ll->uri);
}

START_TEST(retry_until_up)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        char *dir = tc_tmpdir();
        struct echo_server srv;
        struct late_listener ll = { loop, fixture_uri("unix://%s/late.sock", dir), &srv };
        struct event *t = evtimer_new(base, start_late, &ll);
        struct timeval tv = { 0, 300000 };
        evtimer_add(t, &tv);
        char *target = fixture_uri("%s?retry=30s", ll.uri);
        struct echo_clients cl;
        echo_clients_start(&cl, loop, target, 1, 1000);
        run_until(base, &cl.finished, 60);
        ck_assert_msg(cl.ok == 1, "%s", cl.first_error);
        echo_clients_free(&cl);
        echo_server_stop(&srv);
        /* nobody ever comes: the retry deadline ends it */
        struct connect_result r = { 0 };
        char *never = fixture_uri("unix://%s/never.sock?retry=300ms", dir);
        tc_ok(conduit_loop_connect(loop, never, on_connect, &r, NULL));
        run_until(base, &r.done, 30);
        tc_err(r.err, -ETIMEDOUT);
        ck_assert_msg(strstr(r.msg, "not up after"), "message: %s", r.msg);
        event_free(t);
        free(never);
        free(target);
        free(ll.uri);
        conduit_loop_free(loop);
        event_base_free(base);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

static void note_ran(conduit_flow *f, int err, void *arg)
{
        (void)err;
        conduit_flow_free(f);
        *(bool *)arg = true;
}

/* Cancelled connects in every phase free everything (ASan and valgrind
 * see leaks; descriptors are counted here). */
START_TEST(cancel_frees_everything)
{
        const struct tls_fixtures *fx = tls_fixtures();
        int fds = tc_fd_count();
        struct event_base *base = event_base_new();
        conduit_ctx *ctx;
        tc_ok(conduit_ctx_new(&ctx));
        char *dir = tc_tmpdir();
        char *hosts = write_hosts(dir, "127.0.0.1 cancel.test\n");
        tc_ok(conduit_ctx_set_hosts_file(ctx, hosts));
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(ctx, base, &loop));
        uint16_t port = 0;
        int parked = -1, s = silent_listener("127.0.0.2", &port, &parked);
        ck_assert_int_ge(s, 0);
        /* a TLS server that never answers the handshake: a raw listener */
        struct echo_server raw;
        echo_server_start(&raw, loop, "tcp://127.0.0.1:0");
        unsigned rawport = conduit_endp_get_port(conduit_loop_listener_endp(raw.l));
        raw.silent = true;
        char *uris[] = {
                fixture_uri("tls+tcp://cancel.test:%u?cafile=%s", rawport, fx->ca_cert),
                fixture_uri("tcp://nowhere.invalid:%u", rawport), /* DNS */
                fixture_uri("tcp://127.0.0.2:%u", port),          /* connecting */
                fixture_uri("tls+tcp://127.0.0.1:%u?cafile=%s", rawport, fx->ca_cert), /* TLS */
                fixture_uri("unix://%s/none.sock?retry=10s", dir), /* retry wait */
        };
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
                for (int step = 0; step < 4; step++) {
                        conduit_connecting *c = NULL;
                        bool ran = false;
                        tc_ok(conduit_loop_connect(loop, uris[i], note_ran, &ran, &c));
                        ck_assert_ptr_nonnull(c);
                        /* let it get somewhere first */
                        for (int k = 0; k < step * 3; k++)
                                event_base_loop(base, EVLOOP_NONBLOCK);
                        if (step == 3) {
                                struct timeval tv = { 0, 100000 };
                                event_base_loopexit(base, &tv);
                                event_base_dispatch(base);
                        }
                        /* only a DNS lookup may fail that fast (no
                         * server); the others wait for seconds */
                        ck_assert_msg(!ran || i == 1, "%s finished early", uris[i]);
                        if (!ran)
                                conduit_connecting_cancel(c);
                }
        }
        /* and pending ones left to conduit_loop_free() */
        bool ran[5] = { false };
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++)
                tc_ok(conduit_loop_connect(loop, uris[i], note_ran, &ran[i], NULL));
        event_base_loop(base, EVLOOP_NONBLOCK);
        echo_server_stop(&raw);
        conduit_loop_free(loop);
        /* lookups cancelled with the loop end on the next pass */
        event_base_loop(base, EVLOOP_NONBLOCK);
        event_base_free(base);
        conduit_ctx_free(ctx);
        close(parked);
        close(s);
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++)
                free(uris[i]);
        unlink(hosts);
        free(hosts);
        tc_rmtree(dir);
        free(dir);
        ck_assert_int_eq(tc_fd_count(), fds);
}
END_TEST

/* ---- hybrid vsock, asynchronously ---------------------------------------------------- */

/* A multiplexer on the loop: answers "CONNECT <port>" with "OK 1073741824"
 * and echoes, or closes at once for port 9 (nobody listens there). */
START_TEST(vsock_mux_async)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        char *dir = tc_tmpdir();
        char *mux = fixture_uri("unix://%s/v:mux.sock", dir);
        struct echo_server srv;
        echo_server_start(&srv, loop, mux);
        srv.mux = true;
        char *target = fixture_uri("vsock-mux://%s/v:mux.sock:1234", dir);
        struct echo_clients cl;
        echo_clients_start(&cl, loop, target, 20, 70000);
        run_until(base, &cl.finished, 60);
        ck_assert_msg(cl.ok == 20, "%s", cl.first_error);
        echo_clients_free(&cl);
        /* closed before OK: refused, which retry= treats as not up yet */
        struct connect_result r = { 0 };
        char *nobody = fixture_uri("vsock-mux://%s/v:mux.sock:9", dir);
        tc_ok(conduit_loop_connect(loop, nobody, on_connect, &r, NULL));
        run_until(base, &r.done, 30);
        tc_err(r.err, -ECONNREFUSED);
        ck_assert_msg(strstr(r.msg, "before OK"), "message: %s", r.msg);
        free(nobody);
        echo_server_stop(&srv);
        conduit_loop_free(loop);
        event_base_free(base);
        free(target);
        free(mux);
        tc_rmtree(dir);
        free(dir);
}
END_TEST

/* ---- watches ------------------------------------------------------------------------ */

struct closing {
        bool done;
        int err;
};

static void on_closed(int err, void *arg)
{
        struct closing *c = arg;
        c->done = true;
        c->err = err;
}

static void idle_cb(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)w, (void)f;
        int *seen = arg;
        *seen |= events;
}

/* Timeout events, the asynchronous close against a peer that answers
 * with EOF and one that never does, and a regular file as a flow. */
START_TEST(watch_timeout_and_close)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        conduit_flow *a, *b;
        tc_ok(conduit_flow_socketpair(&a, &b));
        conduit_watch *w = NULL;
        int seen = 0;
        tc_ok(conduit_loop_watch(loop, a, idle_cb, &seen, &w));
        tc_ok(conduit_watch_set(w, CONDUIT_EV_READ));
        tc_ok(conduit_watch_set_timeout(w, 50));
        bool never = false;
        struct timeval tv = { 0, 300000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ck_assert_int_eq(seen, CONDUIT_EV_TIMEOUT);
        (void)never;
        /* the peer answers our EOF with its own: the close ends with 0 */
        seen = 0;
        struct closing c = { 0 };
        conduit_watch_close(w, on_closed, &c);
        ck_assert(!c.done);
        char buf[8];
        tc_ok(conduit_flow_set_timeout(b, CONDUIT_TIMEOUT_READ, 10000));
        /* b reads the EOF only once the loop ran the close */
        for (int i = 0; i < 100 && !c.done; i++) {
                event_base_loop(base, EVLOOP_NONBLOCK);
                if (i == 5) {
                        ck_assert_int_eq(conduit_flow_read(b, buf, sizeof(buf)), 0);
                        tc_ok(conduit_flow_shutdown(b, CONDUIT_SHUT_WR));
                }
                usleep(1000);
        }
        run_until(base, &c.done, 30);
        ck_assert_int_eq(c.err, 0);
        ck_assert_int_eq(seen, 0);
        conduit_flow_free(b);
        /* a peer that never sends its EOF: the close timeout */
        tc_ok(conduit_flow_socketpair(&a, &b));
        tc_ok(conduit_flow_set_timeout(a, CONDUIT_TIMEOUT_CLOSE, 200));
        tc_ok(conduit_loop_watch(loop, a, idle_cb, &seen, &w));
        memset(&c, 0, sizeof(c));
        conduit_watch_close(w, on_closed, &c);
        run_until(base, &c.done, 30);
        tc_err(c.err, -ETIMEDOUT);
        conduit_flow_free(b);
        /* a regular file never blocks (epoll refuses it) */
        char *dir = tc_tmpdir();
        char *path = fixture_uri("%s/file", dir);
        FILE *fp = fopen(path, "w");
        fputs("hello", fp);
        fclose(fp);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        conduit_flow *ff = NULL;
        tc_ok(conduit_flow_from_fd(fd, CONDUIT_FD_OWN, &ff));
        seen = 0;
        tc_ok(conduit_loop_watch(loop, ff, idle_cb, &seen, &w));
        tc_ok(conduit_watch_set(w, CONDUIT_EV_READ));
        tv.tv_usec = 100000;
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ck_assert_int_eq(seen, CONDUIT_EV_READ);
        conduit_watch_free(w);
        free(path);
        tc_rmtree(dir);
        free(dir);
        conduit_loop_free(loop);
        event_base_free(base);
}
END_TEST

/* A flow over two descriptors, one of which cannot be polled: reading a
 * regular file is always ready, writing into a full pipe is not — a watch
 * for WRITE must stay quiet (no spinning), one for READ fires. */
static void count_cb(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)w, (void)f;
        int *n = arg;
        if (events & CONDUIT_EV_READ)
                n[0]++;
        if (events & CONDUIT_EV_WRITE)
                n[1]++;
}

START_TEST(watch_mixed_descriptors)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        char *dir = tc_tmpdir();
        char *path = fixture_uri("%s/file", dir);
        FILE *fp = fopen(path, "w");
        fputs("data", fp);
        fclose(fp);
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        char junk[4096] = { 0 };
        while (write(p[1], junk, sizeof(junk)) > 0)
                ;
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_from_fds(rfd, p[1], CONDUIT_FD_OWN, &f));
        conduit_watch *w = NULL;
        int n[2] = { 0, 0 };
        tc_ok(conduit_loop_watch(loop, f, count_cb, n, &w));
        tc_ok(conduit_watch_set(w, CONDUIT_EV_WRITE));
        struct timeval tv = { 0, 200000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ck_assert_msg(n[1] == 0, "WRITE fired %d times into a full pipe", n[1]);
        tc_ok(conduit_watch_set(w, CONDUIT_EV_READ | CONDUIT_EV_WRITE));
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ck_assert_int_gt(n[0], 0);
        ck_assert_int_eq(n[1], 0);
        /* room in the pipe: WRITE fires */
        while (read(p[0], junk, sizeof(junk)) > 0)
                ;
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        ck_assert_int_gt(n[1], 0);
        conduit_watch_free(w);
        close(p[0]);
        conduit_loop_free(loop);
        event_base_free(base);
        tc_rmtree(dir);
        free(path);
        free(dir);
}
END_TEST

/* An accept callback that frees its listener, with more clients (TLS, so
 * that handshakes may finish inside the listener's own accept pass)
 * waiting: exactly one flow is delivered and nothing touches the freed
 * listener (ASan and valgrind would see it). */
struct free_on_first {
        conduit_loop_listener *l;
        int delivered;
        conduit_flow *f;
};

static void free_on_first_cb(conduit_flow *f, void *arg)
{
        struct free_on_first *x = arg;
        x->delivered++;
        if (x->f)
                conduit_flow_free(f);
        else
                x->f = f;
        x->l = conduit_loop_listener_free(x->l);
}

struct tls_client_arg {
        char *uri;
        int err;
};

static void *tls_client_thread(void *arg)
{
        struct tls_client_arg *a = arg;
        conduit_flow *f = NULL;
        a->err = conduit_connect(NULL, a->uri, &f);
        if (a->err == 0) {
                char c;
                /* until the server goes */
                conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, 60000);
                conduit_flow_read(f, &c, 1);
                conduit_flow_free(f);
        }
        return NULL;
}

START_TEST(listener_freed_in_callback)
{
        const struct tls_fixtures *fx = tls_fixtures();
        for (int tls = 0; tls < 2; tls++) {
                struct event_base *base = event_base_new();
                conduit_loop *loop = NULL;
                tc_ok(conduit_loop_new(NULL, base, &loop));
                char *uri = tls ? fixture_uri("tls+tcp://127.0.0.1:0?cert=%s&key=%s",
                                              fx->server_cert, fx->server_key)
                                : fixture_uri("tcp://127.0.0.1:0");
                struct free_on_first x = { 0 };
                tc_ok(conduit_loop_listen(loop, uri, free_on_first_cb, &x, &x.l));
                char *u = NULL;
                tc_ok(conduit_endp_format(conduit_loop_listener_endp(x.l), &u));
                struct tls_client_arg a[4];
                pthread_t t[4];
                for (int i = 0; i < 4; i++) {
                        a[i].uri = tls ? fixture_uri("%s?cafile=%s", u, fx->ca_cert)
                                       : fixture_uri("%s", u);
                        t[i] = tc_spawn(tls_client_thread, &a[i]);
                }
                /* let the clients' connects (and ClientHellos) queue up */
                usleep(200000);
                bool done = false;
                for (int i = 0; i < 100 && !done; i++) {
                        struct timeval tv = { 0, 20000 };
                        event_base_loopexit(base, &tv);
                        event_base_dispatch(base);
                        done = x.delivered > 0 && !x.l;
                }
                ck_assert_int_eq(x.delivered, 1);
                ck_assert_ptr_null(x.l);
                conduit_flow_free(x.f);
                conduit_loop_free(loop); /* the others' connections go */
                for (int i = 0; i < 4; i++) {
                        tc_join(t[i]);
                        free(a[i].uri);
                }
                event_base_free(base);
                free(u);
                free(uri);
        }
}
END_TEST

/* ---- the bufferevent bridge ---------------------------------------------------------- */

struct bev_side {
        struct evbuffer *got;
        bool eof;
        bool error;
        size_t to_send;
};

static void bev_read(struct bufferevent *bev, void *arg)
{
        struct bev_side *s = arg;
        if (s->eof)
                s->error = true; /* data after the EOF */
        evbuffer_add_buffer(s->got, bufferevent_get_input(bev));
}

static void bev_event(struct bufferevent *bev, short what, void *arg)
{
        struct bev_side *s = arg;
        if (what & BEV_EVENT_EOF) {
                evbuffer_add_buffer(s->got, bufferevent_get_input(bev));
                s->eof = true;
        }
        if (what & BEV_EVENT_ERROR)
                s->error = true;
}

/* A TLS flow (over TCP) used through the bufferevent API against the
 * echo server: 1 MiB out, the write side finished, the echo and the EOF
 * back. */
START_TEST(bufferevent_bridge_tls)
{
        const struct tls_fixtures *fx = tls_fixtures();
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        char *uri = fixture_uri("tls+tcp://127.0.0.1:0?cert=%s&key=%s", fx->server_cert,
                                fx->server_key);
        struct echo_server srv;
        echo_server_start(&srv, loop, uri);
        char *fmt = fixture_uri("%%s?cafile=%s", fx->ca_cert);
        char *target = echo_server_uri(&srv, fmt);
        struct connect_result r = { 0 };
        tc_ok(conduit_loop_connect(loop, target, on_connect, &r, NULL));
        run_until(base, &r.done, 30);
        tc_ok(r.err);
        struct bufferevent *bev = NULL;
        tc_ok(conduit_loop_bufferevent(loop, r.f, 0, &bev));
        struct bev_side side = { .got = evbuffer_new() };
        bufferevent_setcb(bev, bev_read, NULL, bev_event, &side);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        size_t n = 1 << 20;
        uint8_t *data = malloc(n);
        tc_fill(data, n, 7);
        bufferevent_write(bev, data, n);
        bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
        run_until(base, &side.eof, 60);
        ck_assert(!side.error);
        ck_assert_uint_eq(evbuffer_get_length(side.got), n);
        ck_assert(memcmp(evbuffer_pullup(side.got, -1), data, n) == 0);
        bufferevent_free(bev);
        evbuffer_free(side.got);
        free(data);
        echo_server_stop(&srv);
        conduit_loop_free(loop);
        event_base_free(base);
        free(target);
        free(fmt);
        free(uri);
}
END_TEST

/* The peer resets: the bufferevent sees BEV_EVENT_ERROR; and a bridge
 * freed after conduit_loop_free() (before event_base_free()). */
START_TEST(bufferevent_bridge_error_and_cleanup)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        conduit_flow *a, *b;
        tc_ok(conduit_flow_socketpair(&a, &b));
        struct bufferevent *bev = NULL;
        tc_ok(conduit_loop_bufferevent(loop, a, 0, &bev));
        struct bev_side side = { .got = evbuffer_new() };
        bufferevent_setcb(bev, bev_read, NULL, bev_event, &side);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        /* data, then a reset: SO_LINGER 0 with unread data */
        tc_write_all(b, "hello", 5);
        bufferevent_write(bev, "x", 1);
        bool got5 = false;
        for (int i = 0; i < 200 && !got5; i++) {
                event_base_loop(base, EVLOOP_NONBLOCK);
                got5 = evbuffer_get_length(side.got) == 5;
                usleep(1000);
        }
        ck_assert(got5);
        int fd = conduit_flow_fd(b);
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conduit_flow_free(b);
        bool end = false;
        for (int i = 0; i < 2000 && !end; i++) {
                event_base_loop(base, EVLOOP_NONBLOCK);
                end = side.error || side.eof;
                usleep(1000);
        }
        ck_assert_msg(side.error || side.eof, "no event after the peer went");
        bufferevent_free(bev);
        /* one that outlives the loop: it belongs to its bufferevent */
        tc_ok(conduit_flow_socketpair(&a, &b));
        tc_ok(conduit_loop_bufferevent(loop, a, 0, &bev));
        conduit_loop_free(loop);
        bufferevent_free(bev);
        conduit_flow_free(b);
        evbuffer_free(side.got);
        event_base_free(base);
}
END_TEST

/* A program that throttles with a read high-watermark on the bridge's
 * bufferevent: every byte arrives, then the EOF (libevent's filter over a
 * pair strands data under such a watermark unless the bridge pulls it). */
struct wm_side {
        size_t got;
        bool eof, error;
        uint8_t *want;
        bool bad;
};

static void wm_read(struct bufferevent *bev, void *arg)
{
        struct wm_side *s = arg;
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t n = evbuffer_get_length(in);
        if (n == 0)
                return;
        if (s->eof)
                s->bad = true; /* data after the EOF */
        uint8_t *p = evbuffer_pullup(in, -1);
        if (memcmp(p, s->want + s->got, n) != 0)
                s->bad = true;
        s->got += n;
        evbuffer_drain(in, n);
}

static void wm_event(struct bufferevent *bev, short what, void *arg)
{
        (void)bev;
        struct wm_side *s = arg;
        if (what & BEV_EVENT_EOF)
                s->eof = true;
        if (what & BEV_EVENT_ERROR)
                s->error = true;
}

struct sender {
        conduit_flow *f;
        const uint8_t *data;
        size_t n;
};

static void *sender_thread(void *arg)
{
        struct sender *s = arg;
        tc_write_all(s->f, s->data, s->n);
        conduit_flow_shutdown(s->f, CONDUIT_SHUT_WR);
        return NULL;
}

START_TEST(bufferevent_bridge_watermark)
{
        struct event_base *base = event_base_new();
        conduit_loop *loop = NULL;
        tc_ok(conduit_loop_new(NULL, base, &loop));
        conduit_flow *a, *b;
        tc_ok(conduit_flow_socketpair(&a, &b));
        struct bufferevent *bev = NULL;
        tc_ok(conduit_loop_bufferevent(loop, a, 0, &bev));
        size_t n = 6 * 1024 * 1024 + 7;
        uint8_t *data = malloc(n);
        tc_fill(data, n, 11);
        struct wm_side side = { .want = data };
        bufferevent_setwatermark(bev, EV_READ, 0, 65536);
        bufferevent_setcb(bev, wm_read, NULL, wm_event, &side);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        struct sender snd = { b, data, n };
        pthread_t t = tc_spawn(sender_thread, &snd);
        run_until(base, &side.eof, 120);
        tc_join(t);
        ck_assert(!side.error && !side.bad);
        ck_assert_uint_eq(side.got, n);
        bufferevent_free(bev);
        conduit_flow_free(b);
        conduit_loop_free(loop);
        event_base_loop(base, EVLOOP_NONBLOCK);
        event_base_free(base);
        free(data);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("event");
        TCase *tc = tcase_create("event");
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, echo_tcp_few);
        tcase_add_test(tc, refused_and_unsupported);
        tcase_add_test(tc, unix_backlog_full_retries);
        tcase_add_test(tc, evdns_hosts_file);
        tcase_add_test(tc, happy_eyeballs_async);
        tcase_add_test(tc, retry_until_up);
        tcase_add_test(tc, cancel_frees_everything);
        tcase_add_test(tc, vsock_mux_async);
        tcase_add_test(tc, watch_timeout_and_close);
        tcase_add_test(tc, bufferevent_bridge_tls);
        tcase_add_test(tc, bufferevent_bridge_error_and_cleanup);
        tcase_add_test(tc, bufferevent_bridge_watermark);
        tcase_add_test(tc, stalled_handshake_times_out);
        tcase_add_test(tc, listener_emfile_pauses);
        tcase_add_test(tc, listener_freed_in_callback);
        tcase_add_test(tc, watch_mixed_descriptors);
        tcase_add_test(tc, stalled_plain_clients);
        tcase_add_test(tc, stalled_tls_clients);
        tcase_add_test(tc, echo_tls_over_abstract);
        tcase_add_test(tc, echo_unix_1000);
        tcase_add_test(tc, echo_tls_tcp_1000);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
