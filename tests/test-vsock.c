/* SPDX-License-Identifier: MIT */
/* The AF_VSOCK and Hyper-V backends beyond the conformance suite: refused
 * ports, connect-with-retry, the vsock queries, the local CID, to_host,
 * max_io, half-close, listener ports, the Hyper-V GUID mapping and the
 * addresses that cannot be connected to.
 *
 * Runs only inside the QEMU guest of tests/vm/ (guest-tests.sh sets
 * CONDUIT_VM_GUEST=1 there), whose one vsock transport is vsock_loopback:
 * CID 1 is the guest itself. Anywhere else it skips: on a VM, an AF_VSOCK
 * connect reaches the hypervisor running it. meson builds it but never
 * registers it as a host test.
 *
 * Connect timeouts: with the loopback transport a connect is always
 * answered at once (a port without a listener resets, a listener with a
 * full backlog resets too), so a single AF_VSOCK connect cannot be made to
 * hang here and the kernel's connect timer never fires. The connect
 * deadline is tested through retry= instead: a peer that never comes up
 * makes the connect end with -ETIMEDOUT when the deadline is reached; the
 * connect timeout itself is checked to reach the socket
 * (SO_VM_SOCKETS_CONNECT_TIMEOUT).
 *
 * Rules as in the conformance suite: results are asserted, never timings;
 * threads other than the test's own never call ck_assert. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define TIMEOUT_S 120

/* ---- watching the library's send calls ------------------------------------ */

/* The program's own send() and sendmsg() take the library's calls (the
 * executable's symbols come first in the dynamic linker's lookup) and
 * record, for the descriptor being watched, how many calls there were and
 * the largest number of bytes one call was asked to send. */
static atomic_int watch_fd = -1;
static atomic_size_t watch_calls, watch_max;

static void watch(int fd, size_t len)
{
        if (fd != atomic_load(&watch_fd))
                return;
        atomic_fetch_add(&watch_calls, 1);
        size_t m = atomic_load(&watch_max);
        while (len > m && !atomic_compare_exchange_weak(&watch_max, &m, len))
                ;
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
        watch(fd, len);
        return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
        size_t len = 0;
        for (size_t i = 0; i < msg->msg_iovlen; i++)
                len += msg->msg_iov[i].iov_len;
        watch(fd, len);
        return syscall(SYS_sendmsg, fd, msg, flags);
}

static void watch_start(int fd)
{
        atomic_store(&watch_calls, 0);
        atomic_store(&watch_max, 0);
        atomic_store(&watch_fd, fd);
}

/* ---- helpers ------------------------------------------------------------- */

static conduit_ctx *new_ctx(void)
{
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        return ctx;
}

/* Listens on uri; *port gets the bound port. */
static conduit_listener *listen_port(const char *uri, unsigned *port)
{
        conduit_listener *l = tc_listen(uri, NULL);
        long long p = conduit_endp_get_port(conduit_listener_endp(l));
        ck_assert_msg(p >= 0 && p < (long long)VMADDR_PORT_ANY, "listening on %s: port %lld", uri,
                      p);
        if (port)
                *port = (unsigned)p;
        return l;
}

/* A port nobody listens on: one the kernel gave a listener that is gone. */
static unsigned free_port(void)
{
        unsigned port;
        conduit_listener_free(listen_port("vsock://any:any", &port));
        return port;
}

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

static conduit_flow *accept_one(conduit_listener *l)
{
        conduit_flow *f = NULL;
        tc_ok(conduit_listener_set_timeout(l, 60000));
        int r = conduit_listener_accept(l, &f);
        ck_assert_msg(r == 0, "accept: %d (%s) [%s]", r, conduit_strerror(r),
                      conduit_listener_error_message(l));
        return f;
}

static void expect_read(conduit_flow *f, const char *want)
{
        size_t n = strlen(want), got = 0;
        char buf[256];
        ck_assert_uint_le(n, sizeof(buf));
        while (got < n) {
                ssize_t r = conduit_flow_read(f, buf + got, n - got);
                ck_assert_msg(r > 0, "read after %zu of %zu bytes: %zd (%s) [%s]", got, n, r,
                              r ? conduit_strerror((int)r) : "EOF", conduit_flow_error_message(f));
                got += (size_t)r;
        }
        ck_assert_msg(memcmp(buf, want, n) == 0, "read '%.*s', want '%s'", (int)n, buf, want);
}

static void expect_eof(conduit_flow *f)
{
        char c;
        ssize_t r = conduit_flow_read(f, &c, 1);
        ck_assert_msg(r == 0, "read = %zd (%s), want EOF [%s]", r, conduit_strerror((int)r),
                      conduit_flow_error_message(f));
}

static unsigned query_uint(conduit_flow *f, int what)
{
        unsigned v = 0xdeadbeef;
        int r = conduit_flow_query(f, what, &v);
        ck_assert_msg(r == 0, "query %d: %d (%s) [%s]", what, r, conduit_strerror(r),
                      conduit_flow_error_message(f));
        return v;
}

static struct sockaddr_vm kernel_addr(conduit_flow *f, bool peer)
{
        struct sockaddr_vm vm;
        socklen_t len = sizeof(vm);
        int fd = conduit_flow_fd(f);
        ck_assert_int_ge(fd, 0);
        int r = peer ? getpeername(fd, (struct sockaddr *)&vm, &len)
                     : getsockname(fd, (struct sockaddr *)&vm, &len);
        ck_assert_msg(r == 0, "%s: %s", peer ? "getpeername" : "getsockname", strerror(errno));
        ck_assert_int_eq(vm.svm_family, AF_VSOCK);
        return vm;
}

static void expect_message(const char *msg, const char *part)
{
        ck_assert_msg(msg && strstr(msg, part), "the message '%s' does not name '%s'",
                      msg ? msg : "(null)", part);
}

/* ---- refused ------------------------------------------------------------- */

/* No listener on the port: -ECONNREFUSED (the loopback transport answers
 * with a reset), and the message names the address. Hyper-V likewise. */
START_TEST(test_refused)
{
        conduit_ctx *ctx = new_ctx();
        unsigned port = free_port();
        char *uri = fmt("vsock://1:%u", port);
        conduit_flow *f = NULL;
        tc_err(conduit_connect(ctx, uri, &f), -ECONNREFUSED);
        ck_assert_ptr_null(f);
        expect_message(conduit_ctx_error_message(ctx), uri);
        free(uri);

        uri = fmt("hyperv://loopback/%08x-facb-11e6-bd58-64006a7986d3", port);
        tc_err(conduit_connect(ctx, uri, &f), -ECONNREFUSED);
        expect_message(conduit_ctx_error_message(ctx), uri);
        free(uri);
        conduit_ctx_free(ctx);
}
END_TEST

/* ---- retry until the peer is up ------------------------------------------ */

struct late_listener {
        unsigned port;
        int delay_ms;
        int r; /* listen's result */
        int accepted;
        char msg[256];
};

/* Listens on the port only after a while, accepts one client, greets it
 * and waits for its EOF. */
static void *late_listener_thread(void *arg)
{
        struct late_listener *ll = arg;
        struct timespec ts = { ll->delay_ms / 1000, (long)(ll->delay_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        char uri[64];
        snprintf(uri, sizeof(uri), "vsock://any:%u", ll->port);
        conduit_listener *l = NULL;
        ll->r = conduit_listen(NULL, uri, &l);
        if (ll->r < 0) {
                snprintf(ll->msg, sizeof(ll->msg), "%s", conduit_ctx_error_message(NULL));
                return NULL;
        }
        conduit_listener_set_timeout(l, 60000);
        conduit_flow *f = NULL;
        ll->accepted = conduit_listener_accept(l, &f);
        if (ll->accepted == 0) {
                conduit_flow_write(f, "up", 2);
                conduit_flow_close(f);
        } else {
                snprintf(ll->msg, sizeof(ll->msg), "%s", conduit_listener_error_message(l));
        }
        conduit_listener_free(l);
        return NULL;
}

/* The listener comes up a few hundred ms after the first attempt: with
 * retry (the URI option, loop 0, or the context's CONDUIT_TIMEOUT_RETRY,
 * loop 1) the connect succeeds. */
START_TEST(test_retry_until_up)
{
        conduit_ctx *ctx = new_ctx();
        struct late_listener ll = { .port = free_port(), .delay_ms = 400, .accepted = 1 };
        char *uri;
        if (_i == 0) {
                uri = fmt("vsock://1:%u?retry=60s", ll.port);
        } else {
                uri = fmt("vsock://1:%u", ll.port);
                tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_RETRY, 60000));
        }
        pthread_t t = tc_spawn(late_listener_thread, &ll);
        conduit_flow *f = NULL;
        int r = conduit_connect(ctx, uri, &f);
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", conduit_ctx_error_message(ctx));
        if (r == 0) {
                expect_read(f, "up");
                expect_eof(f);
                conduit_flow_close(f);
        }
        tc_join(t);
        ck_assert_msg(ll.r == 0, "the late listener: %d (%s) [%s]", ll.r, conduit_strerror(ll.r),
                      ll.msg);
        ck_assert_msg(r == 0, "connect %s with retry: %d (%s) [%s]", uri, r, conduit_strerror(r),
                      msg);
        ck_assert_msg(ll.accepted == 0, "accept: %d [%s]", ll.accepted, ll.msg);
        free(uri);
        conduit_ctx_free(ctx);
}
END_TEST

/* A peer that never comes up: the connect gives up with -ETIMEDOUT once
 * the retry deadline has passed, and says what the last attempt got. */
START_TEST(test_retry_deadline)
{
        conduit_ctx *ctx = new_ctx();
        char *uri = fmt("vsock://1:%u?retry=700ms", free_port());
        conduit_flow *f = NULL;
        tc_err(conduit_connect(ctx, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        expect_message(conduit_ctx_error_message(ctx), "refused");
        free(uri);

        /* errors that do not mean "not up yet" are not retried */
        tc_err(conduit_connect(ctx, "vsock://any:1?retry=60s", &f), -EDESTADDRREQ);
        conduit_ctx_free(ctx);
}
END_TEST

/* The connect timeout reaches the socket: SO_VM_SOCKETS_CONNECT_TIMEOUT
 * follows the deadline (the kernel's default is 2 s). */
START_TEST(test_connect_timeout_option)
{
        unsigned port;
        conduit_listener *l = listen_port("vsock://any:any", &port);
        char *uri = fmt("vsock://1:%u?connect_timeout=60s", port);
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        conduit_flow *s = accept_one(l);
        struct timeval tv = { 0 };
        socklen_t len = sizeof(tv);
        ck_assert_int_eq(
                getsockopt(conduit_flow_fd(c), AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, &len),
                0);
        ck_assert_msg(tv.tv_sec > 30 && tv.tv_sec <= 60, "SO_VM_SOCKETS_CONNECT_TIMEOUT: %lld s",
                      (long long)tv.tv_sec);
        tc_write_all(c, "x", 1);
        expect_read(s, "x");
        conduit_flow_free(c);
        conduit_flow_free(s);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

/* ---- what a vsock flow knows about itself --------------------------------- */

/* The local CID as /dev/vsock reports it: with only the loopback transport,
 * the loopback CID. */
static unsigned dev_local_cid(void)
{
        int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
        ck_assert_msg(fd >= 0, "/dev/vsock: %s", strerror(errno));
        unsigned cid = 0;
        ck_assert_int_eq(ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid), 0);
        close(fd);
        return cid;
}

START_TEST(test_queries)
{
        unsigned port;
        conduit_listener *l = listen_port("vsock://any:any", &port);
        char *uri = fmt("vsock://1:%u", port);
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        conduit_flow *s = accept_one(l);
        unsigned cid = dev_local_cid();
        ck_assert_uint_eq(cid, VMADDR_CID_LOCAL);

        /* the kernel's view, for comparison */
        struct sockaddr_vm cpeer = kernel_addr(c, true), speer = kernel_addr(s, true);
        struct sockaddr_vm slocal = kernel_addr(s, false);
        ck_assert_uint_eq(cpeer.svm_port, port);
        ck_assert_uint_eq(slocal.svm_port, port);

        ck_assert_uint_eq(query_uint(c, CONDUIT_QUERY_VSOCK_PEER_CID), VMADDR_CID_LOCAL);
        ck_assert_uint_eq(query_uint(c, CONDUIT_QUERY_VSOCK_PEER_PORT), port);
        ck_assert_uint_eq(query_uint(c, CONDUIT_QUERY_VSOCK_LOCAL_CID), cid);
        ck_assert_uint_eq(query_uint(c, CONDUIT_QUERY_VSOCK_LOCAL_PORT), speer.svm_port);
        ck_assert_uint_eq(query_uint(s, CONDUIT_QUERY_VSOCK_LOCAL_CID), cid);
        ck_assert_uint_eq(query_uint(s, CONDUIT_QUERY_VSOCK_LOCAL_PORT), port);
        ck_assert_uint_eq(query_uint(s, CONDUIT_QUERY_VSOCK_PEER_CID), VMADDR_CID_LOCAL);
        ck_assert_uint_eq(query_uint(s, CONDUIT_QUERY_VSOCK_PEER_PORT), speer.svm_port);
        ck_assert_uint_ne(speer.svm_port, port);

        /* the endps say the same */
        ck_assert_int_eq(conduit_endp_get_kind(conduit_flow_peer(s)), CONDUIT_ENDP_VSOCK);
        ck_assert_int_eq(conduit_endp_get_cid(conduit_flow_peer(s)), VMADDR_CID_LOCAL);
        ck_assert_int_eq(conduit_endp_get_port(conduit_flow_peer(s)), speer.svm_port);
        ck_assert_int_eq(conduit_endp_get_cid(conduit_flow_local(c)), cid);
        ck_assert_int_eq(conduit_endp_get_port(conduit_flow_local(c)), speer.svm_port);

        /* other flows do not answer vsock questions */
        conduit_flow *a = NULL, *b = NULL;
        tc_ok(conduit_flow_socketpair(&a, &b));
        unsigned v;
        for (int q = CONDUIT_QUERY_VSOCK_PEER_CID; q <= CONDUIT_QUERY_VSOCK_LOCAL_PORT; q++)
                tc_err(conduit_flow_query(a, q, &v), -ENOPROTOOPT);
        conduit_flow_free(a);
        conduit_flow_free(b);

        conduit_flow_free(c);
        conduit_flow_free(s);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

/* ---- to_host ------------------------------------------------------------- */

/* The option round-trips through the endp, and reaches the kernel: the
 * connected socket's peer address carries VMADDR_FLAG_TO_HOST. (With the
 * loopback transport CID 1 stays local whatever the flag says.) */
START_TEST(test_to_host)
{
        conduit_endp *e = NULL, *e2 = NULL;
        char *s = NULL;
        tc_ok(conduit_endp_parse("vsock://2:1024?to_host=1", &e));
        ck_assert_str_eq(conduit_endp_get_option(e, "to_host"), "1");
        tc_ok(conduit_endp_format(e, &s));
        ck_assert_str_eq(s, "vsock://2:1024?to_host=1");
        tc_ok(conduit_endp_parse(s, &e2));
        ck_assert(conduit_endp_equal(e, e2));
        free(s);
        conduit_endp_free(e);
        conduit_endp_free(e2);

        unsigned port;
        conduit_listener *l = listen_port("vsock://any:any", &port);
        for (int flag = 0; flag < 2; flag++) {
                char *uri = fmt("vsock://1:%u%s", port, flag ? "?to_host=1" : "");
                conduit_flow *c = NULL;
                tc_ok(conduit_connect(NULL, uri, &c));
                conduit_flow *srv = accept_one(l);
                struct sockaddr_vm vm = kernel_addr(c, true);
                ck_assert_msg(!!(vm.svm_flags & VMADDR_FLAG_TO_HOST) == flag,
                              "%s: the socket's peer flags are %#x", uri, vm.svm_flags);
                const char *o = conduit_endp_get_option(conduit_flow_peer(c), "to_host");
                ck_assert_msg(flag ? o && strcmp(o, "1") == 0 : !o, "%s: peer endp to_host=%s", uri,
                              o ? o : "(unset)");
                tc_write_all(c, "t", 1);
                expect_read(srv, "t");
                conduit_flow_free(c);
                conduit_flow_free(srv);
                free(uri);
        }
        conduit_listener_free(l);
}
END_TEST

/* ---- max_io -------------------------------------------------------------- */

#define MAX_IO 1000
#define BIG    100000

struct drain {
        conduit_flow *f;
        uint8_t *buf;
        size_t got;
        ssize_t err;
};

static void *drain_thread(void *arg)
{
        struct drain *d = arg;
        for (;;) { /* bounded: each round reads >= 1 byte, at most BIG + 1 */
                ssize_t r = conduit_flow_read(d->f, d->buf + d->got, BIG + 1 - d->got);
                if (r <= 0) {
                        d->err = r;
                        break;
                }
                d->got += (size_t)r;
                if (d->got > BIG)
                        break;
        }
        return NULL;
}

/* max_io=1000 in the URI: no send call of the connected flow is asked for
 * more than 1000 bytes (the program's send()/sendmsg() watch the library's
 * calls), no read returns more, and the data arrives intact. The same
 * transfer without max_io shows that the watch sees the library's calls. */
START_TEST(test_max_io)
{
        unsigned port;
        conduit_listener *l = listen_port("vsock://any:any", &port);
        uint8_t *data = malloc(BIG);
        ck_assert_ptr_nonnull(data);
        tc_fill(data, BIG, 42);
        for (int limited = 0; limited < 2; limited++) {
                char *uri = fmt("vsock://1:%u%s", port, limited ? "?max_io=1000" : "");
                conduit_flow *c = NULL;
                tc_ok(conduit_connect(NULL, uri, &c));
                conduit_flow *s = accept_one(l);
                struct drain d = { .f = s, .buf = malloc(BIG + 1) };
                ck_assert_ptr_nonnull(d.buf);
                pthread_t t = tc_spawn(drain_thread, &d);
                watch_start(conduit_flow_fd(c));
                ssize_t w = conduit_flow_write(c, data, BIG);
                atomic_store(&watch_fd, -1);
                size_t calls = atomic_load(&watch_calls), max = atomic_load(&watch_max);
                tc_ok(conduit_flow_shutdown(c, CONDUIT_SHUT_WR));
                tc_join(t);
                ck_assert_int_eq(w, BIG);
                ck_assert_msg(d.err == 0 && d.got == BIG, "the peer read %zu bytes, then %zd",
                              d.got, d.err);
                ck_assert(memcmp(d.buf, data, BIG) == 0);
                uint64_t out = 0;
                tc_ok(conduit_flow_query(c, CONDUIT_QUERY_BYTES_OUT, &out));
                ck_assert_uint_eq(out, BIG);
                if (limited) {
                        ck_assert_msg(max <= MAX_IO, "a send call was asked for %zu bytes", max);
                        ck_assert_uint_ge(calls, BIG / MAX_IO);
                } else {
                        ck_assert_msg(max > MAX_IO,
                                      "without max_io the largest send was %zu "
                                      "bytes: the watch does not see the library",
                                      max);
                }

                /* reads are shortened too */
                if (limited) {
                        tc_write_all(s, data, BIG);
                        tc_ok(conduit_flow_shutdown(s, CONDUIT_SHUT_WR));
                        size_t got = 0;
                        static uint8_t buf[65536];
                        for (;;) {
                                ssize_t r = conduit_flow_read(c, buf, sizeof(buf));
                                ck_assert_int_ge(r, 0);
                                if (r == 0)
                                        break;
                                ck_assert_int_le(r, MAX_IO);
                                ck_assert(memcmp(buf, data + got, (size_t)r) == 0);
                                got += (size_t)r;
                        }
                        ck_assert_uint_eq(got, BIG);
                }
                conduit_flow_free(c);
                conduit_flow_free(s);
                free(d.buf);
                free(uri);
        }
        free(data);
        conduit_listener_free(l);
}
END_TEST

/* ---- half-close ---------------------------------------------------------- */

/* The client's EOF reaches the server, which answers after it: the answer
 * can only exist once the EOF arrived, and still gets through. */
START_TEST(test_half_close)
{
        unsigned port;
        conduit_listener *l = listen_port("vsock://any:any", &port);
        char *uri = fmt("vsock://1:%u", port);
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        conduit_flow *s = accept_one(l);
        tc_write_all(c, "question", 8);
        tc_ok(conduit_flow_shutdown(c, CONDUIT_SHUT_WR));
        tc_err(conduit_flow_write(c, "x", 1), -EPIPE);
        expect_read(s, "question");
        expect_eof(s);
        tc_write_all(s, "answer", 6);
        tc_ok(conduit_flow_shutdown(s, CONDUIT_SHUT_WR));
        expect_read(c, "answer");
        expect_eof(c);
        tc_err(conduit_flow_close(c), 0);
        tc_err(conduit_flow_close(s), 0);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

/* ---- listeners ----------------------------------------------------------- */

/* Asked for any port, the listener's endp shows the one the kernel picked
 * (vsock and Hyper-V), and a client reaches it there. */
START_TEST(test_listener_port)
{
        conduit_listener *l = tc_listen("vsock://any:any", NULL);
        const conduit_endp *b = conduit_listener_endp(l);
        ck_assert_int_eq(conduit_endp_get_kind(b), CONDUIT_ENDP_VSOCK);
        ck_assert_int_eq(conduit_endp_get_cid(b), VMADDR_CID_ANY);
        long long port = conduit_endp_get_port(b);
        struct sockaddr_vm vm;
        socklen_t len = sizeof(vm);
        ck_assert_int_eq(getsockname(conduit_listener_fd(l), (struct sockaddr *)&vm, &len), 0);
        ck_assert_int_eq(port, vm.svm_port);
        ck_assert_int_ne(port, VMADDR_PORT_ANY);
        char *s = NULL, *want = fmt("vsock://any:%lld", port);
        tc_ok(conduit_endp_format(b, &s));
        ck_assert_str_eq(s, want);
        free(s);
        free(want);

        /* the same port again: in use */
        char *again = fmt("vsock://any:%lld", port);
        conduit_listener *l2 = NULL;
        tc_err(conduit_listen(NULL, again, &l2), -EADDRINUSE);
        free(again);
        conduit_listener_free(l);

        /* Hyper-V: the service GUID of the port the kernel picked */
        l = tc_listen("hyperv://wildcard/4294967295", NULL);
        b = conduit_listener_endp(l);
        ck_assert_int_eq(conduit_endp_get_kind(b), CONDUIT_ENDP_HYPERV);
        len = sizeof(vm);
        ck_assert_int_eq(getsockname(conduit_listener_fd(l), (struct sockaddr *)&vm, &len), 0);
        ck_assert_int_ne(vm.svm_port, VMADDR_PORT_ANY);
        ck_assert_int_eq(conduit_endp_get_port(b), vm.svm_port);
        want = fmt("hyperv://wildcard/%08x-facb-11e6-bd58-64006a7986d3", vm.svm_port);
        tc_ok(conduit_endp_format(b, &s));
        ck_assert_str_eq(s, want);
        conduit_flow *c = NULL;
        char *uri = fmt("hyperv://loopback/%u", vm.svm_port);
        tc_ok(conduit_connect(NULL, uri, &c));
        conduit_flow *srv = accept_one(l);
        tc_write_all(c, "hv", 2);
        expect_read(srv, "hv");
        conduit_flow_free(c);
        conduit_flow_free(srv);
        conduit_listener_free(l);
        free(s);
        free(want);
        free(uri);
}
END_TEST

/* ---- names and the Hyper-V mapping ---------------------------------------- */

/* vsock://local:P, socat's VSOCK-CONNECT:1:P and hyperv://loopback/P (the
 * GUID of port P) all reach a vsock listener on P; vsock://1:P reaches a
 * Hyper-V listener on the GUID of P. Each flow names its backend. */
START_TEST(test_same_socket)
{
        unsigned port;
        conduit_listener *l = listen_port("vsock://any:any", &port);
        char *uris[] = { fmt("vsock://local:%u", port), fmt("VSOCK-CONNECT:1:%u", port),
                         fmt("hyperv://loopback/%08x-facb-11e6-bd58-64006a7986d3", port),
                         fmt("hvsock://e0e16197-dd56-4a10-9195-5ee7a155a838/"
                             "%08x-facb-11e6-bd58-64006a7986d3",
                             port) };
        const char *backend[] = { "vsock", "vsock", "hyperv", "hyperv" };
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
                conduit_flow *c = NULL;
                int r = conduit_connect(NULL, uris[i], &c);
                ck_assert_msg(r == 0, "connect %s: %d (%s) [%s]", uris[i], r, conduit_strerror(r),
                              conduit_ctx_error_message(NULL));
                conduit_flow *s = accept_one(l);
                ck_assert_str_eq(conduit_flow_backend(c), backend[i]);
                ck_assert_str_eq(conduit_flow_backend(s), "vsock");
                tc_write_all(c, "same", 4);
                expect_read(s, "same");
                conduit_flow_free(c);
                conduit_flow_free(s);
                free(uris[i]);
        }
        conduit_listener_free(l);

        l = listen_port("hyperv://wildcard/4294967295", &port);
        char *uri = fmt("vsock://1:%u", port);
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, uri, &c));
        conduit_flow *s = accept_one(l);
        ck_assert_str_eq(conduit_flow_backend(s), "hyperv");
        tc_write_all(s, "back", 4);
        expect_read(c, "back");
        conduit_flow_free(c);
        conduit_flow_free(s);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

/* Service GUIDs that are not of the vsock-port form, and VM GUIDs that
 * name no well-known partition, exist only on Windows: the unsupported
 * code and a message saying why, before any socket is made. */
START_TEST(test_hyperv_unsupported)
{
        static const char *const uris[] = {
                "hyperv://loopback/12345678-1234-1234-1234-123456789abc",
                "hyperv://parent/00000400-facb-11e6-bd58-000000000000",
                "hyperv://01234567-89ab-cdef-0123-456789abcdef/1024",
        };
        conduit_ctx *ctx = new_ctx();
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
                conduit_flow *f = NULL;
                conduit_listener *l = NULL;
                int before = tc_fd_count();
                tc_err(conduit_connect(ctx, uris[i], &f), CONDUIT_E_UNSUPPORTED);
                expect_message(conduit_ctx_error_message(ctx), "Windows");
                tc_err(conduit_listen(ctx, uris[i], &l), CONDUIT_E_UNSUPPORTED);
                ck_assert_int_eq(tc_fd_count(), before);
        }
        conduit_ctx_free(ctx);
}
END_TEST

/* Any CID and any port are for listening: connecting to them is
 * -EDESTADDRREQ. */
START_TEST(test_connect_any)
{
        static const char *const uris[] = { "vsock://any:1",          "vsock://:1024",
                                            "vsock://-1:1024",        "vsock://1:any",
                                            "hyperv://wildcard/1024", "hyperv://children/1024" };
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
                conduit_flow *f = NULL;
                int r = conduit_connect(NULL, uris[i], &f);
                ck_assert_msg(r == -EDESTADDRREQ, "connect %s: %d (%s), want -EDESTADDRREQ [%s]",
                              uris[i], r, conduit_strerror(r), conduit_ctx_error_message(NULL));
        }
}
END_TEST

static Suite *vsock_suite(void)
{
        Suite *s = suite_create("vsock");
        TCase *tc = tcase_create("connect");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, test_refused);
        tcase_add_loop_test(tc, test_retry_until_up, 0, 2);
        tcase_add_test(tc, test_retry_deadline);
        tcase_add_test(tc, test_connect_timeout_option);
        tcase_add_test(tc, test_connect_any);
        suite_add_tcase(s, tc);
        tc = tcase_create("flows");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, test_queries);
        tcase_add_test(tc, test_to_host);
        tcase_add_test(tc, test_max_io);
        tcase_add_test(tc, test_half_close);
        suite_add_tcase(s, tc);
        tc = tcase_create("listen-hyperv");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, test_listener_port);
        tcase_add_test(tc, test_same_socket);
        tcase_add_test(tc, test_hyperv_unsupported);
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
        return tc_run(vsock_suite());
}
