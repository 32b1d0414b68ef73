/* SPDX-License-Identifier: MIT */
/* Hybrid vsock (vsock-mux), connect retry, and the Hyper-V mapping and
 * AF_VSOCK guard that fail before any socket exists.
 *
 * Hybrid vsock is plain Unix sockets, so it is tested on the build host
 * against a test multiplexer that behaves as Firecracker's documentation
 * describes: a Unix listener at the "uds path"; per connection it reads
 * "CONNECT <port>\n"; if a guest listener is registered on that port it
 * answers "OK <host port>\n" and then serves the stream, else it closes at
 * once. Knobs make it misbehave in the ways a client must survive.
 * Guest-initiated connections arrive on "<path>_<port>", where the test
 * plays the VMM with a raw Unix client.
 *
 * SAFETY: this machine must never create an AF_VSOCK socket (it would reach
 * the hypervisor running it). The meson test setups set
 * CONDUIT_FORBID_VSOCK=1, which makes the library fail with -EPERM before
 * making one. Every case here that names a vsock or Hyper-V peer first
 * asserts that the guard is set, and fails (never skips) without touching
 * vsock otherwise.
 *
 * Rules, as in the conformance suite: timeouts are set and their expiry is
 * asserted, never how long anything took; loops are bounded; threads other
 * than the test's own never call ck_assert: they record, the test thread
 * asserts. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define TIMEOUT_S      60 /* per case; the valgrind setup multiplies it */
#define GUEST_PORT     5000u
#define HOST_PORT_BASE 1073741824u /* Firecracker's first host-side port */

/* ---- raw Unix sockets (the test peers do not use the library) ------------ */

/* A Unix address for path; a path longer than sun_path is reached through
 * its directory (*dirfd, closed by the caller after bind/connect). */
static int unix_addr(const char *path, struct sockaddr_un *un, int *dirfd)
{
        *dirfd = -1;
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        if (strlen(path) < sizeof(un->sun_path)) {
                memcpy(un->sun_path, path, strlen(path) + 1);
                return 0;
        }
        const char *slash = strrchr(path, '/');
        if (!slash)
                return -ENAMETOOLONG;
        char *dir = strndup(path, (size_t)(slash - path));
        if (!dir)
                return -ENOMEM;
        *dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        free(dir);
        if (*dirfd < 0)
                return -errno;
        int n = snprintf(un->sun_path, sizeof(un->sun_path), "/proc/self/fd/%d/%s", *dirfd,
                         slash + 1);
        if (n < 0 || (size_t)n >= sizeof(un->sun_path)) {
                close(*dirfd);
                *dirfd = -1;
                return -ENAMETOOLONG;
        }
        return 0;
}

/* A listening Unix socket at path, or -errno. */
static int raw_listen(const char *path)
{
        struct sockaddr_un un;
        int dirfd, r = unix_addr(path, &un, &dirfd);
        if (r < 0)
                return r;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(fd, 64) < 0) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                fd = r;
        }
        if (dirfd >= 0)
                close(dirfd);
        return fd;
}

/* A Unix client connected to path, or -errno. */
static int raw_connect(const char *path)
{
        struct sockaddr_un un;
        int dirfd, r = unix_addr(path, &un, &dirfd);
        if (r < 0)
                return r;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                fd = r;
        }
        if (dirfd >= 0)
                close(dirfd);
        return fd;
}

static bool send_all(int fd, const void *buf, size_t n)
{
        const char *p = buf;
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return false;
                p += w;
                n -= (size_t)w;
        }
        return true;
}

/* Reads exactly n bytes from a raw socket (test thread). */
static void raw_read_exact(int fd, void *buf, size_t n)
{
        size_t got = 0;
        while (got < n) { /* bounded: each round reads >= 1 byte or fails */
                ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                ck_assert_msg(r > 0, "raw read %zu of %zu: %s", got, n,
                              r == 0 ? "EOF" : strerror(errno));
                got += (size_t)r;
        }
}

/* ---- the test multiplexer ------------------------------------------------ */

enum reply {
        REPLY_OK,      /* "OK <host port>\n" */
        REPLY_OK_DATA, /* "OK <host port>\n" and after_ok, in the same write */
        REPLY_NONE,    /* no OK line: the stream (after_ok first) starts at once */
        REPLY_BAD,     /* the bytes of bad, then wait until the client goes */
        REPLY_SILENT,  /* nothing at all: wait until the client goes */
};

enum serve {
        SERVE_ECHO,       /* echo until EOF, then shut down and wait for the close */
        SERVE_HALF_CLOSE, /* send greeting, shut down at once, count what comes */
};

struct mux {
        /* configuration, set before mux_start() */
        unsigned guest_port; /* a guest listener on this port; 0: none */
        enum reply reply;
        const char *bad;      /* REPLY_BAD */
        const char *after_ok; /* REPLY_OK_DATA, REPLY_NONE: sent with the reply */
        enum serve serve;
        const char *greeting; /* SERVE_HALF_CLOSE */
        int refuse_first;     /* the first K connections: no guest listener yet */
        bool refuse_unread;   /* ... and closed without reading CONNECT (a reset) */
        /* state */
        char *path;
        int lfd;
        int stop[2];
        pthread_t thread;
        bool running;
        /* results, written by the mux thread */
        atomic_int conns; /* connections accepted */
        atomic_int done;  /* connections finished and closed */
        pthread_mutex_t lock;
        char last_connect[80]; /* the last CONNECT line, without its newline */
        uint64_t received;     /* SERVE_HALF_CLOSE: bytes the guest got */
        char err[256];         /* what went wrong on the mux side; "" if nothing */
};

static void mux_fail(struct mux *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mux_fail(struct mux *m, const char *fmt, ...)
{
        pthread_mutex_lock(&m->lock);
        if (!m->err[0]) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(m->err, sizeof(m->err), fmt, ap);
                va_end(ap);
        }
        pthread_mutex_unlock(&m->lock);
}

/* Waits until fd is readable (true), or the mux is told to stop or
 * timeout_ms passes (false; the latter is recorded as a failure). */
static bool mux_wait(struct mux *m, int fd, int timeout_ms)
{
        struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
                               { .fd = m->stop[0], .events = POLLIN } };
        for (;;) {
                int r = poll(p, 2, timeout_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0 || r == 0) {
                        mux_fail(m, "poll: %s",
                                 r == 0 ? "the client went silent" : strerror(errno));
                        return false;
                }
                return !p[1].revents;
        }
}

/* Discards what the client sends until it goes away. */
static void wait_gone(struct mux *m, int c)
{
        char buf[4096];
        for (int i = 0; i < 1000000; i++) {
                if (!mux_wait(m, c, 60000))
                        return;
                ssize_t r = recv(c, buf, sizeof(buf), 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return;
        }
}

/* Reads one line byte by byte, as a multiplexer must (what follows it is
 * the stream). False if the client went away first. */
static bool read_line(struct mux *m, int c, char *line, size_t cap)
{
        size_t n = 0;
        while (n + 1 < cap) {
                if (!mux_wait(m, c, 60000))
                        return false;
                ssize_t r = recv(c, line + n, 1, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        mux_fail(m, "the client went away before its CONNECT line");
                        return false;
                }
                if (line[n] == '\n') {
                        line[n] = '\0';
                        return true;
                }
                n++;
        }
        mux_fail(m, "CONNECT line too long");
        return false;
}

static void serve_echo(struct mux *m, int c)
{
        size_t cap = 65536;
        char *buf = malloc(cap);
        if (!buf) {
                mux_fail(m, "out of memory");
                return;
        }
        for (int i = 0; i < 10000000; i++) {
                if (!mux_wait(m, c, 60000))
                        goto out;
                ssize_t r = recv(c, buf, cap, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        goto out; /* a client that reset: nothing to echo to */
                if (r == 0)
                        break;
                if (!send_all(c, buf, (size_t)r))
                        goto out;
        }
        shutdown(c, SHUT_WR);
        wait_gone(m, c);
out:
        free(buf);
}

static void serve_half_close(struct mux *m, int c)
{
        if (m->greeting && !send_all(c, m->greeting, strlen(m->greeting))) {
                mux_fail(m, "greeting: %s", strerror(errno));
                return;
        }
        shutdown(c, SHUT_WR);
        char buf[4096];
        uint64_t total = 0;
        for (int i = 0; i < 10000000; i++) {
                if (!mux_wait(m, c, 60000))
                        break;
                ssize_t r = recv(c, buf, sizeof(buf), 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        mux_fail(m, "guest read: %s", strerror(errno));
                if (r <= 0)
                        break;
                total += (uint64_t)r;
        }
        pthread_mutex_lock(&m->lock);
        m->received = total;
        pthread_mutex_unlock(&m->lock);
}

static void mux_serve(struct mux *m, int c)
{
        int k = atomic_load(&m->conns) - 1; /* this connection's index */
        if (k < m->refuse_first && m->refuse_unread)
                return; /* closed with CONNECT unread: the client sees a reset */
        char line[80];
        if (!read_line(m, c, line, sizeof(line)))
                return;
        pthread_mutex_lock(&m->lock);
        snprintf(m->last_connect, sizeof(m->last_connect), "%s", line);
        pthread_mutex_unlock(&m->lock);
        unsigned port = 0;
        char extra;
        if (strncmp(line, "CONNECT ", 8) != 0 || sscanf(line + 8, "%u%c", &port, &extra) != 1) {
                mux_fail(m, "bad CONNECT line '%s'", line);
                return;
        }
        /* no guest listener on that port (yet): Firecracker closes */
        if (k < m->refuse_first || m->guest_port == 0 || port != m->guest_port)
                return;
        char out[512];
        int n = 0;
        switch (m->reply) {
        case REPLY_OK:
        case REPLY_OK_DATA:
                n = snprintf(out, sizeof(out), "OK %u\n%s", HOST_PORT_BASE + (unsigned)k,
                             m->reply == REPLY_OK_DATA && m->after_ok ? m->after_ok : "");
                break;
        case REPLY_NONE:
                n = snprintf(out, sizeof(out), "%s", m->after_ok ? m->after_ok : "");
                break;
        case REPLY_BAD:
                if (!send_all(c, m->bad, strlen(m->bad)))
                        mux_fail(m, "bad reply: %s", strerror(errno));
                wait_gone(m, c);
                return;
        case REPLY_SILENT: wait_gone(m, c); return;
        }
        /* one send: the reply and the first bytes of the stream together */
        if (n > 0 && !send_all(c, out, (size_t)n)) {
                mux_fail(m, "reply: %s", strerror(errno));
                return;
        }
        if (m->serve == SERVE_ECHO)
                serve_echo(m, c);
        else
                serve_half_close(m, c);
}

static void *mux_main(void *arg)
{
        struct mux *m = arg;
        for (;;) {
                if (!mux_wait(m, m->lfd, -1))
                        break;
                int c = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        mux_fail(m, "accept: %s", strerror(errno));
                        break;
                }
                atomic_fetch_add(&m->conns, 1);
                mux_serve(m, c);
                close(c);
                atomic_fetch_add(&m->done, 1);
        }
        return NULL;
}

/* Starts m's thread on a listener at path (copied). No assertions: usable
 * from any thread. 0 or -errno. */
static int mux_start(struct mux *m, const char *path)
{
        pthread_mutex_init(&m->lock, NULL);
        m->path = strdup(path);
        if (!m->path)
                return -ENOMEM;
        m->lfd = raw_listen(path);
        if (m->lfd < 0)
                return m->lfd;
        if (pipe2(m->stop, O_CLOEXEC) < 0) {
                int r = -errno;
                close(m->lfd);
                return r;
        }
        int r = pthread_create(&m->thread, NULL, mux_main, m);
        if (r != 0) {
                close(m->lfd);
                close(m->stop[0]);
                close(m->stop[1]);
                return -r;
        }
        m->running = true;
        return 0;
}

static void mux_start_ok(struct mux *m, const char *path)
{
        int r = mux_start(m, path);
        ck_assert_msg(r == 0, "test multiplexer at %s: %s", path, strerror(-r));
}

/* Stops the mux, removes its socket, asserts it saw nothing wrong. */
static void mux_stop(struct mux *m)
{
        if (m->running) {
                ck_assert_int_eq(write(m->stop[1], "x", 1), 1);
                tc_join(m->thread);
                close(m->lfd);
                close(m->stop[0]);
                close(m->stop[1]);
                unlink(m->path);
                m->running = false;
        }
        free(m->path);
        m->path = NULL;
        ck_assert_msg(!m->err[0], "test multiplexer: %s", m->err);
}

/* Waits (bounded) until the mux has finished n connections. */
static void mux_wait_done(struct mux *m, int n)
{
        for (int i = 0; i < 6000 && atomic_load(&m->done) < n; i++)
                usleep(10 * 1000);
        ck_assert_int_eq(atomic_load(&m->done), n);
}

static void expect_connect_line(struct mux *m, const char *want)
{
        char got[80];
        pthread_mutex_lock(&m->lock);
        snprintf(got, sizeof(got), "%s", m->last_connect);
        pthread_mutex_unlock(&m->lock);
        ck_assert_str_eq(got, want);
}

/* ---- fixtures ------------------------------------------------------------ */

struct dir {
        char *dir;
        char *sock; /* <dir>/v.sock */
};

static void dir_open(struct dir *d)
{
        d->dir = tc_tmpdir();
        ck_assert_int_ge(asprintf(&d->sock, "%s/v.sock", d->dir), 0);
}

static void dir_close(struct dir *d)
{
        tc_rmtree(d->dir);
        free(d->dir);
        free(d->sock);
}

/* "vsock-mux://PATH:PORT" plus a query. Caller frees. */
static char *mux_uri(const char *path, unsigned port, const char *query)
{
        char *u = NULL;
        ck_assert_int_ge(asprintf(&u, "vsock-mux://%s:%u%s%s", path, port, query ? "?" : "",
                                  query ? query : ""),
                         0);
        return u;
}

static void expect_data(conduit_flow *f, const char *want)
{
        size_t n = strlen(want), got = 0;
        char buf[512];
        ck_assert_uint_lt(n, sizeof(buf));
        while (got < n) { /* bounded: each round reads >= 1 byte or fails */
                ssize_t r = conduit_flow_read(f, buf + got, n - got);
                ck_assert_msg(r > 0, "read %zu of %zu bytes: %zd (%s) [%s]", got, n, r,
                              r ? conduit_strerror((int)r) : "EOF", conduit_flow_error_message(f));
                got += (size_t)r;
        }
        ck_assert_msg(memcmp(buf, want, n) == 0, "read '%.*s', want '%s'", (int)n, buf, want);
}

static void expect_eof(conduit_flow *f)
{
        char b;
        ssize_t r = conduit_flow_read(f, &b, 1);
        ck_assert_msg(r == 0, "read %zd (%s), want EOF [%s]", r,
                      r > 0 ? "data" : conduit_strerror((int)r), conduit_flow_error_message(f));
}

/* A byte through the mux's echo and back. */
static void echo_roundtrip(conduit_flow *f, const char *msg)
{
        tc_write_all(f, msg, strlen(msg));
        expect_data(f, msg);
}

static void expect_message(const char *what)
{
        const char *msg = conduit_ctx_error_message(NULL);
        ck_assert_msg(strstr(msg, what), "message '%s' does not say '%s'", msg, what);
}

/* e is a Unix endp naming path exactly (never a /proc detour). */
static void expect_unix_path(const char *what, const conduit_endp *e, const char *path)
{
        size_t len = 0;
        const char *p = conduit_endp_get_path(e, &len);
        ck_assert_msg(conduit_endp_get_kind(e) == CONDUIT_ENDP_UNIX && p && len == strlen(path) &&
                              memcmp(p, path, len) == 0,
                      "%s is %s %s, want unix %s", what,
                      conduit_endp_kind_name(conduit_endp_get_kind(e)), p ? p : "(no path)", path);
}

/* The guard must be on before anything here names a vsock peer. */
static void require_vsock_guard(void)
{
        const char *v = getenv("CONDUIT_FORBID_VSOCK");
        if (!v || !*v || strcmp(v, "0") == 0)
                ck_abort_msg("CONDUIT_FORBID_VSOCK is not set: refusing to run a case that could "
                             "create an AF_VSOCK socket on the build host (run through meson "
                             "test, whose setups set it)");
}

/* ---- strict handshake ---------------------------------------------------- */

struct writer {
        conduit_flow *f;
        const uint8_t *buf;
        size_t len;
        ssize_t wrote;
        int shut;
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        w->wrote = conduit_flow_write(w->f, w->buf, w->len);
        w->shut = conduit_flow_shutdown(w->f, CONDUIT_SHUT_WR);
        return NULL;
}

START_TEST(strict_echo_half_close)
{
        struct dir d;
        dir_open(&d);
        struct mux m = { .guest_port = GUEST_PORT };
        mux_start_ok(&m, d.sock);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_connect_line(&m, "CONNECT 5000");
        ck_assert_str_eq(conduit_flow_backend(f), "vsock-mux");

        /* 1 MiB + 1 each way, the client writing from a second thread, then
         * half-closing: the echo comes back whole, then EOF */
        size_t len = 1024 * 1024 + 1;
        uint8_t *out = malloc(len);
        ck_assert_ptr_nonnull(out);
        tc_fill(out, len, 7);
        struct writer w = { .f = f, .buf = out, .len = len };
        pthread_t t = tc_spawn(writer_main, &w);
        size_t got = 0;
        uint8_t *in = tc_read_all(f, &got);
        tc_join(t);
        ck_assert_msg(w.wrote == (ssize_t)len, "write: %zd (%s)", w.wrote,
                      conduit_strerror((int)w.wrote));
        tc_err(w.shut, 0);
        ck_assert_uint_eq(got, len);
        ck_assert(memcmp(in, out, len) == 0);
        expect_eof(f); /* sticky */
        /* the OK line is not part of the stream */
        uint64_t bin = 0, bout = 0;
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_BYTES_IN, &bin));
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_BYTES_OUT, &bout));
        ck_assert_uint_eq(bin, len);
        ck_assert_uint_eq(bout, len);
        tc_err(conduit_flow_close(f), 0);
        mux_wait_done(&m, 1);
        mux_stop(&m);
        free(in);
        free(out);
        free(uri);
        dir_close(&d);
}
END_TEST

/* The guest shuts down its side first; the client keeps writing to it. */
START_TEST(guest_half_closes_first)
{
        struct dir d;
        dir_open(&d);
        struct mux m = { .guest_port = GUEST_PORT,
                         .serve = SERVE_HALF_CLOSE,
                         .greeting = "guest says bye" };
        mux_start_ok(&m, d.sock);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_data(f, "guest says bye");
        expect_eof(f);
        expect_eof(f);
        static const char chunk[] = "still talking to a guest that stopped talking";
        for (int i = 0; i < 100; i++)
                tc_write_all(f, chunk, sizeof(chunk) - 1);
        tc_err(conduit_flow_close(f), 0);
        mux_wait_done(&m, 1);
        pthread_mutex_lock(&m.lock);
        uint64_t received = m.received;
        pthread_mutex_unlock(&m.lock);
        ck_assert_uint_eq(received, 100 * (sizeof(chunk) - 1));
        mux_stop(&m);
        free(uri);
        dir_close(&d);
}
END_TEST

/* Bytes the guest sends in the same write as the OK line belong to the
 * stream: the client reads the reply byte by byte and loses none. */
START_TEST(bytes_after_ok_kept)
{
        struct dir d;
        dir_open(&d);
        struct mux m = { .guest_port = GUEST_PORT,
                         .reply = REPLY_OK_DATA,
                         .after_ok = "hello from the guest\nOK 77\n" };
        mux_start_ok(&m, d.sock);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_data(f, "hello from the guest\nOK 77\n");
        echo_roundtrip(f, "and the echo");
        uint64_t bin = 0;
        tc_ok(conduit_flow_query(f, CONDUIT_QUERY_BYTES_IN, &bin));
        ck_assert_uint_eq(bin, strlen("hello from the guest\nOK 77\nand the echo"));
        tc_err(conduit_flow_close(f), 0);
        mux_stop(&m);
        free(uri);
        dir_close(&d);
}
END_TEST

START_TEST(closed_before_ok_is_refused)
{
        struct dir d;
        dir_open(&d);
        struct mux m = { .guest_port = GUEST_PORT };
        mux_start_ok(&m, d.sock);
        conduit_flow *f = NULL;
        /* no guest listener on port 5001: the mux reads CONNECT and closes */
        char *uri = mux_uri(d.sock, GUEST_PORT + 1, NULL);
        tc_err(conduit_connect(NULL, uri, &f), -ECONNREFUSED);
        expect_message("nothing listens on that port");
        ck_assert_ptr_null(f);
        expect_connect_line(&m, "CONNECT 5001");
        /* the listener on 5000 is there */
        char *ok = mux_uri(d.sock, GUEST_PORT, NULL);
        tc_ok(conduit_connect(NULL, ok, &f));
        echo_roundtrip(f, "x");
        conduit_flow_free(f);
        mux_stop(&m);

        /* a mux that closes without even reading the CONNECT line (the
         * client sees a reset) refuses too */
        struct mux r = { .guest_port = GUEST_PORT, .refuse_first = 1000, .refuse_unread = true };
        mux_start_ok(&r, d.sock);
        f = NULL;
        tc_err(conduit_connect(NULL, ok, &f), -ECONNREFUSED);
        ck_assert_ptr_null(f);
        mux_stop(&r);

        /* no multiplexer at all: the Unix socket's own error */
        tc_err(conduit_connect(NULL, ok, &f), -ENOENT);
        ck_assert_ptr_null(f);
        free(ok);
        free(uri);
        dir_close(&d);
}
END_TEST

START_TEST(bad_reply_is_protocol_error)
{
        static const char *const replies[] = {
                "ERROR no such port\n",
                "OK\n",
                "OK \n",
                "OK 12a\n",
                "ok 12\n",
                "OK  12\n",
                "OK 12\r\n",
                "OK -1\n",
                "CONNECT 5000\n",
                "\n",
                "OKAY 1234\n",
                /* never a newline: too long to be a reply */
                "OKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOKOK",
        };
        struct dir d;
        dir_open(&d);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
                struct mux m = { .guest_port = GUEST_PORT, .reply = REPLY_BAD, .bad = replies[i] };
                mux_start_ok(&m, d.sock);
                conduit_flow *f = NULL;
                int r = conduit_connect(NULL, uri, &f);
                ck_assert_msg(r == CONDUIT_E_PROTOCOL, "reply '%s': %d (%s), want %s [%s]",
                              replies[i], r, conduit_strerror(r),
                              conduit_strerror(CONDUIT_E_PROTOCOL),
                              conduit_ctx_error_message(NULL));
                ck_assert_ptr_null(f);
                mux_wait_done(&m, 1); /* the client closed its socket */
                mux_stop(&m);
        }
        /* the message quotes what the multiplexer said */
        struct mux m = { .guest_port = GUEST_PORT, .reply = REPLY_BAD, .bad = "ERROR nope\n" };
        mux_start_ok(&m, d.sock);
        conduit_flow *f = NULL;
        tc_err(conduit_connect(NULL, uri, &f), CONDUIT_E_PROTOCOL);
        expect_message("ERROR nope");
        mux_stop(&m);
        free(uri);
        dir_close(&d);
}
END_TEST

/* The longest reply accepted is 64 bytes with its newline, as the event
 * API's reader and a lenient first read have it (the blocking reader
 * refused 63 characters before the newline; found by
 * tests/fuzz/fuzz-vsock-mux). */
START_TEST(longest_reply_line)
{
        char longest[80] = "OK ", too_long[80] = "OK ";
        memset(longest + 3, '7', 60);
        strcpy(longest + 63, "\n");
        memset(too_long + 3, '7', 61);
        strcpy(too_long + 64, "\n");
        struct dir d;
        dir_open(&d);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        struct mux m = { .guest_port = GUEST_PORT, .reply = REPLY_BAD, .bad = longest };
        mux_start_ok(&m, d.sock);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        conduit_flow_free(f);
        mux_wait_done(&m, 1);
        mux_stop(&m);
        struct mux m2 = { .guest_port = GUEST_PORT, .reply = REPLY_BAD, .bad = too_long };
        mux_start_ok(&m2, d.sock);
        f = NULL;
        tc_err(conduit_connect(NULL, uri, &f), CONDUIT_E_PROTOCOL);
        ck_assert_ptr_null(f);
        mux_wait_done(&m2, 1);
        mux_stop(&m2);
        free(uri);
        dir_close(&d);
}
END_TEST

START_TEST(no_reply_times_out)
{
        struct dir d;
        dir_open(&d);
        struct mux m = { .guest_port = GUEST_PORT, .reply = REPLY_SILENT };
        mux_start_ok(&m, d.sock);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);

        /* the context's handshake timeout */
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 300));
        conduit_flow *f = NULL;
        tc_err(conduit_connect(ctx, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        expect_message("handshake");

        /* the connect timeout bounds the handshake too (a 10-minute
         * handshake timeout would outlast the case's time limit) */
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 600000));
        char *bounded = mux_uri(d.sock, GUEST_PORT, "connect_timeout=300ms");
        tc_err(conduit_connect(ctx, bounded, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_CONNECT, 300));
        tc_err(conduit_connect(ctx, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);

        /* lenient: no waiting for the OK at all; the silence shows up as a
         * read timeout on the flow */
        char *lenient = mux_uri(d.sock, GUEST_PORT, "handshake=lenient");
        tc_ok(conduit_connect(ctx, lenient, &f));
        tc_ok(conduit_flow_set_timeout(f, CONDUIT_TIMEOUT_READ, 200));
        char b;
        tc_err(conduit_flow_read(f, &b, 1), -ETIMEDOUT);
        conduit_flow_free(f);
        mux_wait_done(&m, 4);
        mux_stop(&m);
        conduit_ctx_free(ctx);
        free(lenient);
        free(bounded);
        free(uri);
        dir_close(&d);
}
END_TEST

/* ---- lenient handshake --------------------------------------------------- */

START_TEST(lenient_without_ok)
{
        struct dir d;
        dir_open(&d);
        char *uri = mux_uri(d.sock, GUEST_PORT, "handshake=lenient");
        struct mux m = { .guest_port = GUEST_PORT, .reply = REPLY_NONE };
        mux_start_ok(&m, d.sock);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        echo_roundtrip(f, "ping");
        echo_roundtrip(f, "OK 12\n"); /* later data is never stripped */
        ck_assert_str_eq(conduit_endp_get_option(conduit_flow_peer(f), "handshake"), "lenient");
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        expect_eof(f);
        tc_err(conduit_flow_close(f), 0);
        mux_stop(&m);

        /* no OK, and the guest's first bytes are not an OK line: all data */
        struct mux g = { .guest_port = GUEST_PORT,
                         .reply = REPLY_NONE,
                         .after_ok = "OK?\nnot an OK line" };
        mux_start_ok(&g, d.sock);
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_data(f, "OK?\nnot an OK line");
        echo_roundtrip(f, "pong");
        conduit_flow_free(f);
        mux_stop(&g);
        free(uri);
        dir_close(&d);
}
END_TEST

START_TEST(lenient_strips_ok)
{
        struct dir d;
        dir_open(&d);
        char *uri = mux_uri(d.sock, GUEST_PORT, "handshake=lenient");
        struct mux m = { .guest_port = GUEST_PORT };
        mux_start_ok(&m, d.sock);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        echo_roundtrip(f, "ping");
        tc_ok(conduit_flow_shutdown(f, CONDUIT_SHUT_WR));
        expect_eof(f); /* nothing else came: the OK line was dropped */
        tc_err(conduit_flow_close(f), 0);
        mux_stop(&m);

        /* the OK line and data in the same write: the line goes, the data
         * stays */
        struct mux g = { .guest_port = GUEST_PORT,
                         .reply = REPLY_OK_DATA,
                         .after_ok = "guest data" };
        mux_start_ok(&g, d.sock);
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_data(f, "guest data");
        echo_roundtrip(f, "pong");
        conduit_flow_free(f);
        mux_stop(&g);
        free(uri);
        dir_close(&d);
}
END_TEST

/* ---- paths --------------------------------------------------------------- */

/* <dir>/aaa.../bbb.../v.sock, longer than sun_path. */
static char *long_sock_path(const char *dir)
{
        char a[61], b[61], *d1 = NULL, *d2 = NULL, *p = NULL;
        memset(a, 'a', 60);
        memset(b, 'b', 60);
        a[60] = b[60] = '\0';
        ck_assert_int_ge(asprintf(&d1, "%s/%s", dir, a), 0);
        ck_assert_int_ge(asprintf(&d2, "%s/%s", d1, b), 0);
        ck_assert_int_eq(mkdir(d1, 0700), 0);
        ck_assert_int_eq(mkdir(d2, 0700), 0);
        ck_assert_int_ge(asprintf(&p, "%s/v.sock", d2), 0);
        ck_assert_uint_gt(strlen(p), sizeof(((struct sockaddr_un *)0)->sun_path));
        free(d1);
        free(d2);
        return p;
}

/* Nothing may exist at path cut to 107 or 108 bytes. */
static void nothing_truncated(const char *path)
{
        struct stat st;
        for (size_t cut = 107; cut <= 108; cut++) {
                char *t = strndup(path, cut);
                ck_assert_msg(lstat(t, &st) < 0, "something exists at the truncated path %s", t);
                free(t);
        }
}

START_TEST(long_path)
{
        struct dir d;
        dir_open(&d);
        char *path = long_sock_path(d.dir);
        struct mux m = { .guest_port = GUEST_PORT };
        mux_start_ok(&m, path);
        char *uri = mux_uri(path, GUEST_PORT, NULL);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_connect_line(&m, "CONNECT 5000");
        echo_roundtrip(f, "through a long path");
        size_t len = 0;
        const char *got = conduit_endp_get_path(conduit_flow_peer(f), &len);
        ck_assert_str_eq(got, path);
        ck_assert_uint_eq(len, strlen(path));
        tc_err(conduit_flow_close(f), 0);
        mux_stop(&m);

        /* listening there: <path>_<port>, never truncated either */
        conduit_listener *l = NULL;
        tc_ok(conduit_listen(NULL, uri, &l));
        char *lpath = NULL;
        ck_assert_int_ge(asprintf(&lpath, "%s_%u", path, GUEST_PORT), 0);
        struct stat st;
        ck_assert_msg(stat(lpath, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", lpath);
        nothing_truncated(lpath);
        int c = raw_connect(lpath);
        ck_assert_msg(c >= 0, "connect %s: %s", lpath, strerror(-c));
        conduit_flow *s = NULL;
        tc_ok(conduit_listener_accept(l, &s));
        ck_assert_str_eq(conduit_flow_backend(s), "vsock-mux");
        expect_unix_path("the accepted flow's local endp", conduit_flow_local(s), lpath);
        ck_assert(send_all(c, "vmm", 3));
        expect_data(s, "vmm");
        conduit_flow_free(s);
        close(c);
        conduit_listener_free(l);
        ck_assert_msg(stat(lpath, &st) < 0 && errno == ENOENT, "%s outlived its listener", lpath);
        free(lpath);
        free(uri);
        free(path);
        dir_close(&d);
}
END_TEST

START_TEST(path_with_colons)
{
        struct dir d;
        dir_open(&d);
        char *sub = NULL, *path = NULL;
        ck_assert_int_ge(asprintf(&sub, "%s/a:b", d.dir), 0);
        ck_assert_int_eq(mkdir(sub, 0700), 0);
        ck_assert_int_ge(asprintf(&path, "%s/mux:1:v.sock", sub), 0);
        struct mux m = { .guest_port = GUEST_PORT };
        mux_start_ok(&m, path);
        char *uri = mux_uri(path, GUEST_PORT, NULL);
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        expect_connect_line(&m, "CONNECT 5000");
        echo_roundtrip(f, "colons");
        const conduit_endp *peer = conduit_flow_peer(f);
        ck_assert_str_eq(conduit_endp_get_path(peer, NULL), path);
        ck_assert_int_eq(conduit_endp_get_port(peer), GUEST_PORT);
        conduit_flow_free(f);

        /* the Kata alias names the same thing */
        char *kata = NULL;
        ck_assert_int_ge(asprintf(&kata, "hvsock://%s:%u", path, GUEST_PORT), 0);
        tc_ok(conduit_connect(NULL, kata, &f));
        echo_roundtrip(f, "kata");
        peer = conduit_flow_peer(f);
        ck_assert_int_eq(conduit_endp_get_kind(peer), CONDUIT_ENDP_VSOCK_MUX);
        char *s = NULL;
        tc_ok(conduit_endp_format(peer, &s));
        ck_assert_str_eq(s, uri);
        free(s);
        conduit_flow_free(f);
        mux_stop(&m);

        /* listening: "<path>_<port>" with the colons kept */
        conduit_listener *l = NULL;
        tc_ok(conduit_listen(NULL, uri, &l));
        char *lpath = NULL;
        ck_assert_int_ge(asprintf(&lpath, "%s_%u", path, GUEST_PORT), 0);
        struct stat st;
        ck_assert_msg(stat(lpath, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", lpath);
        conduit_listener_free(l);
        free(lpath);
        free(kata);
        free(uri);
        free(path);
        free(sub);
        dir_close(&d);
}
END_TEST

/* ---- retry --------------------------------------------------------------- */

START_TEST(retry_until_guest_listens)
{
        struct dir d;
        dir_open(&d);
        conduit_flow *f = NULL;

        /* refused three times, then a guest listener: retry=10s gets there */
        struct mux m = { .guest_port = GUEST_PORT, .refuse_first = 3 };
        mux_start_ok(&m, d.sock);
        char *uri = mux_uri(d.sock, GUEST_PORT, "retry=10s");
        tc_ok(conduit_connect(NULL, uri, &f));
        ck_assert_int_eq(atomic_load(&m.conns), 4);
        echo_roundtrip(f, "up at last");
        tc_err(conduit_flow_close(f), 0);
        mux_stop(&m);

        /* the same through the context's retry timeout; resets count as
         * "not up yet" too */
        struct mux c = { .guest_port = GUEST_PORT, .refuse_first = 2, .refuse_unread = true };
        mux_start_ok(&c, d.sock);
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_RETRY, 10000));
        char *plain = mux_uri(d.sock, GUEST_PORT, NULL);
        tc_ok(conduit_connect(ctx, plain, &f));
        ck_assert_int_eq(atomic_load(&c.conns), 3);
        echo_roundtrip(f, "via the context");
        conduit_flow_free(f);
        mux_stop(&c);

        /* without retry the first refusal is the answer */
        struct mux n = { .guest_port = GUEST_PORT, .refuse_first = 3 };
        mux_start_ok(&n, d.sock);
        f = NULL;
        tc_err(conduit_connect(NULL, plain, &f), -ECONNREFUSED);
        ck_assert_ptr_null(f);
        mux_wait_done(&n, 1);
        ck_assert_int_eq(atomic_load(&n.conns), 1);
        mux_stop(&n);
        conduit_ctx_free(ctx);
        free(plain);
        free(uri);
        dir_close(&d);
}
END_TEST

START_TEST(retry_gives_up)
{
        struct dir d;
        dir_open(&d);
        conduit_flow *f = NULL;
        /* no guest listener ever: -ETIMEDOUT once retry=500ms is over; the
         * message counts the attempts (each reached the mux, but perhaps a
         * last one cut short by the deadline) and quotes the last failure */
        struct mux m = { .guest_port = 0 };
        mux_start_ok(&m, d.sock);
        char *uri = mux_uri(d.sock, GUEST_PORT, "retry=500ms");
        tc_err(conduit_connect(NULL, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        const char *msg = conduit_ctx_error_message(NULL);
        int attempts = -1;
        const char *a = strstr(msg, "not up after 500 ms and ");
        ck_assert_msg(a && sscanf(a, "not up after 500 ms and %d attempts", &attempts) == 1,
                      "message: %s", msg);
        ck_assert_msg(strstr(msg, "(last: ") && strstr(msg, uri), "message: %s", msg);
        int conns = atomic_load(&m.conns);
        ck_assert_msg(attempts >= 1 && (conns == attempts || conns == attempts - 1),
                      "%d attempts, %d connections: %s", attempts, conns, msg);

        /* an error that is not "not up yet" ends at once: one connection */
        mux_wait_done(&m, conns);
        mux_stop(&m);
        struct mux b = { .guest_port = GUEST_PORT, .reply = REPLY_BAD, .bad = "NO\n" };
        mux_start_ok(&b, d.sock);
        char *ten = mux_uri(d.sock, GUEST_PORT, "retry=10s");
        tc_err(conduit_connect(NULL, ten, &f), CONDUIT_E_PROTOCOL);
        ck_assert_int_eq(atomic_load(&b.conns), 1);
        mux_stop(&b);

        /* each attempt is bounded by the retry deadline: a mux that never
         * answers, a 10-minute handshake timeout, retry=500ms */
        struct mux s = { .guest_port = GUEST_PORT, .reply = REPLY_SILENT };
        mux_start_ok(&s, d.sock);
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 600000));
        tc_err(conduit_connect(ctx, uri, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        mux_stop(&s);
        conduit_ctx_free(ctx);
        free(ten);
        free(uri);
        dir_close(&d);
}
END_TEST

struct late_start {
        struct mux *m;
        const char *path;
        int r;
};

static void *start_later(void *arg)
{
        struct late_start *ls = arg;
        struct timespec ts = { 0, 300 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        ls->r = mux_start(ls->m, ls->path);
        return NULL;
}

/* The multiplexer's socket file does not exist yet (the VMM is starting):
 * -ENOENT is "not up yet" too. */
START_TEST(retry_until_socket_exists)
{
        struct dir d;
        dir_open(&d);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        conduit_flow *f = NULL;
        tc_err(conduit_connect(NULL, uri, &f), -ENOENT);
        /* the message names the multiplexer's socket and what went wrong */
        char *unix_uri = NULL;
        ck_assert_int_ge(asprintf(&unix_uri, "multiplexer socket: unix://%s: ", d.sock), 0);
        expect_message(unix_uri);
        expect_message(conduit_strerror(-ENOENT));
        free(unix_uri);
        ck_assert_ptr_null(f);

        struct mux m = { .guest_port = GUEST_PORT };
        struct late_start ls = { .m = &m, .path = d.sock, .r = 1 };
        pthread_t t = tc_spawn(start_later, &ls);
        char *retry = mux_uri(d.sock, GUEST_PORT, "retry=10s");
        int r = conduit_connect(NULL, retry, &f);
        tc_join(t);
        ck_assert_msg(ls.r == 0, "test multiplexer: %s", strerror(-ls.r));
        tc_ok(r);
        echo_roundtrip(f, "there it is");
        conduit_flow_free(f);
        mux_stop(&m);

        /* the same for a plain Unix socket */
        char *upath = NULL, *uuri = NULL;
        ck_assert_int_ge(asprintf(&upath, "%s/plain.sock", d.dir), 0);
        ck_assert_int_ge(asprintf(&uuri, "unix://%s?retry=10s", upath), 0);
        struct mux u = { .guest_port = GUEST_PORT };
        struct late_start lu = { .m = &u, .path = upath, .r = 1 };
        t = tc_spawn(start_later, &lu);
        r = conduit_connect(NULL, uuri, &f);
        tc_join(t);
        ck_assert_msg(lu.r == 0, "test listener: %s", strerror(-lu.r));
        tc_ok(r);
        ck_assert_str_eq(conduit_flow_backend(f), "unix");
        tc_write_all(f, "CONNECT 5000\n", 13); /* the mux does not care who asks */
        expect_data(f, "OK ");
        conduit_flow_free(f);
        mux_stop(&u);
        free(upath);
        free(uuri);
        free(retry);
        free(uri);
        dir_close(&d);
}
END_TEST

/* ---- guest-initiated connections ----------------------------------------- */

START_TEST(listen_on_path_port)
{
        struct dir d;
        dir_open(&d);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        conduit_listener *l = NULL;
        tc_ok(conduit_listen(NULL, uri, &l));
        conduit_endp *want = NULL;
        tc_ok(conduit_endp_parse(uri, &want));
        ck_assert(conduit_endp_equal(conduit_listener_endp(l), want));
        ck_assert_int_eq(conduit_endp_get_kind(conduit_listener_endp(l)), CONDUIT_ENDP_VSOCK_MUX);

        char *lpath = NULL;
        ck_assert_int_ge(asprintf(&lpath, "%s_%u", d.sock, GUEST_PORT), 0);
        struct stat st;
        ck_assert_msg(stat(lpath, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", lpath);
        ck_assert_msg(lstat(d.sock, &st) < 0, "the listener made %s itself", d.sock);

        /* the VMM delivers a guest's connection: a plain stream */
        int c = raw_connect(lpath);
        ck_assert_msg(c >= 0, "connect %s: %s", lpath, strerror(-c));
        conduit_flow *s = NULL;
        tc_ok(conduit_listener_accept(l, &s));
        ck_assert_str_eq(conduit_flow_backend(s), "vsock-mux");
        /* its local end is the Unix socket the VMM connected to; its peer
         * the VMM's unnamed socket */
        expect_unix_path("the accepted flow's local endp", conduit_flow_local(s), lpath);
        ck_assert_int_eq(conduit_endp_get_kind(conduit_flow_peer(s)), CONDUIT_ENDP_UNIX);
        ck_assert(send_all(c, "from the guest", 14));
        expect_data(s, "from the guest");
        ck_assert_int_eq(shutdown(c, SHUT_WR), 0);
        expect_eof(s);
        tc_write_all(s, "to the guest", 12);
        char buf[12];
        raw_read_exact(c, buf, 12);
        ck_assert(memcmp(buf, "to the guest", 12) == 0);
        tc_err(conduit_flow_close(s), 0); /* the raw client shut down already */
        ck_assert_int_eq(recv(c, buf, 1, 0), 0);
        close(c);

        /* a second listener on the same path and port: in use */
        conduit_listener *l2 = NULL;
        tc_err(conduit_listen(NULL, uri, &l2), -EADDRINUSE);
        conduit_listener_free(l);
        ck_assert_msg(stat(lpath, &st) < 0 && errno == ENOENT, "%s outlived its listener", lpath);
        conduit_endp_free(want);
        free(lpath);
        free(uri);
        dir_close(&d);
}
END_TEST

START_TEST(listen_unlink_and_mode)
{
        struct dir d;
        dir_open(&d);
        char *lpath = NULL;
        ck_assert_int_ge(asprintf(&lpath, "%s_%u", d.sock, 6000u), 0);
        /* a stale socket file at <path>_6000 */
        int s = raw_listen(lpath);
        ck_assert_int_ge(s, 0);
        close(s);
        char *uri = mux_uri(d.sock, 6000, NULL);
        conduit_listener *l = NULL;
        tc_err(conduit_listen(NULL, uri, &l), -EADDRINUSE);
        ck_assert_ptr_null(l);
        char *opts = mux_uri(d.sock, 6000, "unlink=1&mode=0600");
        tc_ok(conduit_listen(NULL, opts, &l));
        struct stat st;
        ck_assert_int_eq(stat(lpath, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        int c = raw_connect(lpath);
        ck_assert_int_ge(c, 0);
        conduit_flow *f = NULL;
        tc_ok(conduit_listener_accept(l, &f));
        ck_assert(send_all(c, "m", 1));
        expect_data(f, "m");
        conduit_flow_free(f);
        close(c);
        conduit_listener_free(l);
        ck_assert_msg(stat(lpath, &st) < 0 && errno == ENOENT, "%s outlived its listener", lpath);
        free(opts);
        free(uri);
        free(lpath);
        dir_close(&d);
}
END_TEST

/* ---- endpoints and names ------------------------------------------------- */

START_TEST(endps_and_backends)
{
        struct dir d;
        dir_open(&d);
        struct mux m = { .guest_port = GUEST_PORT };
        mux_start_ok(&m, d.sock);
        static const char *const queries[] = { NULL, "handshake=strict", "handshake=lenient",
                                               "retry=5s&connect_timeout=30s" };
        for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
                char *uri = mux_uri(d.sock, GUEST_PORT, queries[i]);
                conduit_endp *want = NULL;
                tc_ok(conduit_endp_parse(uri, &want));
                conduit_flow *f = NULL;
                tc_ok(conduit_connect(NULL, uri, &f));
                ck_assert_str_eq(conduit_flow_backend(f), "vsock-mux");
                const conduit_endp *peer = conduit_flow_peer(f);
                char *ps = NULL;
                tc_ok(conduit_endp_format(peer, &ps));
                ck_assert_msg(conduit_endp_equal(peer, want), "peer %s, want %s", ps, uri);
                free(ps);
                ck_assert_int_eq(conduit_endp_get_port(peer), GUEST_PORT);
                conduit_endp *q = NULL;
                tc_ok(conduit_flow_query(f, CONDUIT_QUERY_PEER_ENDP, &q));
                ck_assert(conduit_endp_equal(q, peer));
                conduit_endp_free(q);
                /* the local end is an unnamed Unix socket */
                const conduit_endp *local = conduit_flow_local(f);
                ck_assert_int_eq(conduit_endp_get_kind(local), CONDUIT_ENDP_UNIX);
                size_t llen = 1;
                conduit_endp_get_path(local, &llen);
                ck_assert_uint_eq(llen, 0);
                /* a stream socket under it, as for any socket flow */
                int fd = conduit_flow_fd(f), type = 0;
                ck_assert_int_ge(fd, 0);
                tc_ok(conduit_flow_query(f, CONDUIT_QUERY_SOCKET_TYPE, &type));
                ck_assert_int_eq(type, SOCK_STREAM);
                /* not a vsock socket: no vsock peer CID */
                unsigned cid = 0;
                tc_err(conduit_flow_query(f, CONDUIT_QUERY_VSOCK_PEER_CID, &cid), -ENOPROTOOPT);
                echo_roundtrip(f, "e");
                tc_err(conduit_flow_close(f), 0);
                conduit_endp_free(want);
                free(uri);
        }
        mux_stop(&m);
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_VSOCK_MUX), "vsock-mux");
        dir_close(&d);
}
END_TEST

/* ---- descriptors --------------------------------------------------------- */

static void leak_cycle(const char *uri)
{
        conduit_flow *f = NULL;
        tc_ok(conduit_connect(NULL, uri, &f));
        echo_roundtrip(f, "x");
        tc_err(conduit_flow_close(f), 0);
}

START_TEST(no_fd_leak)
{
        struct dir d;
        dir_open(&d);
        char *bad_path = NULL, *silent_path = NULL;
        ck_assert_int_ge(asprintf(&bad_path, "%s/bad.sock", d.dir), 0);
        ck_assert_int_ge(asprintf(&silent_path, "%s/silent.sock", d.dir), 0);
        struct mux m = { .guest_port = GUEST_PORT };
        struct mux b = { .guest_port = GUEST_PORT, .reply = REPLY_BAD, .bad = "NO\n" };
        struct mux s = { .guest_port = GUEST_PORT, .reply = REPLY_SILENT };
        mux_start_ok(&m, d.sock);
        mux_start_ok(&b, bad_path);
        mux_start_ok(&s, silent_path);
        char *uri = mux_uri(d.sock, GUEST_PORT, NULL);
        char *lenient = mux_uri(d.sock, GUEST_PORT, "handshake=lenient");
        char *refused = mux_uri(d.sock, GUEST_PORT + 1, NULL);
        char *bad = mux_uri(bad_path, GUEST_PORT, NULL);
        char *silent = mux_uri(silent_path, GUEST_PORT, NULL);
        char *missing = mux_uri(d.dir, GUEST_PORT, NULL); /* a directory, not a socket */
        conduit_ctx *ctx = NULL;
        tc_ok(conduit_ctx_new(&ctx));
        tc_ok(conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 50));

        leak_cycle(uri); /* anything opened once and kept */
        mux_wait_done(&m, 1);
        int before = tc_fd_count();
        for (int i = 0; i < 200; i++)
                leak_cycle(uri);
        for (int i = 0; i < 20; i++)
                leak_cycle(lenient);
        conduit_flow *f = NULL;
        for (int i = 0; i < 20; i++) {
                tc_err(conduit_connect(NULL, refused, &f), -ECONNREFUSED);
                tc_err(conduit_connect(NULL, bad, &f), CONDUIT_E_PROTOCOL);
                ck_assert_int_lt(conduit_connect(NULL, missing, &f), 0);
        }
        for (int i = 0; i < 5; i++)
                tc_err(conduit_connect(ctx, silent, &f), -ETIMEDOUT);
        ck_assert_ptr_null(f);
        mux_wait_done(&m, 1 + 200 + 20 + 20);
        mux_wait_done(&b, 20);
        mux_wait_done(&s, 5);
        int after = tc_fd_count();
        ck_assert_msg(after == before, "%d descriptors open before the cycles, %d after", before,
                      after);
        mux_stop(&m);
        mux_stop(&b);
        mux_stop(&s);
        conduit_ctx_free(ctx);
        free(missing);
        free(silent);
        free(bad);
        free(refused);
        free(lenient);
        free(uri);
        free(silent_path);
        free(bad_path);
        dir_close(&d);
}
END_TEST

/* ---- Hyper-V mapping and the vsock guard --------------------------------- */

/* Each of these fails while mapping the address, before any socket; the
 * guard is required all the same, so that a mapping bug meets -EPERM
 * instead of the hypervisor. */
START_TEST(hyperv_mapping_fails_early)
{
        require_vsock_guard();
        conduit_flow *f = NULL;
        conduit_listener *l = NULL;
        /* a VM GUID names a partition only on Windows */
        tc_err(conduit_connect(NULL, "hyperv://3f2504e0-4f89-41d3-9a0c-0305e82c3301/1", &f),
               CONDUIT_E_UNSUPPORTED);
        expect_message("Windows");
        ck_assert_ptr_null(f);
        /* a service GUID not of the XXXXXXXX-facb-11e6-bd58-64006a7986d3 form */
        tc_err(conduit_connect(NULL, "hyperv://loopback/3f2504e0-4f89-41d3-9a0c-0305e82c3301", &f),
               CONDUIT_E_UNSUPPORTED);
        expect_message("Windows");
        tc_err(conduit_connect(NULL, "hyperv://parent/00000400-facb-11e6-bd58-64006a7986d4", &f),
               CONDUIT_E_UNSUPPORTED);
        expect_message("Windows");
        tc_err(conduit_listen(NULL, "hyperv://loopback/3f2504e0-4f89-41d3-9a0c-0305e82c3301", &l),
               CONDUIT_E_UNSUPPORTED);
        expect_message("Windows");
        ck_assert_ptr_null(l);
        /* "any" is for listening */
        tc_err(conduit_connect(NULL, "vsock://any:1", &f), -EDESTADDRREQ);
        tc_err(conduit_connect(NULL, "vsock://-1:1", &f), -EDESTADDRREQ);
        tc_err(conduit_connect(NULL, "hyperv://wildcard/1", &f), -EDESTADDRREQ);
        tc_err(conduit_connect(NULL, "hyperv://children/1", &f), -EDESTADDRREQ);
        ck_assert_ptr_null(f);
}
END_TEST

START_TEST(vsock_guard)
{
        /* first: the guard must be on, else fail without touching vsock */
        require_vsock_guard();
        static const char *const uris[] = {
                "hyperv://loopback/1234",
                "hyperv://parent/00000400-facb-11e6-bd58-64006a7986d3",
                "vsock://1:1234",
                "vsock://host:1024?to_host=1",
                "tls+vsock://1:1?verify=0",
                "vsock://2:1024?retry=10s", /* -EPERM is not "not up yet" */
        };
        for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
                conduit_flow *f = NULL;
                int r = conduit_connect(NULL, uris[i], &f);
                ck_assert_msg(r == -EPERM, "%s: %d (%s), want -EPERM [%s]", uris[i], r,
                              conduit_strerror(r), conduit_ctx_error_message(NULL));
                expect_message("CONDUIT_FORBID_VSOCK");
                ck_assert_ptr_null(f);
        }
        static const char *const luris[] = { "vsock://any:any", "vsock://any:1024",
                                             "hyperv://wildcard/1024" };
        for (size_t i = 0; i < sizeof(luris) / sizeof(luris[0]); i++) {
                conduit_listener *l = NULL;
                int r = conduit_listen(NULL, luris[i], &l);
                ck_assert_msg(r == -EPERM, "listen %s: %d (%s), want -EPERM [%s]", luris[i], r,
                              conduit_strerror(r), conduit_ctx_error_message(NULL));
                expect_message("CONDUIT_FORBID_VSOCK");
                ck_assert_ptr_null(l);
        }
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("vsock-mux");
        TCase *tc = tcase_create("handshake");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, strict_echo_half_close);
        tcase_add_test(tc, guest_half_closes_first);
        tcase_add_test(tc, bytes_after_ok_kept);
        tcase_add_test(tc, closed_before_ok_is_refused);
        tcase_add_test(tc, bad_reply_is_protocol_error);
        tcase_add_test(tc, longest_reply_line);
        tcase_add_test(tc, no_reply_times_out);
        tcase_add_test(tc, lenient_without_ok);
        tcase_add_test(tc, lenient_strips_ok);
        suite_add_tcase(s, tc);
        tc = tcase_create("paths");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, long_path);
        tcase_add_test(tc, path_with_colons);
        suite_add_tcase(s, tc);
        tc = tcase_create("retry");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, retry_until_guest_listens);
        tcase_add_test(tc, retry_gives_up);
        tcase_add_test(tc, retry_until_socket_exists);
        suite_add_tcase(s, tc);
        tc = tcase_create("listen");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, listen_on_path_port);
        tcase_add_test(tc, listen_unlink_and_mode);
        suite_add_tcase(s, tc);
        tc = tcase_create("introspection");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, endps_and_backends);
        tcase_add_test(tc, no_fd_leak);
        suite_add_tcase(s, tc);
        tc = tcase_create("vsock");
        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, hyperv_mapping_fails_early);
        tcase_add_test(tc, vsock_guard);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        return tc_run(suite());
}
