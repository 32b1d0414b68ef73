/* SPDX-License-Identifier: MIT */
/* The flow API around the transfer contract (which test-conformance
 * covers): user-implemented ops, descriptors that are not sockets, socket
 * attributes and URI options, argument errors. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* ---- a minimal user flow: reads a fixed string, counts writes ---------- */

struct fixed {
        const char *data;
        size_t off;
        size_t written;
        int shut;
        int destroyed;
        int eagain_once;
};

static ssize_t fixed_read(conduit_flow *f, void *buf, size_t len)
{
        struct fixed *x = conduit_flow_impl(f);
        if (x->eagain_once) {
                x->eagain_once = 0;
                return -EAGAIN;
        }
        size_t left = strlen(x->data) - x->off;
        if (left == 0)
                return 0;
        if (len > left)
                len = left;
        if (len > 3)
                len = 3; /* short reads on purpose */
        memcpy(buf, x->data + x->off, len);
        x->off += len;
        return (ssize_t)len;
}

static ssize_t fixed_writev(conduit_flow *f, const struct iovec *iov, int n)
{
        struct fixed *x = conduit_flow_impl(f);
        if (n < 1 || iov[0].iov_len == 0)
                return conduit_flow_set_error(f, -EIO, "empty batch %d", n);
        /* accept at most 5 bytes per call: the generic layer must loop */
        size_t take = iov[0].iov_len < 5 ? iov[0].iov_len : 5;
        x->written += take;
        return (ssize_t)take;
}

static int fixed_shutdown(conduit_flow *f, int how)
{
        struct fixed *x = conduit_flow_impl(f);
        x->shut |= how;
        return 0;
}

static void fixed_destroy(conduit_flow *f)
{
        struct fixed *x = conduit_flow_impl(f);
        x->destroyed++;
}

static const conduit_flow_ops fixed_ops = {
        .name = "fixed",
        .read = fixed_read,
        .writev = fixed_writev,
        .shutdown = fixed_shutdown,
        .destroy = fixed_destroy,
};

START_TEST(user_flow_generic_layer)
{
        struct fixed x = { .data = "hello world" };
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_new(&fixed_ops, &x, &f));
        ck_assert_ptr_eq(conduit_flow_impl(f), &x);
        ck_assert_str_eq(conduit_flow_backend(f), "fixed");
        ck_assert_int_eq(conduit_flow_fd(f), -1);
        ck_assert_int_eq(conduit_flow_poll_fd(f, CONDUIT_WANT_READ), -1);
        ck_assert_uint_eq(conduit_flow_pending(f), 0);
        ck_assert_ptr_null(conduit_flow_peer(f));
        struct conduit_peer_cred cred;
        tc_err(conduit_flow_query(f, CONDUIT_QUERY_PEER_CRED, &cred), -ENOPROTOOPT);
        tc_err(conduit_flow_set_nodelay(f, true), -ENOTSUP);

        /* writes loop over the 5-byte acceptance until everything is in */
        struct iovec iov[3] = { { "abcdefgh", 8 }, { "", 0 }, { "ijklmnopqrstu", 13 } };
        ck_assert_int_eq(conduit_flow_writev(f, iov, 3), 21);
        ck_assert_uint_eq(x.written, 21);
        ck_assert_int_eq(conduit_flow_write(f, "", 0), 0);
        uint64_t out = 0;
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_BYTES_OUT, &out));
        ck_assert_uint_eq(out, 21);

        /* reads: short, then EOF, which sticks without calling the op */
        size_t len = 0;
        uint8_t *all = tc_read_all(f, &len);
        ck_assert_uint_eq(len, 11);
        ck_assert_int_eq(memcmp(all, "hello world", 11), 0);
        free(all);
        x.data = "more";
        x.off = 0;
        char buf[8];
        ck_assert_int_eq(conduit_flow_read(f, buf, sizeof(buf)), 0);
        tc_err(conduit_flow_read(f, buf, 0), -EINVAL);
        ck_assert_str_eq(conduit_flow_error_message(f), "zero-length read");

        /* shutdown reaches the op once; writes after it are -EPIPE */
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        ck_assert_int_eq(x.shut, CONDUIT_SHUT_WR);
        tc_err(conduit_flow_write(f, "x", 1), -EPIPE);
        ck_assert_uint_eq(x.written, 21);
        tc_err(conduit_flow_shutdown(f, 0), -EINVAL);
        tc_err(conduit_flow_shutdown(f, 4), -EINVAL);
        ck_assert_ptr_null(conduit_flow_free(f));
        ck_assert_int_eq(x.destroyed, 1);
}
END_TEST

START_TEST(user_flow_nonblocking_and_errors)
{
        struct fixed x = { .data = "abc", .eagain_once = 1 };
        conduit_flow *f = NULL;
        tc_err(conduit_flow_new(NULL, &x, &f), -EINVAL);
        conduit_flow_ops no_read = fixed_ops;
        no_read.read = NULL;
        tc_err(conduit_flow_new(&no_read, &x, &f), -EINVAL);
        tc_ok(conduit_flow_new(&fixed_ops, &x, &f));
        tc_ok(conduit_flow_set_nonblocking(f, true));
        ck_assert(conduit_flow_get_nonblocking(f));
        char buf[8];
        tc_err(conduit_flow_read(f, buf, sizeof(buf)), -EAGAIN);
        /* no wants op: the direction of the call */
        ck_assert_int_eq(conduit_flow_wants(f), CONDUIT_WANT_READ);
        ck_assert_int_eq(conduit_flow_read(f, buf, sizeof(buf)), 3);
        /* a write error from the op carries its message and sticks */
        struct iovec empty = { "x", 0 };
        struct iovec one = { "x", 1 };
        (void)empty;
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, 5));
        ck_assert_int_eq(conduit_flow_get_timeout(f, CONDUIT_TIMEOUT_READ), 5);
        tc_err(conduit_flow_set_timeout(f, (conduit_timeout)42, 1), -EINVAL);
        ck_assert_int_eq(conduit_flow_writev(f, &one, 1), 1);
        tc_err(conduit_flow_writev(f, NULL, 1), -EINVAL);
        tc_err(conduit_flow_writev(f, &one, -1), -EINVAL);
        tc_err(conduit_flow_read(NULL, buf, 1), -EINVAL);
        tc_err(conduit_flow_write(NULL, buf, 1), -EINVAL);
        /* close on a user flow: shutdown, drain to EOF, destroy */
        tc_ok(conduit_flow_close(f));
        ck_assert_int_eq(x.destroyed, 1);
        ck_assert_int_eq(x.shut & CONDUIT_SHUT_WR, CONDUIT_SHUT_WR);
        ck_assert_int_eq(conduit_flow_close(NULL), 0);
}
END_TEST

/* A user flow without a descriptor whose peer never stops sending: one
 * byte per read, after blocking for up to 20 ms of its read timeout. */
static ssize_t trickle_read(conduit_flow *f, void *buf, size_t len)
{
        int t = conduit_flow_get_timeout(f, CONDUIT_TIMEOUT_READ);
        struct timespec ts = { 0, (t >= 0 && t < 20 ? t : 20) * 1000000L };
        nanosleep(&ts, NULL);
        (void)len;
        *(char *)buf = 'x';
        return 1;
}

START_TEST(close_bounded_against_endless_peer)
{
        static const conduit_flow_ops trickle_ops = {
                .name = "trickle",
                .read = trickle_read,
                .writev = fixed_writev,
        };
        struct fixed x = { .data = "" };
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_new(&trickle_ops, &x, &f));
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_CLOSE, 200));
        /* returns (the test's own timeout would catch a hang) with the
         * timeout, however long the peer goes on */
        tc_err(conduit_flow_close(f), -ETIMEDOUT);
}
END_TEST

START_TEST(set_error_formats)
{
        struct fixed x = { .data = "" };
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_new(&fixed_ops, &x, &f));
        ck_assert_str_eq(conduit_flow_error_message(f), "");
        ck_assert_int_eq(conduit_flow_set_error(f, -EIO, "disk %d on fire", 3), -EIO);
        ck_assert_str_eq(conduit_flow_error_message(f), "disk 3 on fire");
        ck_assert_str_eq(conduit_flow_error_message(NULL), "");
        conduit_flow_free(f);
}
END_TEST

/* ---- descriptors that are not sockets -------------------------------- */

START_TEST(pipes_owned)
{
        int a[2], b[2];
        ck_assert_int_eq(pipe(a), 0);
        ck_assert_int_eq(pipe(b), 0);
        /* our flow reads a[0] and writes b[1] */
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_from_fds(a[0], b[1], CONDUIT_FD_OWN, &f));
        ck_assert_str_eq(conduit_flow_backend(f), "fd");
        ck_assert_int_eq(conduit_flow_poll_fd(f, CONDUIT_WANT_READ), a[0]);
        ck_assert_int_eq(conduit_flow_poll_fd(f, CONDUIT_WANT_WRITE), b[1]);
        ck_assert_int_eq(write(a[1], "ping", 4), 4);
        char buf[16];
        ck_assert_int_eq(conduit_flow_read(f, buf, sizeof(buf)), 4);
        tc_write_all(f, "pong", 4);
        ck_assert_int_eq(read(b[0], buf, sizeof(buf)), 4);
        /* shutting down the write side closes the owned write end: EOF */
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        ck_assert_int_eq(read(b[0], buf, sizeof(buf)), 0);
        ck_assert_int_lt(fcntl(b[1], F_GETFD), 0);
        /* a read timeout on a pipe */
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, 50));
        tc_err(conduit_flow_read(f, buf, sizeof(buf)), -ETIMEDOUT);
        /* non-blocking without touching O_NONBLOCK */
        tc_ok(conduit_flow_set_nonblocking(f, true));
        tc_err(conduit_flow_read(f, buf, sizeof(buf)), -EAGAIN);
        ck_assert_int_eq(fcntl(a[0], F_GETFL) & O_NONBLOCK, 0);
        close(a[1]);
        ck_assert_int_eq(conduit_flow_read(f, buf, sizeof(buf)), 0);
        conduit_flow_free(f);
        ck_assert_int_lt(fcntl(a[0], F_GETFD), 0); /* owned: closed */
        close(b[0]);
}
END_TEST

START_TEST(pipe_without_reader_no_sigpipe)
{
        /* SIGPIPE stays at its default (which would kill the process) and
         * no SIGPIPE is left pending */
        ck_assert_ptr_eq(signal(SIGPIPE, SIG_DFL), SIG_DFL);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        close(p[0]);
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_from_fds(p[1], p[1], 0, &f));
        tc_err(conduit_flow_write(f, "x", 1), -EPIPE);
        tc_err(conduit_flow_write(f, "x", 1), -EPIPE);
        sigset_t pending;
        sigpending(&pending);
        ck_assert(!sigismember(&pending, SIGPIPE));
        conduit_flow_free(f);
        ck_assert_int_ge(fcntl(p[1], F_GETFD), 0); /* borrowed: open */
        close(p[1]);
}
END_TEST

static void *close_when_full(void *arg)
{
        int *p = arg, queued = 0;
        /* once the writer has filled the pipe and sleeps in writev() */
        while (ioctl(p[0], FIONREAD, &queued) == 0 && queued < 4096)
                usleep(1000);
        usleep(50 * 1000);
        close(p[0]);
        return NULL;
}

START_TEST(pipe_reader_leaves_mid_write_no_sigpipe)
{
        /* The kernel raises SIGPIPE, and returns the bytes already moved
         * rather than -EPIPE, when the reader leaves during a blocking
         * write: that SIGPIPE must be consumed too. */
        ck_assert_ptr_eq(signal(SIGPIPE, SIG_DFL), SIG_DFL);
        sigset_t pipe_set, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_UNBLOCK, &pipe_set, NULL);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        conduit_flow *f = NULL;
        tc_ok(conduit_flow_from_fds(p[1], p[1], 0, &f));
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, close_when_full, p), 0);
        static char big[1 << 20];
        tc_err(conduit_flow_write(f, big, sizeof(big)), -EPIPE);
        pthread_join(t, NULL);
        sigpending(&pending);
        ck_assert(!sigismember(&pending, SIGPIPE));
        conduit_flow_free(f);
        close(p[1]);
}
END_TEST

START_TEST(from_fd_errors)
{
        conduit_flow *f = NULL;
        tc_err(conduit_flow_from_fd(-1, 0, &f), -EBADF);
        int fd = open("/dev/null", O_RDWR);
        close(fd);
        tc_err(conduit_flow_from_fd(fd, 0, &f), -EBADF);
        fd = open("/dev/null", O_RDWR);
        tc_err(conduit_flow_from_fd(fd, 0x80, &f), -EINVAL);
        tc_err(conduit_flow_from_fd(fd, 0, NULL), -EINVAL);
        ck_assert_ptr_null(f);
        /* /dev/null: writes vanish, reads are EOF */
        tc_ok(conduit_flow_from_fd(fd, CONDUIT_FD_OWN, &f));
        tc_write_all(f, "gone", 4);
        char b;
        ck_assert_int_eq(conduit_flow_read(f, &b, 1), 0);
        const conduit_endp *peer = conduit_flow_peer(f);
        ck_assert_int_eq(conduit_endp_get_kind(peer), CONDUIT_ENDP_FD);
        ck_assert_int_eq(conduit_endp_get_fd(peer), fd);
        conduit_flow_free(f);
        tc_err(conduit_flow_socketpair(NULL, &f), -EINVAL);
}
END_TEST

/* ---- socket attributes ------------------------------------------------ */

static int getopt_int(conduit_flow *f, int level, int name)
{
        int v = -1;
        socklen_t l = sizeof(v);
        ck_assert_int_eq(getsockopt(conduit_flow_fd(f), level, name, &v, &l), 0);
        return v;
}

START_TEST(tcp_attributes)
{
        conduit_flow *c, *s;
        tc_pair("tcp://127.0.0.1:0", &c, &s);
        tc_ok(conduit_flow_set_nodelay(c, true));
        ck_assert_int_ne(getopt_int(c, IPPROTO_TCP, TCP_NODELAY), 0);
        tc_ok(conduit_flow_set_nodelay(c, false));
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_NODELAY), 0);
        tc_ok(conduit_flow_set_keepalive(c, 30, 5, 4));
        ck_assert_int_ne(getopt_int(c, SOL_SOCKET, SO_KEEPALIVE), 0);
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_KEEPIDLE), 30);
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_KEEPINTVL), 5);
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_KEEPCNT), 4);
        tc_ok(conduit_flow_set_keepalive(c, 0, 0, 0));
        ck_assert_int_eq(getopt_int(c, SOL_SOCKET, SO_KEEPALIVE), 0);
        tc_err(conduit_flow_set_keepalive(c, 10, 0, 3), -EINVAL);
        tc_ok(conduit_flow_set_buffer_sizes(c, 32768, 16384));
        ck_assert_int_ge(getopt_int(c, SOL_SOCKET, SO_RCVBUF), 32768);
        tc_err(conduit_flow_set_buffer_sizes(c, -1, 0), -EINVAL);
        ck_assert_str_eq(conduit_flow_backend(c), "tcp");
        int type = 0;
        tc_ok(conduit_flow_query(c, CONDUIT_QUERY_SOCKET_TYPE, &type));
        ck_assert_int_eq(type, SOCK_STREAM);
        tc_err(conduit_flow_query(c, 999, &type), -ENOPROTOOPT);
        struct conduit_peer_cred cred;
        tc_err(conduit_flow_query(c, CONDUIT_QUERY_PEER_CRED, &cred), -ENOPROTOOPT);
        conduit_flow_free(c);
        conduit_flow_free(s);
}
END_TEST

START_TEST(uri_options_reach_the_socket)
{
        char *uri = NULL, *opt = NULL;
        conduit_listener *l = tc_listen("tcp://127.0.0.1:0", &uri);
        ck_assert_int_ge(asprintf(&opt, "%s?nodelay=1&keepalive=40,6,3", uri), 0);
        conduit_flow *c = NULL;
        tc_ok(conduit_connect(NULL, opt, &c));
        ck_assert_int_ne(getopt_int(c, IPPROTO_TCP, TCP_NODELAY), 0);
        ck_assert_int_ne(getopt_int(c, SOL_SOCKET, SO_KEEPALIVE), 0);
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_KEEPIDLE), 40);
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_KEEPCNT), 3);
        conduit_flow_free(c);
        free(opt);
        ck_assert_int_ge(asprintf(&opt, "%s?keepalive=1", uri), 0);
        tc_ok(conduit_connect(NULL, opt, &c));
        ck_assert_int_ne(getopt_int(c, SOL_SOCKET, SO_KEEPALIVE), 0);
        ck_assert_int_eq(getopt_int(c, IPPROTO_TCP, TCP_NODELAY), 0);
        conduit_flow_free(c);
        free(opt);
        conduit_listener_free(l);
        free(uri);
}
END_TEST

START_TEST(unix_attributes)
{
        conduit_flow *a, *b;
        tc_ok(conduit_flow_socketpair(&a, &b));
        /* TCP attributes do not exist on Unix sockets: a clear error */
        int r = conduit_flow_set_nodelay(a, true);
        ck_assert_msg(r == -EOPNOTSUPP || r == -ENOPROTOOPT || r == -EINVAL, "nodelay on unix: %d",
                      r);
        struct conduit_peer_cred cred;
        tc_ok(conduit_flow_query(a, CONDUIT_QUERY_PEER_CRED, &cred));
        ck_assert_int_eq(cred.pid, getpid());
        ck_assert_int_eq(cred.uid, getuid());
        ck_assert_int_eq(cred.gid, getgid());
        conduit_flow_free(a);
        conduit_flow_free(b);
}
END_TEST

START_TEST(strerror_and_version)
{
        ck_assert_str_eq(conduit_strerror(-ECONNREFUSED), "Connection refused");
        ck_assert_str_eq(conduit_strerror(ETIMEDOUT), "Connection timed out");
        ck_assert_str_eq(conduit_strerror(0), "Success");
        ck_assert_ptr_nonnull(conduit_strerror(-123456));
        ck_assert_str_eq(conduit_version(), CONDUIT_VERSION_STRING);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("flow");
        TCase *tc = tcase_create("flow");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, user_flow_generic_layer);
        tcase_add_test(tc, user_flow_nonblocking_and_errors);
        tcase_add_test(tc, set_error_formats);
        tcase_add_test(tc, close_bounded_against_endless_peer);
        tcase_add_test(tc, pipes_owned);
        tcase_add_test(tc, pipe_without_reader_no_sigpipe);
        tcase_add_test(tc, pipe_reader_leaves_mid_write_no_sigpipe);
        tcase_add_test(tc, from_fd_errors);
        tcase_add_test(tc, tcp_attributes);
        tcase_add_test(tc, uri_options_reach_the_socket);
        tcase_add_test(tc, unix_attributes);
        tcase_add_test(tc, strerror_and_version);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
