/* SPDX-License-Identifier: MIT */
/* The event API (include/conduit/event.h) over AF_VSOCK, Hyper-V sockets
 * and TLS over vsock: the echo server and clients of event-echo.c on one
 * event_base, TLS clients the listener drops, refused ports reported
 * through the callback, the flow an asynchronous connect hands over,
 * retry= against a listener that comes up later, and the bufferevent
 * bridge over TLS over vsock with half-close.
 *
 * Runs only inside the QEMU guest of tests/vm/ (guest-tests.sh sets
 * CONDUIT_VM_GUEST=1 there), whose one vsock transport is vsock_loopback:
 * CID 1 is the guest itself. Anywhere else it skips: on a VM, an AF_VSOCK
 * connect reaches the hypervisor running it. meson builds it but never
 * registers it as a host test.
 *
 * Results are asserted, never timings: each wait on the loop is bounded
 * only so that a hang fails the case instead of blocking the guest. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common.h"
#include "event-echo.h"
#include "tls-fixtures.h"

#define TIMEOUT_S 120
#define CLIENTS   50
#define SIZE      65536

/* ---- helpers ------------------------------------------------------------------------ */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
        va_list ap;
        char *s = NULL;
        va_start(ap, f);
        int n = vasprintf(&s, f, ap);
        va_end(ap);
        ck_assert_int_ge(n, 0);
        return s;
}

/* An event_base, the loop on it and the loop's context. */
struct ev {
        struct event_base *base;
        conduit_ctx *ctx;
        conduit_loop *loop;
};

#define PATIENT 120000

/* TLS handshakes get handshake_ms, on both sides. The guest is emulated
 * and its host may be busy: where a case does not test the timeout, it
 * is a generous one (50 handshakes at once take seconds under TCG). */
static void ev_open(struct ev *ev, int handshake_ms)
{
        ev->base = event_base_new();
        ck_assert_ptr_nonnull(ev->base);
        tc_ok(conduit_ctx_new(&ev->ctx));
        tc_ok(conduit_ctx_set_timeout(ev->ctx, CONDUIT_TIMEOUT_HANDSHAKE, handshake_ms));
        tc_ok(conduit_loop_new(ev->ctx, ev->base, &ev->loop));
}

static void ev_close(struct ev *ev)
{
        conduit_loop_free(ev->loop);
        conduit_ctx_free(ev->ctx);
        event_base_free(ev->base);
}

/* Runs the loop until *done or a bound of seconds passes (a hang fails the
 * case instead of blocking the guest). */
static void run_until(struct event_base *base, const bool *done, int seconds)
{
        struct timeval tick = { 0, 50 * 1000 };
        for (int i = 0; i < seconds * 20 && !*done; i++) {
                event_base_loopexit(base, &tick);
                event_base_loop(base, EVLOOP_ONCE);
        }
        ck_assert_msg(*done, "the loop did not finish within %d s", seconds);
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

/* Connects uri on the loop and waits for the callback, which must not run
 * from inside conduit_loop_connect(). */
static void connect_wait(struct ev *ev, const char *uri, struct connect_result *r)
{
        memset(r, 0, sizeof(*r));
        tc_ok(conduit_loop_connect(ev->loop, uri, on_connect, r, NULL));
        ck_assert_msg(!r->done, "%s: the callback ran inside conduit_loop_connect()", uri);
        run_until(ev->base, &r->done, 60);
}

static void expect_message(const char *msg, const char *part)
{
        ck_assert_msg(msg && strstr(msg, part), "the message '%s' does not name '%s'",
                      msg ? msg : "(null)", part);
}

/* The vsock port a listener got (also the port of a Hyper-V service GUID,
 * and the transport's port under TLS). */
static unsigned listener_port(const struct echo_server *s)
{
        long long p = conduit_endp_get_port(conduit_loop_listener_endp(s->l));
        ck_assert_msg(p > 0 && p < (long long)VMADDR_PORT_ANY, "the listener's port is %lld", p);
        return (unsigned)p;
}

/* A port nobody listens on: one the kernel gave a listener that is gone. */
static unsigned free_port(void)
{
        conduit_listener *l = tc_listen("vsock://any:any", NULL);
        long long p = conduit_endp_get_port(conduit_listener_endp(l));
        ck_assert(p > 0 && p < (long long)VMADDR_PORT_ANY);
        conduit_listener_free(l);
        return (unsigned)p;
}

/* The Hyper-V service GUID of vsock port p. */
#define HV_GUID "%08x-facb-11e6-bd58-64006a7986d3"

/* n echo clients of size bytes each to target; all of them get their own
 * bytes back, and the server accepted every one. */
static void echo_all(struct ev *ev, struct echo_server *srv, const char *target, int n, size_t size)
{
        int before = srv->accepted;
        struct echo_clients cl;
        echo_clients_start(&cl, ev->loop, target, n, size);
        run_until(ev->base, &cl.finished, 90);
        ck_assert_msg(cl.failed == 0, "%s: %d of %d clients failed; first: %s", target, cl.failed,
                      n, cl.first_error);
        ck_assert_int_eq(cl.ok, n);
        ck_assert_int_eq(srv->accepted - before, n);
        echo_clients_free(&cl);
}

/* ---- echo ----------------------------------------------------------------------------- */

/* 50 clients at once, 64 KiB each, against a listener on a port given in
 * the forms of linuxkit (vsock://:PORT) and Kata (vsock://-1:PORT); the
 * clients name CID 1 as a number and as "local". */
START_TEST(echo_vsock)
{
        struct ev ev;
        ev_open(&ev, PATIENT);
        unsigned port = free_port();
        char *uri = _i ? fmt("vsock://-1:%u", port) : fmt("vsock://:%u", port);
        struct echo_server srv;
        echo_server_start(&srv, ev.loop, uri);
        const conduit_endp *b = conduit_loop_listener_endp(srv.l);
        ck_assert_int_eq(conduit_endp_get_kind(b), CONDUIT_ENDP_VSOCK);
        ck_assert_int_eq(conduit_endp_get_cid(b), VMADDR_CID_ANY);
        ck_assert_uint_eq(listener_port(&srv), port);
        char *target = _i ? fmt("vsock://local:%u", port) : fmt("vsock://1:%u", port);
        echo_all(&ev, &srv, target, CLIENTS, SIZE);
        echo_server_stop(&srv);
        ev_close(&ev);
        free(target);
        free(uri);
}
END_TEST

/* The same through Hyper-V URIs: a listener on the wildcard VM id with
 * the port the kernel picks, clients on hyperv://loopback/<its GUID>. */
START_TEST(echo_hyperv)
{
        struct ev ev;
        ev_open(&ev, PATIENT);
        struct echo_server srv;
        echo_server_start(&srv, ev.loop, "hyperv://wildcard/4294967295");
        ck_assert_int_eq(conduit_endp_get_kind(conduit_loop_listener_endp(srv.l)),
                         CONDUIT_ENDP_HYPERV);
        char *target = fmt("hyperv://loopback/" HV_GUID, listener_port(&srv));
        echo_all(&ev, &srv, target, CLIENTS, SIZE);
        echo_server_stop(&srv);
        ev_close(&ev);
        free(target);
}
END_TEST

/* TLS over vsock: the listener runs 50 handshakes concurrently on the
 * loop, the clients verify the certificate against the test CA under
 * the name localhost (a vsock address has no host name). */
START_TEST(echo_tls_vsock)
{
        const struct tls_fixtures *fx = tls_fixtures();
        struct ev ev;
        ev_open(&ev, PATIENT);
        char *uri = fmt("tls+vsock://-1:-1?cert=%s&key=%s", fx->server_cert, fx->server_key);
        struct echo_server srv;
        echo_server_start(&srv, ev.loop, uri);
        char *target = fmt("tls+vsock://1:%u?cafile=%s&servername=localhost", listener_port(&srv),
                           fx->ca_cert);
        echo_all(&ev, &srv, target, CLIENTS, SIZE);
        echo_server_stop(&srv);
        ev_close(&ev);
        free(target);
        free(uri);
}
END_TEST

/* Runs the loop until the listener's message names part. */
static void wait_listener_message(struct ev *ev, const struct echo_server *srv, const char *part)
{
        for (int i = 0; i < 600 && !strstr(conduit_loop_listener_error_message(srv->l), part);
             i++) {
                struct timeval tv = { 0, 50 * 1000 };
                event_base_loopexit(ev->base, &tv);
                event_base_loop(ev->base, EVLOOP_ONCE);
        }
        expect_message(conduit_loop_listener_error_message(srv->l), part);
}

/* Clients the TLS listener drops do not disturb the others: one that
 * does not trust the server (its callback gets the verification error),
 * one that never starts its handshake (dropped at the handshake timeout,
 * it reads EOF); each leaves its reason in the listener's message, and
 * clients after them are served. */
START_TEST(tls_vsock_dropped_clients)
{
        const struct tls_fixtures *fx = tls_fixtures();
        struct ev ev;
        ev_open(&ev, PATIENT);
        char *uri = fmt("tls+vsock://any:any?cert=%s&key=%s", fx->server_cert, fx->server_key);
        struct echo_server srv;
        echo_server_start(&srv, ev.loop, uri);
        unsigned port = listener_port(&srv);

        /* the server's certificate is not from the CA this client trusts */
        struct connect_result r;
        char *distrust =
                fmt("tls+vsock://1:%u?cafile=%s&servername=localhost", port, fx->unknown_ca_cert);
        connect_wait(&ev, distrust, &r);
        ck_assert_ptr_null(r.f);
        ck_assert_msg(r.err == CONDUIT_E_TLS_VERIFY, "err %d (%s): %s", r.err,
                      conduit_strerror(r.err), r.msg);
        expect_message(r.msg, "vsock");
        wait_listener_message(&ev, &srv, "TLS handshake");

        /* a plain vsock client that never says anything, while the
         * listener's handshake timeout is short */
        tc_ok(conduit_ctx_set_timeout(ev.ctx, CONDUIT_TIMEOUT_HANDSHAKE, 500));
        char *plain = fmt("vsock://1:%u", port);
        connect_wait(&ev, plain, &r);
        ck_assert_msg(r.err == 0, "%s: %d (%s): %s", plain, r.err, conduit_strerror(r.err), r.msg);
        conduit_flow *idle = r.f;
        tc_ok(conduit_flow_set_nonblocking(idle, true));
        char c;
        bool dropped = false;
        for (int i = 0; i < 600 && !dropped; i++) {
                struct timeval tv = { 0, 50 * 1000 };
                event_base_loopexit(ev.base, &tv);
                event_base_dispatch(ev.base);
                ssize_t n = conduit_flow_read(idle, &c, 1);
                ck_assert_msg(n == 0 || n == -EAGAIN || n == -ECONNRESET,
                              "the idle client read %zd (%s)", n, conduit_strerror((int)n));
                dropped = n == 0 || n == -ECONNRESET;
        }
        ck_assert_msg(dropped, "the idle client was not dropped");
        wait_listener_message(&ev, &srv, "timeout");
        conduit_flow_free(idle);

        /* still serving (handshakes started from now on have time) */
        tc_ok(conduit_ctx_set_timeout(ev.ctx, CONDUIT_TIMEOUT_HANDSHAKE, PATIENT));
        char *target = fmt("tls+vsock://1:%u?cafile=%s&servername=localhost", port, fx->ca_cert);
        echo_all(&ev, &srv, target, 5, 10000);
        echo_server_stop(&srv);
        ev_close(&ev);
        free(target);
        free(plain);
        free(distrust);
        free(uri);
}
END_TEST

/* ---- refused ------------------------------------------------------------------------ */

/* Nobody listens on the port: the loopback transport resets the connect,
 * and the callback (never the call itself) gets -ECONNREFUSED with the
 * address in the message — over vsock, Hyper-V, TLS over vsock and with
 * a connect deadline (which sets the kernel's connect timer). Nothing is
 * left open afterwards. */
START_TEST(refused_async)
{
        const struct tls_fixtures *fx = tls_fixtures();
        int fds = tc_fd_count();
        struct ev ev;
        ev_open(&ev, PATIENT);
        unsigned port = free_port();
        char *uris[] = {
                fmt("vsock://1:%u", port),
                fmt("hyperv://loopback/" HV_GUID, port),
                fmt("tls+vsock://1:%u?cafile=%s&servername=localhost", port, fx->ca_cert),
                fmt("vsock://1:%u?connect_timeout=30s", port),
        };
        char *named[] = { fmt("vsock://1:%u", port), fmt("hyperv://loopback/" HV_GUID, port),
                          fmt("vsock://1:%u", port), fmt("vsock://1:%u", port) };
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
                struct connect_result r;
                connect_wait(&ev, uris[i], &r);
                ck_assert_msg(r.err == -ECONNREFUSED, "%s: err %d (%s), want -ECONNREFUSED: %s",
                              uris[i], r.err, conduit_strerror(r.err), r.msg);
                ck_assert_ptr_null(r.f);
                expect_message(r.msg, named[i]);
                free(uris[i]);
                free(named[i]);
        }
        ev_close(&ev);
        ck_assert_int_eq(tc_fd_count(), fds);
}
END_TEST

/* ---- what the callback gets ------------------------------------------------------- */

static unsigned query_uint(conduit_flow *f, int what)
{
        unsigned v = 0xdeadbeef;
        int r = conduit_flow_query(f, what, &v);
        ck_assert_msg(r == 0, "query %d: %d (%s) [%s]", what, r, conduit_strerror(r),
                      conduit_flow_error_message(f));
        return v;
}

/* A flow connected on the loop is what conduit_connect() would give: in
 * blocking mode, of the vsock or the Hyper-V backend, its peer the
 * address connected to; the connect deadline reached the kernel's connect
 * timer, and max_io shortens reads. */
START_TEST(connected_flow)
{
        struct ev ev;
        ev_open(&ev, PATIENT);
        conduit_listener *l = tc_listen("vsock://any:any", NULL);
        tc_ok(conduit_listener_set_timeout(l, 60000));
        unsigned port = (unsigned)conduit_endp_get_port(conduit_listener_endp(l));
        char *uris[] = { fmt("vsock://1:%u?connect_timeout=60s&max_io=1000", port),
                         fmt("hyperv://loopback/" HV_GUID, port) };
        for (int i = 0; i < 2; i++) {
                struct connect_result r;
                connect_wait(&ev, uris[i], &r);
                ck_assert_msg(r.err == 0, "%s: %d (%s): %s", uris[i], r.err,
                              conduit_strerror(r.err), r.msg);
                conduit_flow *c = r.f, *s = NULL;
                tc_ok(conduit_listener_accept(l, &s));
                ck_assert(!conduit_flow_get_nonblocking(c));
                ck_assert_str_eq(conduit_flow_backend(c), i ? "hyperv" : "vsock");
                const conduit_endp *peer = conduit_flow_peer(c);
                ck_assert_int_eq(conduit_endp_get_kind(peer),
                                 i ? CONDUIT_ENDP_HYPERV : CONDUIT_ENDP_VSOCK);
                ck_assert_int_eq(conduit_endp_get_port(peer), port);
                ck_assert_uint_eq(query_uint(c, CONDUIT_QUERY_VSOCK_PEER_CID), VMADDR_CID_LOCAL);
                ck_assert_uint_eq(query_uint(c, CONDUIT_QUERY_VSOCK_PEER_PORT), port);
                ck_assert_uint_eq(query_uint(s, CONDUIT_QUERY_VSOCK_PEER_PORT),
                                  query_uint(c, CONDUIT_QUERY_VSOCK_LOCAL_PORT));
                tc_write_all(c, "ping", 4);
                char buf[4096];
                size_t got = 0;
                while (got < 4) {
                        ssize_t n = conduit_flow_read(s, buf + got, sizeof(buf) - got);
                        ck_assert_int_gt(n, 0);
                        got += (size_t)n;
                }
                ck_assert_uint_eq(got, 4);
                ck_assert(memcmp(buf, "ping", 4) == 0);
                if (i == 0) {
                        struct timeval tv = { 0 };
                        socklen_t len = sizeof(tv);
                        ck_assert_int_eq(getsockopt(conduit_flow_fd(c), AF_VSOCK,
                                                    SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, &len),
                                         0);
                        ck_assert_msg(tv.tv_sec > 30 && tv.tv_sec <= 60,
                                      "SO_VM_SOCKETS_CONNECT_TIMEOUT: %lld s",
                                      (long long)tv.tv_sec);
                        /* 3000 bytes arrive in reads of at most 1000 */
                        uint8_t data[3000];
                        tc_fill(data, sizeof(data), 5);
                        tc_write_all(s, data, sizeof(data));
                        tc_ok(conduit_flow_shutdown(s, CONDUIT_SHUT_WR));
                        got = 0;
                        for (;;) {
                                ssize_t n = conduit_flow_read(c, buf, sizeof(buf));
                                ck_assert_int_ge(n, 0);
                                if (n == 0)
                                        break;
                                ck_assert_int_le(n, 1000);
                                ck_assert_uint_le(got + (size_t)n, sizeof(data));
                                ck_assert(memcmp(buf, data + got, (size_t)n) == 0);
                                got += (size_t)n;
                        }
                        ck_assert_uint_eq(got, sizeof(data));
                }
                conduit_flow_free(c);
                conduit_flow_free(s);
                free(uris[i]);
        }
        conduit_listener_free(l);
        ev_close(&ev);
}
END_TEST

/* ---- retry until the listener is up ----------------------------------------------- */

struct late {
        struct ev *ev;
        char *uri;
        struct echo_server *srv;
        bool up;
};

static void start_late(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        struct late *l = arg;
        echo_server_start(l->srv, l->ev->loop, l->uri);
        l->up = true;
}

/* The echo server listens only 300 ms after the clients started (a vsock
 * listener and a TLS one): with retry= they are refused at first, try
 * again and are served. A port that never gets a listener ends with
 * -ETIMEDOUT at the retry deadline, the last refusal in the message. */
START_TEST(retry_until_up)
{
        const struct tls_fixtures *fx = tls_fixtures();
        struct ev ev;
        ev_open(&ev, PATIENT);
        struct echo_server srv[2];
        unsigned port[2] = { free_port(), free_port() };
        while (port[1] == port[0])
                port[1] = free_port();
        struct late late[2] = {
                { &ev, fmt("vsock://any:%u", port[0]), &srv[0], false },
                { &ev,
                  fmt("tls+vsock://any:%u?cert=%s&key=%s", port[1], fx->server_cert,
                      fx->server_key),
                  &srv[1], false },
        };
        char *target[2] = {
                fmt("vsock://1:%u?retry=30s", port[0]),
                fmt("tls+vsock://1:%u?retry=30s&cafile=%s&servername=localhost", port[1],
                    fx->ca_cert),
        };
        struct event *timer[2];
        struct echo_clients cl[2];
        for (int i = 0; i < 2; i++) {
                timer[i] = evtimer_new(ev.base, start_late, &late[i]);
                struct timeval tv = { 0, 300 * 1000 };
                evtimer_add(timer[i], &tv);
                echo_clients_start(&cl[i], ev.loop, target[i], 3, 20000);
        }
        for (int i = 0; i < 2; i++) {
                run_until(ev.base, &cl[i].finished, 60);
                ck_assert(late[i].up);
                ck_assert_msg(cl[i].ok == 3, "%s: %s", target[i], cl[i].first_error);
                ck_assert_int_eq(srv[i].accepted, 3);
        }
        for (int i = 0; i < 2; i++) {
                echo_clients_free(&cl[i]);
                echo_server_stop(&srv[i]);
                event_free(timer[i]);
                free(late[i].uri);
                free(target[i]);
        }

        struct connect_result r;
        char *never = fmt("vsock://1:%u?retry=700ms", free_port());
        connect_wait(&ev, never, &r);
        ck_assert_msg(r.err == -ETIMEDOUT, "err %d (%s): %s", r.err, conduit_strerror(r.err),
                      r.msg);
        ck_assert_ptr_null(r.f);
        expect_message(r.msg, "not up after");
        expect_message(r.msg, "refused");
        free(never);
        ev_close(&ev);
}
END_TEST

/* ---- the bufferevent bridge ---------------------------------------------------------- */

struct bev_side {
        struct evbuffer *got;
        int eofs;
        size_t at_eof; /* bytes received when the EOF came */
        bool eof;
        bool error;
};

static void bev_read(struct bufferevent *bev, void *arg)
{
        struct bev_side *s = arg;
        ck_assert_msg(s->eofs == 0, "data after the EOF");
        evbuffer_add_buffer(s->got, bufferevent_get_input(bev));
}

static void bev_event(struct bufferevent *bev, short what, void *arg)
{
        struct bev_side *s = arg;
        if (what & BEV_EVENT_EOF) {
                evbuffer_add_buffer(s->got, bufferevent_get_input(bev));
                s->at_eof = evbuffer_get_length(s->got);
                s->eofs++;
                s->eof = true;
        }
        if (what & BEV_EVENT_ERROR)
                s->error = true;
}

/* A TLS-over-vsock flow used through the bufferevent API against the echo
 * server: 1 MiB out, then bufferevent_flush(BEV_FINISHED) shuts the
 * write side down. The echo server sends everything back and closes only
 * after our EOF reached it; so BEV_EVENT_EOF arrives — once, after all
 * the data and no error — only if the half-close got through, while the
 * other direction kept working. */
START_TEST(bufferevent_tls_vsock_half_close)
{
        const struct tls_fixtures *fx = tls_fixtures();
        struct ev ev;
        ev_open(&ev, PATIENT);
        char *uri = fmt("tls+vsock://any:any?cert=%s&key=%s", fx->server_cert, fx->server_key);
        struct echo_server srv;
        echo_server_start(&srv, ev.loop, uri);
        char *target = fmt("tls+vsock://1:%u?cafile=%s&servername=localhost", listener_port(&srv),
                           fx->ca_cert);
        struct connect_result r;
        connect_wait(&ev, target, &r);
        ck_assert_msg(r.err == 0, "%s: %d (%s): %s", target, r.err, conduit_strerror(r.err), r.msg);
        ck_assert_str_eq(conduit_flow_backend(r.f), "tls");
        struct bufferevent *bev = NULL;
        tc_ok(conduit_loop_bufferevent(ev.loop, r.f, 0, &bev));
        struct bev_side side = { .got = evbuffer_new() };
        ck_assert_ptr_nonnull(side.got);
        bufferevent_setcb(bev, bev_read, NULL, bev_event, &side);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        size_t n = 1 << 20;
        uint8_t *data = malloc(n);
        ck_assert_ptr_nonnull(data);
        tc_fill(data, n, 11);
        ck_assert_int_eq(bufferevent_write(bev, data, n), 0);
        bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
        run_until(ev.base, &side.eof, 90);
        ck_assert(!side.error);
        ck_assert_int_eq(side.eofs, 1);
        ck_assert_uint_eq(side.at_eof, n);
        ck_assert_uint_eq(evbuffer_get_length(side.got), n);
        ck_assert(memcmp(evbuffer_pullup(side.got, -1), data, n) == 0);
        ck_assert_int_eq(srv.accepted, 1);
        /* a little longer: nothing more happens */
        struct timeval tv = { 0, 100 * 1000 };
        event_base_loopexit(ev.base, &tv);
        event_base_dispatch(ev.base);
        ck_assert_int_eq(side.eofs, 1);
        ck_assert(!side.error);
        bufferevent_free(bev);
        evbuffer_free(side.got);
        free(data);
        echo_server_stop(&srv);
        ev_close(&ev);
        free(target);
        free(uri);
}
END_TEST

static Suite *vsock_event_suite(void)
{
        Suite *s = suite_create("vsock-event");
        TCase *tc = tcase_create("echo");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_loop_test(tc, echo_vsock, 0, 2);
        tcase_add_test(tc, echo_hyperv);
        tcase_add_test(tc, echo_tls_vsock);
        tcase_add_test(tc, tls_vsock_dropped_clients);
        suite_add_tcase(s, tc);
        tc = tcase_create("connect");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, refused_async);
        tcase_add_test(tc, connected_flow);
        tcase_add_test(tc, retry_until_up);
        suite_add_tcase(s, tc);
        tc = tcase_create("bufferevent");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, bufferevent_tls_vsock_half_close);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        /* tests/vm/guest-tests.sh sets CONDUIT_VM_GUEST=1 in a guest whose
         * only vsock transport is the loopback */
        const char *guest = getenv("CONDUIT_VM_GUEST");
        if (!guest || strcmp(guest, "1") != 0 || access("/sys/module/vsock_loopback", F_OK) != 0) {
                printf("1..0 # SKIP runs only inside the QEMU guest of tests/vm/ "
                       "(CONDUIT_VM_GUEST=1 and vsock_loopback loaded)\n");
                return 0;
        }
        return tc_run(vsock_event_suite());
}
