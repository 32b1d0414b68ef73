/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the hybrid-vsock handshake reader (Firecracker / Cloud
 * Hypervisor multiplexer: we send "CONNECT <port>\n", it answers
 * "OK <n>\n"). Everything goes over AF_UNIX sockets: no AF_VSOCK socket is
 * ever made.
 *
 * Input: one mode byte, then what the multiplexer sends (at most 4096
 * bytes), followed by its end of stream. mode % 6:
 *   0  conduit__vsock_mux_strip_ok() on a socketpair holding the bytes;
 *   1  a vsock-mux socket flow in lenient mode (conduit__sock_flow_strip_ok())
 *      over a socketpair, read in chunks of 1 << (mode / 6 % 8) bytes;
 *   2  conduit_connect() of vsock-mux:PATH:PORT (strict) to a Unix socket
 *      served by a thread that checks our CONNECT line and answers with the
 *      input;
 *   3  the same with ?handshake=lenient, reading after the whole answer
 *      has been sent;
 *   4, 5  as 2 and 3 with the event API (conduit_loop_connect()), whose
 *      reader is a separate implementation (src/event/connect.c).
 * A model says what must happen: strict mode accepts exactly a first line
 * "OK <digits>" of at most 63 bytes before its newline (64 with it), in
 * both readers; lenient mode drops such a line only if it is complete
 * within the first 64 bytes. Whatever follows must then be read exactly,
 * no byte more or less. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "conduit/conduit.h"
#include "conduit/event.h"
#include "backends/backends.h"

#include "fuzz-common.h"

#define MAX_PAYLOAD 4096
#define PORT        1234

static conduit_ctx *ctx;
static struct event_base *base;
static conduit_loop *loop;
static char dir[96];
static char sock_path[108];
static int listen_fd = -1;
static pthread_t server;
static sem_t go, written, done;
static const uint8_t *payload;
static size_t payload_len;

/* The model's "OK <digits>" (the newline not included). */
static bool model_ok(const uint8_t *line, size_t len)
{
        if (len < 4 || memcmp(line, "OK ", 3) != 0)
                return false;
        for (size_t i = 3; i < len; i++)
                if (line[i] < '0' || line[i] > '9')
                        return false;
        return true;
}

/* Lenient: how many leading bytes are dropped. */
static size_t model_lenient(const uint8_t *p, size_t len)
{
        size_t peek = len < 64 ? len : 64;
        const uint8_t *nl = memchr(p, '\n', peek);
        if (nl && model_ok(p, (size_t)(nl - p)))
                return (size_t)(nl - p) + 1;
        return 0;
}

/* Strict: the length of the accepted reply line with its newline, or 0
 * with *err the expected error. max: the longest line accepted. */
static size_t model_strict(const uint8_t *p, size_t len, size_t max, int *err)
{
        for (size_t i = 0; i < len; i++) {
                if (p[i] == '\n') {
                        if (model_ok(p, i))
                                return i + 1;
                        *err = CONDUIT_E_PROTOCOL;
                        return 0;
                }
                if (i + 1 > max) {
                        *err = CONDUIT_E_PROTOCOL; /* too long */
                        return 0;
                }
        }
        *err = -ECONNREFUSED; /* closed before OK */
        return 0;
}

static void wait_readable(int fd, const char *what)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r;
        do
                r = poll(&p, 1, 10000);
        while (r < 0 && errno == EINTR);
        FUZZ_CHECK(r > 0, "%s: nothing within 10 s", what);
}

/* sem_wait() that a signal does not cut short: libFuzzer's -timeout
 * watchdog is a SIGALRM interval timer (every 16 s with run.sh's
 * -timeout=30), and a wait it interrupted let an input be freed while the
 * server thread had still to send it (a use-after-free in the harness,
 * found by a 30-minute run). */
static void sem_wait_all(sem_t *s)
{
        while (sem_wait(s) < 0)
                FUZZ_CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
}

static void send_all(int fd, const uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) /* the client gave up early (strict refusal) */
                        return;
                p += n;
                len -= (size_t)n;
        }
}

/* The multiplexer: one connection per input. */
static void *server_main(void *arg)
{
        (void)arg;
        for (;;) {
                sem_wait_all(&go);
                if (!payload)
                        return NULL;
                wait_readable(listen_fd, "accept");
                int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                FUZZ_CHECK(fd >= 0, "accept: %s", strerror(errno));
                char cmd[32];
                size_t n = 0;
                for (;;) {
                        wait_readable(fd, "CONNECT line");
                        ssize_t r = recv(fd, cmd + n, 1, 0);
                        FUZZ_CHECK(r == 1, "CONNECT line cut after %zu bytes", n);
                        if (cmd[n++] == '\n')
                                break;
                        FUZZ_CHECK(n < sizeof(cmd) - 1, "CONNECT line too long");
                }
                cmd[n] = '\0';
                char want[32];
                snprintf(want, sizeof(want), "CONNECT %u\n", PORT);
                FUZZ_CHECK(strcmp(cmd, want) == 0, "sent '%s', not '%s'", cmd, want);
                send_all(fd, payload, payload_len);
                shutdown(fd, SHUT_WR);
                sem_post(&written);
                /* until the client goes away */
                char buf[256];
                for (;;) {
                        wait_readable(fd, "client close");
                        ssize_t r = recv(fd, buf, sizeof(buf), 0);
                        if (r <= 0 && !(r < 0 && errno == EINTR))
                                break;
                }
                close(fd);
                sem_post(&done);
        }
}

static void cleanup(void)
{
        conduit_loop_free(loop);
        if (base)
                event_base_free(base);
        if (listen_fd >= 0) {
                payload = NULL;
                sem_post(&go);
                pthread_join(server, NULL);
                close(listen_fd);
                unlink(sock_path);
                rmdir(dir);
        }
        conduit_ctx_free(ctx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        setenv("CONDUIT_FORBID_VSOCK", "1", 1);
        if (conduit_ctx_new(&ctx) < 0)
                fuzz_fail("conduit_ctx_new");
        conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_CONNECT, 10000);
        conduit_ctx_set_timeout(ctx, CONDUIT_TIMEOUT_HANDSHAKE, 10000);
        base = event_base_new();
        FUZZ_CHECK(base && conduit_loop_new(ctx, base, &loop) == 0, "event loop");
        /* under TMPDIR (run.sh's work directory) if the path fits */
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp || strlen(tmp) > 60)
                tmp = "/tmp";
        snprintf(dir, sizeof(dir), "%s/conduit-fuzz-mux-XXXXXX", tmp);
        FUZZ_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        snprintf(sock_path, sizeof(sock_path), "%s/mux", dir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FUZZ_CHECK(listen_fd >= 0, "socket: %s", strerror(errno));
        FUZZ_CHECK(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                           listen(listen_fd, 4) == 0,
                   "bind/listen %s: %s", sock_path, strerror(errno));
        sem_init(&go, 0, 0);
        sem_init(&written, 0, 0);
        sem_init(&done, 0, 0);
        payload = (const uint8_t *)""; /* non-NULL while the server runs */
        FUZZ_CHECK(pthread_create(&server, NULL, server_main, NULL) == 0, "pthread_create");
        atexit(cleanup);
        return 0;
}

/* Reads f (blocking) to its end and compares with want. */
static void expect_stream(conduit_flow *f, const uint8_t *want, size_t len, size_t chunk,
                          const char *what)
{
        uint8_t buf[MAX_PAYLOAD + 64];
        size_t got = 0;
        for (int i = 0; i < MAX_PAYLOAD + 16; i++) {
                size_t ask = chunk;
                if (ask > sizeof(buf) - got)
                        ask = sizeof(buf) - got;
                FUZZ_CHECK(ask > 0, "%s: more than %zu bytes", what, got);
                ssize_t n = conduit_flow_read(f, buf + got, ask);
                FUZZ_CHECK(n >= 0, "%s: read: %zd (%s)", what, n, conduit_flow_error_message(f));
                if (n == 0) {
                        FUZZ_CHECK(got == len && memcmp(buf, want, len) == 0,
                                   "%s: read %zu bytes, expected %zu (or different bytes)", what,
                                   got, len);
                        return;
                }
                got += (size_t)n;
                FUZZ_CHECK(got <= len, "%s: read %zu bytes, expected %zu", what, got, len);
        }
        fuzz_fail("%s: no end of stream", what);
}

static void run_socketpair(const uint8_t *p, size_t len, bool flow, size_t chunk)
{
        int sv[2];
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
                   strerror(errno));
        send_all(sv[1], p, len);
        close(sv[1]);
        size_t skip = model_lenient(p, len);
        if (!flow) {
                int r = conduit__vsock_mux_strip_ok(sv[0], MSG_DONTWAIT);
                FUZZ_CHECK(r == 0, "strip_ok: %d", r);
                uint8_t buf[MAX_PAYLOAD + 1];
                size_t got = 0;
                for (;;) {
                        ssize_t n = recv(sv[0], buf + got, sizeof(buf) - got, MSG_DONTWAIT);
                        FUZZ_CHECK(n >= 0, "recv: %s", strerror(errno));
                        if (n == 0)
                                break;
                        got += (size_t)n;
                        FUZZ_CHECK(got <= len - skip, "strip_ok left too much");
                }
                FUZZ_CHECK(got == len - skip && memcmp(buf, p + skip, got) == 0,
                           "strip_ok left %zu bytes, expected %zu", got, len - skip);
                close(sv[0]);
                return;
        }
        conduit_flow *f = NULL;
        FUZZ_CHECK(conduit__sock_flow_new(ctx, &conduit__vsock_mux_ops, sv[0], true, &f) == 0,
                   "sock_flow_new");
        conduit__sock_flow_strip_ok(f);
        expect_stream(f, p + skip, len - skip, chunk, "lenient flow");
        conduit_flow_free(f);
}

struct result {
        bool done;
        int err;
        conduit_flow *f;
};

static void connected(conduit_flow *f, int err, void *userdata)
{
        struct result *res = userdata;
        res->done = true;
        res->err = err;
        res->f = f;
}

/* conduit_loop_connect(), run to its callback. */
static int event_connect(const char *uri, conduit_flow **ret)
{
        struct result res = { 0 };
        int r = conduit_loop_connect(loop, uri, connected, &res, NULL);
        if (r < 0)
                return r;
        for (int i = 0; !res.done; i++) {
                FUZZ_CHECK(i < 100000, "event connect: no callback");
                event_base_loop(base, EVLOOP_ONCE);
        }
        *ret = res.f;
        return res.err;
}

static void run_connect(const uint8_t *p, size_t len, bool lenient, bool event)
{
        char uri[256];
        snprintf(uri, sizeof(uri), "vsock-mux://%s:%u%s", sock_path, PORT,
                 lenient ? "?handshake=lenient" : "");
        payload = p;
        payload_len = len;
        sem_post(&go);
        conduit_flow *f = NULL;
        int r = event ? event_connect(uri, &f) : conduit_connect(ctx, uri, &f);
        if (lenient) {
                FUZZ_CHECK(r == 0, "lenient connect: %d (%s)", r, conduit_ctx_error_message(ctx));
                sem_wait_all(&written); /* the model assumes the whole answer is there */
                size_t skip = model_lenient(p, len);
                expect_stream(f, p + skip, len - skip, 4096, "lenient connect");
        } else {
                int err = 0;
                size_t line = model_strict(p, len, 63, &err);
                if (line) {
                        FUZZ_CHECK(r == 0, "strict connect refused a good reply: %d (%s)", r,
                                   conduit_ctx_error_message(ctx));
                        expect_stream(f, p + line, len - line, 4096, "strict connect");
                } else {
                        FUZZ_CHECK(r == err, "strict connect: %d, expected %d (%s)", r, err,
                                   conduit_ctx_error_message(ctx));
                }
                sem_wait_all(&written);
        }
        conduit_flow_free(f);
        sem_wait_all(&done);
        payload = (const uint8_t *)"";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1 || size > MAX_PAYLOAD + 1)
                return -1;
        uint8_t mode = data[0];
        const uint8_t *p = data + 1;
        size_t len = size - 1;
        switch (mode % 6) {
        case 0: run_socketpair(p, len, false, 0); break;
        case 1: run_socketpair(p, len, true, (size_t)1 << (mode / 6 % 8)); break;
        case 2: run_connect(p, len, false, false); break;
        case 3: run_connect(p, len, true, false); break;
        case 4: run_connect(p, len, false, true); break;
        case 5: run_connect(p, len, true, true); break;
        }
        return 0;
}
