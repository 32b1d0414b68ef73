/* SPDX-License-Identifier: MIT */
/* libFuzzer target: TLS over a chaotic transport.
 *
 * A TLS client and a TLS server (conduit_tls_client/server over throwaway
 * certificates from tests/tls-fixtures.c) run in one thread, both
 * non-blocking, over a pair of in-memory user flows (conduit_flow_new())
 * whose every read and write call takes its next outcome from the input:
 * -EAGAIN, -EINTR or a short count. Each side sends its message, shuts
 * its write side down (close_notify) once the handshake is done, and reads
 * until end of stream; then both are closed. Whatever the schedule, each
 * side must receive exactly the bytes the other sent, with a clean end of
 * stream, and the exchange must finish once the schedule has run out.
 *
 * Input: byte 0 flags (bit 0 explicit conduit_tls_handshake() calls first,
 * bit 1 TLS 1.2 at most, bit 2 no session resumption, bit 3 the server
 * acts first in each round), bytes 1-2 and 3-4 the client's and the
 * server's message lengths (mod 40000), byte 5 the seed of their bytes,
 * then the schedule. */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conduit/conduit.h"

#include "../tls-fixtures.h"
#include "fuzz-common.h"

#define PIPE_CAP    (64 * 1024)
#define MAX_MSG     40000
#define IDLE_ROUNDS 10000 /* rounds without progress after the schedule */

/* ---- the chaotic transport ------------------------------------------------ */

struct pipe {
        uint8_t buf[PIPE_CAP];
        size_t head, len;
        bool closed;      /* the writer shut down or went away */
        bool reader_gone; /* writes fail with -EPIPE */
};

struct side {
        struct pipe *in, *out;
        int wants;
};

static const uint8_t *sched;
static size_t sched_len, sched_pos;

/* The next outcome: -EAGAIN, -EINTR, or a byte limit (SIZE_MAX: none). */
static ssize_t next_outcome(size_t *limit)
{
        *limit = SIZE_MAX;
        if (sched_pos >= sched_len)
                return 0;
        uint8_t b = sched[sched_pos++];
        switch (b % 8) {
        case 0: return -EAGAIN;
        case 1: return -EINTR;
        case 2:
        case 3:
        case 4: *limit = (size_t)(b >> 3) + 1; return 0; /* 1..32 bytes */
        case 5: *limit = ((size_t)(b >> 3) + 1) * 257; return 0;
        default: return 0;
        }
}

static ssize_t chaos_read(conduit_flow *f, void *buf, size_t len)
{
        struct side *s = conduit_flow_impl(f);
        size_t limit;
        ssize_t o = next_outcome(&limit);
        s->wants = CONDUIT_WANT_READ;
        if (o < 0)
                return o;
        struct pipe *p = s->in;
        if (p->len == 0)
                return p->closed ? 0 : -EAGAIN;
        size_t n = len < limit ? len : limit;
        if (n > p->len)
                n = p->len;
        for (size_t i = 0; i < n; i++)
                ((uint8_t *)buf)[i] = p->buf[(p->head + i) % PIPE_CAP];
        p->head = (p->head + n) % PIPE_CAP;
        p->len -= n;
        return (ssize_t)n;
}

static ssize_t chaos_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        struct side *s = conduit_flow_impl(f);
        size_t limit;
        ssize_t o = next_outcome(&limit);
        s->wants = CONDUIT_WANT_WRITE;
        if (o < 0)
                return o;
        struct pipe *p = s->out;
        if (p->reader_gone)
                return -EPIPE;
        FUZZ_CHECK(!p->closed, "write after the transport's write shutdown");
        if (p->len == PIPE_CAP)
                return -EAGAIN;
        size_t room = PIPE_CAP - p->len, done = 0;
        if (limit > room)
                limit = room;
        for (int i = 0; i < iovcnt && done < limit; i++) {
                const uint8_t *b = iov[i].iov_base;
                for (size_t k = 0; k < iov[i].iov_len && done < limit; k++, done++)
                        p->buf[(p->head + p->len + done) % PIPE_CAP] = b[k];
        }
        FUZZ_CHECK(done > 0, "writev of nothing");
        p->len += done;
        return (ssize_t)done;
}

static int chaos_shutdown(conduit_flow *f, int how)
{
        struct side *s = conduit_flow_impl(f);
        if (how == CONDUIT_SHUT_WR)
                s->out->closed = true;
        return 0;
}

static int chaos_wants(conduit_flow *f)
{
        return ((struct side *)conduit_flow_impl(f))->wants;
}

static void chaos_destroy(conduit_flow *f)
{
        struct side *s = conduit_flow_impl(f);
        s->out->closed = true;
        s->in->reader_gone = true;
}

static const conduit_flow_ops chaos_ops = {
        .name = "chaos",
        .read = chaos_read,
        .writev = chaos_writev,
        .shutdown = chaos_shutdown,
        .wants = chaos_wants,
        .destroy = chaos_destroy,
};

/* ---- tls-fixtures.c's two helpers from tests/common.c -------------------------
 * (whose Check assertions cannot run outside a Check test) */

char *tc_tmpdir(void);
void tc_rmtree(const char *path);

char *tc_tmpdir(void)
{
        const char *base = getenv("TMPDIR");
        char *path = NULL;
        if (asprintf(&path, "%s/conduit-fuzz-XXXXXX", base && *base ? base : "/tmp") < 0 ||
            !mkdtemp(path))
                fuzz_fail("tc_tmpdir");
        return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(p);
}

void tc_rmtree(const char *path)
{
        if (path)
                nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the exchange ------------------------------------------------------------ */

static conduit_ctx *ctx;
static char *server_opts, *client_opts[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        const struct tls_fixtures *fx = tls_fixtures();
        if (conduit_ctx_new(&ctx) < 0)
                fuzz_fail("conduit_ctx_new");
        conduit_ctx_set_services_file(ctx, NULL);
        if (asprintf(&server_opts, "cert=%s&key=%s", fx->server_cert, fx->server_key) < 0)
                fuzz_fail("asprintf");
        for (int i = 0; i < 4; i++)
                if (asprintf(&client_opts[i], "servername=localhost&cafile=%s%s%s", fx->ca_cert,
                             i & 1 ? "&max_version=1.2" : "", i & 2 ? "&session_cache=0" : "") < 0)
                        fuzz_fail("asprintf");
        return 0;
}

struct peer {
        const char *name;
        conduit_flow *f;
        const uint8_t *msg; /* what it sends */
        size_t len, sent;
        const uint8_t *expect; /* what it must receive */
        size_t expect_len, got;
        bool handshaken, shut, eof;
};

static uint8_t rx[16384];

/* One round for p: handshake, write, shutdown, read. True on progress. */
static bool step(struct peer *p, bool explicit_hs)
{
        bool progress = false;
        if (explicit_hs && !p->handshaken) {
                int r = conduit_tls_handshake(p->f);
                if (r == 0)
                        p->handshaken = progress = true;
                else
                        FUZZ_CHECK(r == -EAGAIN, "%s: handshake: %d (%s)", p->name, r,
                                   conduit_flow_error_message(p->f));
                return progress;
        }
        if (p->sent < p->len) {
                ssize_t n = conduit_flow_write(p->f, p->msg + p->sent, p->len - p->sent);
                if (n > 0) {
                        p->sent += (size_t)n;
                        FUZZ_CHECK(p->sent <= p->len, "%s: wrote too much", p->name);
                        progress = true;
                } else {
                        FUZZ_CHECK(n == -EAGAIN, "%s: write: %zd (%s)", p->name, n,
                                   conduit_flow_error_message(p->f));
                }
        } else if (!p->shut) {
                /* a close_notify needs a finished handshake */
                int r = p->handshaken ? 0 : conduit_tls_handshake(p->f);
                if (r == 0) {
                        p->handshaken = true;
                        r = conduit_flow_shutdown(p->f, CONDUIT_SHUT_WR);
                }
                if (r == 0)
                        p->shut = progress = true;
                else
                        FUZZ_CHECK(r == -EAGAIN, "%s: shutdown: %d (%s)", p->name, r,
                                   conduit_flow_error_message(p->f));
        }
        if (!p->eof) {
                ssize_t n = conduit_flow_read(p->f, rx, sizeof(rx));
                /* a read that would wait leaves nothing pending, or an event
                 * loop draining pending bytes first (docs/flow.md) would
                 * spin; pending() may count an incomplete record before */
                FUZZ_CHECK(n != -EAGAIN || conduit_flow_pending(p->f) == 0,
                           "%s: -EAGAIN from a read, and pending() is not 0", p->name);
                if (n > 0) {
                        FUZZ_CHECK(p->got + (size_t)n <= p->expect_len &&
                                           memcmp(p->expect + p->got, rx, (size_t)n) == 0,
                                   "%s: received bytes that were not sent (at %zu, %zd bytes)",
                                   p->name, p->got, n);
                        p->got += (size_t)n;
                        progress = true;
                } else if (n == 0) {
                        FUZZ_CHECK(p->got == p->expect_len, "%s: EOF after %zu of %zu bytes",
                                   p->name, p->got, p->expect_len);
                        p->eof = progress = true;
                } else {
                        FUZZ_CHECK(n == -EAGAIN, "%s: read: %zd (%s)", p->name, n,
                                   conduit_flow_error_message(p->f));
                }
        }
        return progress;
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[i] = (uint8_t)x;
        }
}

static struct pipe pipes[2];
static uint8_t msg_c[MAX_MSG], msg_s[MAX_MSG];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 6 || size > 65536)
                return -1;
        uint8_t flags = data[0];
        size_t len_c = ((size_t)data[1] << 8 | data[2]) % MAX_MSG;
        size_t len_s = ((size_t)data[3] << 8 | data[4]) % MAX_MSG;
        fill(msg_c, len_c, data[5]);
        fill(msg_s, len_s, data[5] ^ 0x5a);
        sched = data + 6;
        sched_len = size - 6;
        sched_pos = 0;

        memset(pipes, 0, sizeof(pipes));
        struct side cs = { .in = &pipes[0], .out = &pipes[1] };
        struct side ss = { .in = &pipes[1], .out = &pipes[0] };
        conduit_flow *ci = NULL, *si = NULL, *c = NULL, *s = NULL;
        if (conduit_flow_new(&chaos_ops, &cs, &ci) < 0 ||
            conduit_flow_new(&chaos_ops, &ss, &si) < 0)
                fuzz_fail("conduit_flow_new");
        int r = conduit_tls_client(ctx, ci, client_opts[(flags >> 1) & 3], &c);
        FUZZ_CHECK(r == 0, "conduit_tls_client: %d (%s)", r, conduit_ctx_error_message(ctx));
        r = conduit_tls_server(ctx, si, server_opts, &s);
        FUZZ_CHECK(r == 0, "conduit_tls_server: %d (%s)", r, conduit_ctx_error_message(ctx));
        conduit_flow_set_nonblocking(c, true);
        conduit_flow_set_nonblocking(s, true);

        struct peer pc = { "client", c, msg_c, len_c, 0, msg_s, len_s, 0, false, false, false };
        struct peer ps = { "server", s, msg_s, len_s, 0, msg_c, len_c, 0, false, false, false };
        struct peer *order[2] = { &pc, &ps };
        if (flags & 8) {
                order[0] = &ps;
                order[1] = &pc;
        }
        bool explicit_hs = flags & 1;
        size_t idle = 0;
        while (!(pc.shut && pc.eof && ps.shut && ps.eof)) {
                size_t pos = sched_pos;
                bool progress = step(order[0], explicit_hs);
                progress |= step(order[1], explicit_hs);
                if (progress || sched_pos != pos)
                        idle = 0;
                else
                        FUZZ_CHECK(++idle < IDLE_ROUNDS,
                                   "stuck: client sent %zu/%zu got %zu/%zu shut %d eof %d, "
                                   "server sent %zu/%zu got %zu/%zu shut %d eof %d",
                                   pc.sent, pc.len, pc.got, pc.expect_len, pc.shut, pc.eof, ps.sent,
                                   ps.len, ps.got, ps.expect_len, ps.shut, ps.eof);
        }
        /* both ends are done: closing waits for nothing */
        r = conduit_flow_close(c);
        FUZZ_CHECK(r == 0, "client close: %d", r);
        r = conduit_flow_close(s);
        FUZZ_CHECK(r == 0, "server close: %d", r);
        return 0;
}
