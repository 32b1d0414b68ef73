/* SPDX-License-Identifier: MIT */
/* conduit-cat: a socat/ncat-like tool on the public libconduit API only.
 *
 * Every mode comes down to one relay between two flows: stdin/stdout are
 * wrapped as a flow too, so connecting, listening and relaying between two
 * peers share one engine. The engine runs both flows non-blocking under one
 * poll() loop, asks each flow which readiness it waits for (a TLS read may
 * wait for writability), carries a half-close across (EOF from one side
 * becomes a write shutdown of the other) and ends when both directions are
 * done: no timers, no fixed cut-off. The manual is docs/conduit-cat.1. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <conduit/conduit.h>

#define PROG "conduit-cat"

/* Per direction: large reads keep the syscall count low on fast links. */
#define RELAY_BUF_SIZE (128 * 1024)
/* Operations one direction may run before the other gets its turn. */
#define STEP_BUDGET 16
/* How long to wait before accepting again after EMFILE/ENFILE or another
 * failed accept, so that a full descriptor table does not spin the CPU. */
#define ACCEPT_RETRY_MS 100
/* A flow without a descriptor cannot be polled: look at it this often. */
#define NO_FD_POLL_MS 10

/* --cafile, --capath, --cert, --key, --servername, --alpn, --pin, --min-tls,
 * --insecure: one option each. */
#define TLS_FLAGS 9

enum cat_exit {
        CAT_EXIT_OK = 0,
        CAT_EXIT_ERROR = 1,       /* any other runtime failure */
        CAT_EXIT_USAGE = 2,       /* bad command line */
        CAT_EXIT_RESOLVE = 3,     /* malformed URI, unknown scheme/option, name not found */
        CAT_EXIT_REFUSED = 4,     /* refused, no such socket, unreachable */
        CAT_EXIT_TIMEOUT = 5,     /* connect timeout */
        CAT_EXIT_TLS_VERIFY = 6,  /* the TLS peer failed verification */
        CAT_EXIT_UNSUPPORTED = 7, /* a transport this build has no backend for */
};

struct cat {
        conduit_ctx *ctx;
        int verbose;
        bool stats;
        bool listen;
        bool keep;
        int connect_timeout_ms; /* -1: none given */
        const char *resolve_uri;
        const char *uri[2];
        int nuri;
        /* TLS flags, set as context-wide defaults for every tls+ URI; a
         * flag given again replaces its earlier value. */
        struct tls_flag {
                const char *flag;  /* "--cafile", for messages */
                const char *key;   /* the TLS option: "cafile" */
                const char *value; /* "0" for --insecure */
        } tls[TLS_FLAGS];
        int ntls;
        bool insecure;
        /* The last library trace, so that our own identical line ("connected
         * to X", "listening on X") is not printed twice. */
        char *lib_last;
};

/* ---- messages ------------------------------------------------------------ */

static void vreport(const char *fmt, va_list ap) CONDUIT_PRINTF(1, 0);
static void vreport(const char *fmt, va_list ap)
{
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                return;
        /* one call, so the line reaches stderr in one piece */
        fprintf(stderr, PROG ": %s\n", msg);
        free(msg);
}

static void report(const char *fmt, ...) CONDUIT_PRINTF(1, 2);
static void report(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vreport(fmt, ap);
        va_end(ap);
}

/* A trace printed at verbosity level and above. */
static void trace(struct cat *c, int level, const char *fmt, ...) CONDUIT_PRINTF(3, 4);
static void trace(struct cat *c, int level, const char *fmt, ...)
{
        if (c->verbose < level)
                return;
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if (!c->lib_last || strcmp(c->lib_last, msg) != 0)
                fprintf(stderr, PROG ": %s\n", msg);
        free(msg);
        free(c->lib_last);
        c->lib_last = NULL;
}

static void log_cb(void *userdata, int level, const char *message)
{
        struct cat *c = userdata;
        (void)level;
        fprintf(stderr, PROG ": %s\n", message);
        free(c->lib_last);
        c->lib_last = strdup(message);
}

/* "<what> <uri>: <conduit_strerror>", then the library's detail message
 * unless it only repeats what was said ("... refused: Connection refused"). */
static void report_error(const char *what, const char *uri, int err, const char *detail)
{
        const char *s = conduit_strerror(err);
        size_t dl = detail ? strlen(detail) : 0, sl = strlen(s);
        bool repeats = dl >= sl && strcmp(detail + dl - sl, s) == 0 &&
                       (dl == sl || strstr(detail, uri) == detail);
        if (dl && !repeats)
                report("%s %s: %s: %s", what, uri, s, detail);
        else
                report("%s %s: %s", what, uri, s);
}

static int exit_status(int err)
{
        switch (err) {
        case CONDUIT_E_URI:
        case CONDUIT_E_SCHEME:
        case CONDUIT_E_OPTION:
        case CONDUIT_E_OPTION_VALUE:
        case CONDUIT_E_NOT_FOUND:
        case -ENAMETOOLONG: return CAT_EXIT_RESOLVE;
        case -ECONNREFUSED:
        case -ENOENT:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case -ECONNRESET:
        case -EADDRNOTAVAIL: return CAT_EXIT_REFUSED;
        case -ETIMEDOUT: return CAT_EXIT_TIMEOUT;
        case CONDUIT_E_TLS_VERIFY: return CAT_EXIT_TLS_VERIFY;
        case CONDUIT_E_UNSUPPORTED: return CAT_EXIT_UNSUPPORTED;
        /* CONDUIT_E_TLS (a failed handshake, an alert) and
         * CONDUIT_E_TLS_TRUNCATED: a runtime error like any other */
        default: return CAT_EXIT_ERROR;
        }
}

/* Listening has no peer to be refused by: -ENOENT (a missing directory) or
 * -EADDRNOTAVAIL (an address not on this host) are plain failures there. */
static int listen_exit_status(int err)
{
        int s = exit_status(err);
        return s == CAT_EXIT_REFUSED || s == CAT_EXIT_TIMEOUT ? CAT_EXIT_ERROR : s;
}

/* The canonical URI of e, or a copy of fallback; NULL only without memory. */
static char *endp_name(const conduit_endp *e, const char *fallback)
{
        char *s = NULL;
        if (e && conduit_endp_format(e, &s) >= 0)
                return s;
        return strdup(fallback);
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_ms(int ms)
{
        poll(NULL, 0, ms);
}

/* ---- the relay -------------------------------------------------------------- */

/* One flow of a relay, with the names its two halves have in messages. */
struct end {
        conduit_flow *flow;
        char *rname; /* where data read from it comes from: "stdin", a peer URI */
        char *wname; /* where data written to it goes: "stdout", a peer URI */
        bool shared; /* stdio under -k: it outlives the session, so a client's
                        EOF or failure must not shut it down */
};

enum dir_state {
        DIR_COPY,     /* reading from src, writing to dst */
        DIR_SHUTDOWN, /* src is finished: shutting down dst's write side */
        DIR_DONE,
};

/* One direction of a relay: src -> dst. */
struct dir {
        struct end *src;
        struct end *dst;
        char *buf;
        size_t off, len; /* bytes read but not yet written */
        uint64_t bytes;
        double elapsed; /* seconds from the session start until done */
        enum dir_state state;
        int err; /* what ended the direction, 0 for EOF */
        /* Where the last step stopped: the flow and readiness it waits for
         * (wait_want 0: not blocked, run again at once). */
        conduit_flow *wait_flow;
        int wait_want;
        bool wait_reading;
};

struct session {
        struct dir dir[2];
        double start;
};

/* A flow's name in messages: its peer's URI. An unnamed Unix client prints
 * as plain "unix:", so its process id tells one client from the next. */
static char *flow_name(conduit_flow *f, const char *fallback)
{
        const conduit_endp *peer = conduit_flow_peer(f);
        char *name = endp_name(peer, fallback);
        size_t len = 0;
        struct conduit_peer_cred cred;
        if (name && conduit_endp_get_kind(peer) == CONDUIT_ENDP_UNIX &&
            !conduit_endp_is_abstract(peer) && (!conduit_endp_get_path(peer, &len) || len == 0) &&
            conduit_flow_query(f, CONDUIT_QUERY_PEER_CRED, &cred) == 0) {
                char *named = NULL;
                if (asprintf(&named, "%s (pid %ld)", name, cred.pid) >= 0) {
                        free(name);
                        name = named;
                }
        }
        return name;
}

static void end_init(struct end *e, conduit_flow *f, const char *fallback)
{
        *e = (struct end){ .flow = f };
        e->rname = flow_name(f, fallback);
        e->wname = e->rname ? strdup(e->rname) : NULL;
}

static void end_clear(struct end *e)
{
        conduit_flow_free(e->flow);
        free(e->rname);
        free(e->wname);
        *e = (struct end){ 0 };
}

static const char *rname(const struct end *e)
{
        return e->rname ? e->rname : "?";
}

static const char *wname(const struct end *e)
{
        return e->wname ? e->wname : "?";
}

static int stdio_end(struct end *e)
{
        conduit_flow *f = NULL;
        int r = conduit_flow_from_fds(STDIN_FILENO, STDOUT_FILENO, CONDUIT_FD_OWN, &f);
        if (r < 0) {
                report("stdin/stdout: %s", conduit_strerror(r));
                return CAT_EXIT_ERROR;
        }
        *e = (struct end){ .flow = f, .rname = strdup("stdin"), .wname = strdup("stdout") };
        return 0;
}

static void dir_finish(struct session *s, struct dir *d)
{
        d->state = DIR_DONE;
        d->len = 0;
        d->elapsed = now_s() - s->start;
}

static void dir_block(struct dir *d, conduit_flow *f, bool reading)
{
        int w = conduit_flow_wants(f) & (CONDUIT_WANT_READ | CONDUIT_WANT_WRITE);
        d->wait_flow = f;
        d->wait_want = w ? w : reading ? CONDUIT_WANT_READ : CONDUIT_WANT_WRITE;
        d->wait_reading = reading;
}

static void report_io(const char *what, const struct end *e, const char *name, int err)
{
        const char *detail = conduit_flow_error_message(e->flow);
        if (*detail)
                report("%s %s: %s: %s", what, name, conduit_strerror(err), detail);
        else
                report("%s %s: %s", what, name, conduit_strerror(err));
}

/* dst cannot take data any more: this direction is over, and so is reading
 * its source, whose data would have nowhere to go. */
static void dir_write_failed(struct cat *c, struct session *s, struct dir *d, int err)
{
        report_io("write to", d->dst, wname(d->dst), err);
        d->err = err;
        if (!d->src->shared) {
                trace(c, 1, "shutting down read side of %s", rname(d->src));
                conduit_flow_shutdown(d->src->flow, CONDUIT_SHUT_RD);
        }
        dir_finish(s, d);
}

/* Read errors that mean the whole connection is gone, not just its
 * incoming half. */
static bool connection_broken(int err)
{
        switch (err) {
        case -ECONNRESET:
        case -ECONNABORTED:
        case -ENOTCONN:
        case -EPIPE:
        case -ETIMEDOUT:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case CONDUIT_E_TLS:
        case CONDUIT_E_TLS_VERIFY:
        case CONDUIT_E_TLS_TRUNCATED:
        case CONDUIT_E_PROTOCOL: return true;
        default: return false;
        }
}

/* d's source broke: the direction writing into it has nowhere to go either,
 * so it ends too instead of waiting for data (say, on an idle stdin) that
 * could never be delivered. */
static void drop_reverse(struct cat *c, struct session *s, struct dir *d)
{
        struct dir *r = d == &s->dir[0] ? &s->dir[1] : &s->dir[0];
        if (r->state == DIR_DONE || r->dst != d->src)
                return;
        trace(c, 1, "%s is gone: no longer reading %s", wname(r->dst), rname(r->src));
        if (!r->src->shared)
                conduit_flow_shutdown(r->src->flow, CONDUIT_SHUT_RD);
        r->err = r->err ? r->err : d->err;
        dir_finish(s, r);
}

/* Moves data from src to dst until one of them would block or the budget
 * is spent. */
static void dir_step(struct cat *c, struct session *s, struct dir *d)
{
        d->wait_want = 0;
        for (int budget = STEP_BUDGET; budget > 0 && d->state != DIR_DONE; budget--) {
                if (d->state == DIR_SHUTDOWN) {
                        if (d->dst->shared) {
                                dir_finish(s, d);
                                return;
                        }
                        int r = conduit_flow_shutdown(d->dst->flow, CONDUIT_SHUT_WR);
                        if (r == -EAGAIN) {
                                dir_block(d, d->dst->flow, false);
                                return;
                        }
                        if (r < 0)
                                trace(c, 1, "shutting down write side of %s: %s", wname(d->dst),
                                      conduit_strerror(r));
                        dir_finish(s, d);
                        return;
                }
                if (d->len > 0) {
                        ssize_t n = conduit_flow_write(d->dst->flow, d->buf + d->off, d->len);
                        if (n == -EAGAIN) {
                                dir_block(d, d->dst->flow, false);
                                return;
                        }
                        if (n < 0) {
                                dir_write_failed(c, s, d, (int)n);
                                return;
                        }
                        trace(c, 2, "%zd bytes to %s", n, wname(d->dst));
                        d->off += (size_t)n;
                        d->len -= (size_t)n;
                        d->bytes += (uint64_t)n;
                        continue;
                }
                ssize_t n = conduit_flow_read(d->src->flow, d->buf, RELAY_BUF_SIZE);
                if (n == -EAGAIN) {
                        dir_block(d, d->src->flow, true);
                        return;
                }
                if (n <= 0) {
                        if (n < 0) {
                                /* A broken source ends like a finished one: the
                                 * other side learns that no more data comes. */
                                report_io("read from", d->src, rname(d->src), (int)n);
                                d->err = (int)n;
                                if (connection_broken((int)n))
                                        drop_reverse(c, s, d);
                        }
                        if (d->dst->shared)
                                trace(c, 1, "%s from %s, %s stays open for the next client",
                                      n == 0 ? "EOF" : "error", rname(d->src), wname(d->dst));
                        else
                                trace(c, 1, "%s from %s, shutting down write side of %s",
                                      n == 0 ? "EOF" : "error", rname(d->src), wname(d->dst));
                        d->state = DIR_SHUTDOWN;
                        continue;
                }
                trace(c, 2, "%zd bytes from %s", n, rname(d->src));
                d->off = 0;
                d->len = (size_t)n;
        }
}

/* Adds the descriptors d waits for to p; lowers *timeout when d can go on
 * without waiting. */
static void dir_poll(const struct dir *d, struct pollfd *p, nfds_t *n, int *timeout)
{
        if (d->state == DIR_DONE)
                return;
        /* not blocked (budget spent), or a flow holding data already read */
        if (d->wait_want == 0 || (d->wait_reading && conduit_flow_pending(d->wait_flow) > 0)) {
                *timeout = 0;
                return;
        }
        static const int wants[2] = { CONDUIT_WANT_READ, CONDUIT_WANT_WRITE };
        for (int i = 0; i < 2; i++) {
                if (!(d->wait_want & wants[i]))
                        continue;
                int fd = conduit_flow_poll_fd(d->wait_flow, wants[i]);
                if (fd < 0) {
                        if (*timeout < 0 || *timeout > NO_FD_POLL_MS)
                                *timeout = NO_FD_POLL_MS;
                        continue;
                }
                p[(*n)++] = (struct pollfd){
                        .fd = fd,
                        .events = wants[i] == CONDUIT_WANT_READ ? POLLIN : POLLOUT,
                };
        }
}

static void format_rate(double bytes, double secs, char *buf, size_t len)
{
        static const char *const units[] = { "B/s", "KiB/s", "MiB/s", "GiB/s" };
        if (secs <= 0) {
                snprintf(buf, len, "-");
                return;
        }
        double rate = bytes / secs;
        size_t u = 0;
        while (rate >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
                rate /= 1024;
                u++;
        }
        snprintf(buf, len, "%.1f %s", rate, units[u]);
}

static void print_stats(const struct dir *d)
{
        char rate[32];
        format_rate((double)d->bytes, d->elapsed, rate, sizeof(rate));
        bool ms = d->elapsed < 1;
        report("%s -> %s: %" PRIu64 " bytes in %.3f %s (%s)", rname(d->src), wname(d->dst),
               d->bytes, ms ? d->elapsed * 1000 : d->elapsed, ms ? "ms" : "s", rate);
}

/* Copies a -> b and b -> a until both directions are done. Returns 0, or
 * CAT_EXIT_ERROR when a direction ended with an error. */
static int relay(struct cat *c, struct end *a, struct end *b)
{
        struct session s = { .start = now_s() };
        s.dir[0] = (struct dir){ .src = a, .dst = b };
        s.dir[1] = (struct dir){ .src = b, .dst = a };
        int status = CAT_EXIT_OK;
        s.dir[0].buf = malloc(RELAY_BUF_SIZE);
        s.dir[1].buf = malloc(RELAY_BUF_SIZE);
        if (!s.dir[0].buf || !s.dir[1].buf) {
                report("out of memory");
                status = CAT_EXIT_ERROR;
                goto out;
        }
        conduit_flow_set_nonblocking(a->flow, true);
        conduit_flow_set_nonblocking(b->flow, true);

        for (;;) {
                for (int i = 0; i < 2; i++)
                        if (s.dir[i].state != DIR_DONE)
                                dir_step(c, &s, &s.dir[i]);
                if (s.dir[0].state == DIR_DONE && s.dir[1].state == DIR_DONE)
                        break;
                struct pollfd p[4];
                nfds_t n = 0;
                int timeout = -1;
                for (int i = 0; i < 2; i++)
                        dir_poll(&s.dir[i], p, &n, &timeout);
                if (poll(p, n, timeout) < 0 && errno != EINTR) {
                        report("poll: %s", strerror(errno));
                        status = CAT_EXIT_ERROR;
                        goto out;
                }
        }
        if (s.dir[0].err || s.dir[1].err)
                status = CAT_EXIT_ERROR;
        if (c->stats)
                for (int i = 0; i < 2; i++)
                        print_stats(&s.dir[i]);
out:
        free(s.dir[0].buf);
        free(s.dir[1].buf);
        return status;
}

/* ---- TLS ---------------------------------------------------------------------- */

/* A string answer of conduit_flow_query(), or NULL. */
static const char *query_str(conduit_flow *f, int what)
{
        const char *s = NULL;
        return conduit_flow_query(f, what, &s) == 0 ? s : NULL;
}

/* -v: what the handshake of a TLS flow agreed on. A TLS flow answers for
 * its own (outermost) layer; any other flow has no TLS version. */
static void trace_tls(struct cat *c, const struct end *e)
{
        if (c->verbose < 1)
                return;
        const char *version = query_str(e->flow, CONDUIT_QUERY_TLS_VERSION);
        if (!version)
                return;
        const char *cipher = query_str(e->flow, CONDUIT_QUERY_TLS_CIPHER);
        const char *alpn = query_str(e->flow, CONDUIT_QUERY_TLS_ALPN);
        const char *subject = query_str(e->flow, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        long vr = 0;
        char verify[64] = "";
        if (conduit_flow_query(e->flow, CONDUIT_QUERY_TLS_VERIFY_RESULT, &vr) == 0 && vr != 0)
                snprintf(verify, sizeof(verify), ", verify result %ld (not verified)", vr);
        trace(c, 1, "TLS with %s: %s, cipher %s, ALPN %s, peer certificate %s%s", rname(e), version,
              cipher ? cipher : "?", alpn ? alpn : "none", subject ? subject : "none", verify);
}

/* Finishes the handshake of a TLS flow (at once if it is done), so that a
 * peer failing verification ends the connect with its own exit status and
 * not as a relay error. Returns 0 or the exit status. */
static int tls_establish(struct cat *c, const char *name, struct end *e)
{
        int r = conduit_tls_handshake(e->flow);
        if (r == -EINVAL) /* not a TLS flow */
                return 0;
        if (r < 0) {
                report_io("TLS handshake with", e, name, r);
                return exit_status(r);
        }
        trace_tls(c, e);
        return 0;
}

/* ---- modes ------------------------------------------------------------------ */

static int connect_uri(struct cat *c, const char *uri, struct end *ret)
{
        conduit_flow *f = NULL;
        trace(c, 1, "connecting to %s", uri);
        int r = conduit_connect(c->ctx, uri, &f);
        if (r < 0) {
                report_error("connect", uri, r, conduit_ctx_error_message(c->ctx));
                return exit_status(r);
        }
        end_init(ret, f, uri);
        trace(c, 1, "connected to %s", rname(ret));
        int status = tls_establish(c, uri, ret);
        if (status != 0)
                end_clear(ret);
        return status;
}

static int run_resolve(struct cat *c)
{
        conduit_endp **list = NULL;
        int n = conduit_resolve(c->ctx, c->resolve_uri, &list);
        if (n < 0) {
                report_error("resolve", c->resolve_uri, n, conduit_ctx_error_message(c->ctx));
                return exit_status(n);
        }
        int status = CAT_EXIT_OK;
        for (int i = 0; i < n; i++) {
                char *s = NULL;
                int r = conduit_endp_format(list[i], &s);
                if (r < 0) {
                        report("resolve %s: %s", c->resolve_uri, conduit_strerror(r));
                        status = CAT_EXIT_ERROR;
                        break;
                }
                puts(s);
                free(s);
        }
        conduit_endp_list_free(list);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                report("stdout: %s", strerror(errno));
                status = CAT_EXIT_ERROR;
        }
        return status;
}

/* URI: stdin/stdout <-> URI. URI1 URI2: URI1 <-> URI2. */
static int run_connect(struct cat *c)
{
        struct end a = { 0 }, b = { 0 };
        int status = c->nuri == 1 ? stdio_end(&a) : connect_uri(c, c->uri[0], &a);
        if (status == 0)
                status = connect_uri(c, c->uri[c->nuri - 1], &b);
        if (status == 0)
                status = relay(c, &a, &b);
        end_clear(&a);
        end_clear(&b);
        return status;
}

/* Errors that say the listener itself is broken, not one client. */
static bool accept_fatal(int err)
{
        return err == -EBADF || err == -EINVAL || err == -ENOTSOCK || err == -EFAULT ||
               err == -ENOMEM;
}

/* Waits for the next client. A full descriptor table leaves the client
 * queued, so wait a little and try again rather than spin or give up; with
 * -k other per-client failures are reported and skipped. */
static int accept_next(struct cat *c, conduit_listener *l, conduit_flow **ret)
{
        bool warned = false;
        for (;;) {
                int r = conduit_listener_accept(l, ret);
                if (r == 0)
                        return 0;
                if (r == -EMFILE || r == -ENFILE) {
                        if (!warned)
                                report("accept on %s: %s; retrying every %d ms", c->uri[0],
                                       conduit_strerror(r), ACCEPT_RETRY_MS);
                        warned = true;
                        wait_ms(ACCEPT_RETRY_MS);
                        continue;
                }
                report_error("accept on", c->uri[0], r, conduit_listener_error_message(l));
                if (!c->keep || accept_fatal(r))
                        return CAT_EXIT_ERROR;
                wait_ms(ACCEPT_RETRY_MS);
        }
}

/* Whether the listen URI asked for port 0: then the bound address is news
 * the user cannot get otherwise, so it is printed even without -v. */
static bool asked_any_port(struct cat *c, const char *uri)
{
        conduit_endp *e = NULL;
        if (conduit_ctx_parse(c->ctx, uri, &e) < 0)
                return false;
        const conduit_endp *t = e;
        while (conduit_endp_get_kind(t) == CONDUIT_ENDP_TLS && conduit_endp_get_inner(t))
                t = conduit_endp_get_inner(t);
        bool any = conduit_endp_get_kind(t) == CONDUIT_ENDP_TCP && conduit_endp_get_port(t) == 0;
        conduit_endp_free(e);
        return any;
}

/* -l URI: each client <-> stdin/stdout. -l URI1 URI2: each client on URI1
 * <-> a new connection to URI2. Without -k, one client. */
static int run_listen(struct cat *c)
{
        struct end io = { 0 };
        if (c->nuri == 1) {
                int status = stdio_end(&io);
                if (status != 0)
                        return status;
                io.shared = c->keep;
        }
        conduit_listener *l = NULL;
        int r = conduit_listen(c->ctx, c->uri[0], &l);
        if (r < 0) {
                report_error("listen", c->uri[0], r, conduit_ctx_error_message(c->ctx));
                end_clear(&io);
                return listen_exit_status(r);
        }
        char *bound = endp_name(conduit_listener_endp(l), c->uri[0]);
        if (c->verbose == 0 && asked_any_port(c, c->uri[0]))
                report("listening on %s", bound ? bound : "?");
        else
                trace(c, 1, "listening on %s", bound ? bound : "?");
        free(bound);

        int status;
        for (;;) {
                conduit_flow *f = NULL;
                status = accept_next(c, l, &f);
                if (status != 0)
                        break;
                if (!c->keep)
                        l = conduit_listener_free(l); /* one client: release the address now */
                struct end peer, out = { 0 };
                end_init(&peer, f, "?");
                trace(c, 1, "accepted from %s", rname(&peer));
                status = tls_establish(c, rname(&peer), &peer);
                if (status == 0 && c->nuri == 2) {
                        status = connect_uri(c, c->uri[1], &out);
                        if (status == 0)
                                status = relay(c, &peer, &out);
                } else if (status == 0) {
                        status = relay(c, &io, &peer);
                }
                end_clear(&peer);
                end_clear(&out);
                if (!c->keep)
                        break;
                trace(c, 1, "waiting for the next client");
        }
        end_clear(&io);
        conduit_listener_free(l);
        return status;
}

/* ---- command line ----------------------------------------------------------- */

/* The syntax of the URI option connect_timeout: N (seconds), Nms, Ns, Nm,
 * decimals allowed, a whole number of milliseconds that fits an int. */
static bool parse_duration(const char *s, int *ret_ms)
{
        uint64_t whole = 0, frac = 0, scale = 1, mult;
        const char *p = s;
        if (*p < '0' || *p > '9')
                return false;
        for (; *p >= '0' && *p <= '9'; p++)
                if ((whole = whole * 10 + (uint64_t)(*p - '0')) > INT_MAX)
                        return false;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return false;
                for (; *p >= '0' && *p <= '9'; p++) {
                        if (scale >= 1000000000) {
                                if (*p != '0') /* finer than any unit's millisecond */
                                        return false;
                                continue;
                        }
                        frac = frac * 10 + (uint64_t)(*p - '0');
                        scale *= 10;
                }
        }
        if (*p == '\0' || strcmp(p, "s") == 0)
                mult = 1000;
        else if (strcmp(p, "ms") == 0)
                mult = 1;
        else if (strcmp(p, "m") == 0)
                mult = 60000;
        else
                return false;
        if ((frac * mult) % scale != 0)
                return false;
        uint64_t ms = whole * mult + frac * mult / scale;
        if (ms > INT_MAX)
                return false;
        *ret_ms = (int)ms;
        return true;
}

static void usage(FILE *out)
{
        fputs("Usage: " PROG " [OPTIONS] URI          stdin/stdout <-> a connection to URI\n"
              "       " PROG " [OPTIONS] URI1 URI2    URI1 <-> URI2\n"
              "       " PROG " -l [-k] [OPTIONS] URI  listen; each client <-> stdin/stdout\n"
              "       " PROG " -l [-k] [OPTIONS] URI1 URI2\n"
              "                                          listen on URI1; each client <-> URI2\n"
              "       " PROG " --resolve URI          print the endpoints URI resolves to\n"
              "\n"
              "Options:\n"
              "  -l, --listen               listen on the first URI and accept one client\n"
              "  -k, --keep-open            with -l: keep accepting, one client after another\n"
              "  -w, --connect-timeout DURATION\n"
              "                             give up connecting after DURATION: N (seconds),\n"
              "                             Nms, Ns, Nm, decimals allowed (a URI's\n"
              "                             connect_timeout option wins)\n"
              "      --resolve URI          print each endpoint URI resolves to, one per line\n"
              "      --stats                print bytes and throughput per direction at the end\n"
              "  -v, --verbose              trace resolution, connections, TLS handshakes and\n"
              "                             half-closes on stderr (-vv: every read and write)\n"
              "  -h, --help                 show this help and exit\n"
              "  -V, --version              show the version and exit\n"
              "\n"
              "TLS options (defaults for every tls+ URI, listeners included; a URI's own\n"
              "option wins):\n"
              "      --cafile FILE          trust the CA certificates in FILE (PEM) instead of\n"
              "                             the system store; on a listener: require client\n"
              "                             certificates signed by them\n"
              "      --capath DIR           as --cafile, with a hashed certificate directory\n"
              "      --cert FILE            certificate chain to present (PEM)\n"
              "      --key FILE             its private key (PEM)\n"
              "      --servername NAME      name to send (SNI) and to check the peer against\n"
              "      --alpn LIST            ALPN protocols to offer (listening: to accept),\n"
              "                             comma-separated, preferred first\n"
              "      --pin PIN              accept only a peer whose public key has this\n"
              "                             SHA-256: sha256//BASE64 or hex, comma-separated\n"
              "      --min-tls VERSION      lowest TLS version: 1.2 (default) or 1.3\n"
              "      --insecure             do not verify TLS peers (verify=0)\n"
              "\n"
              "URIs: tcp://HOST:PORT, tcp://[IPV6]:PORT, unix:///PATH, unix-abstract:NAME,\n"
              "fd:N, tls+URI (tls+tcp://HOST:PORT, https://HOST, tls+unix:///PATH?servername=N)\n"
              "and the other forms of the URI reference (docs/uri.md). EOF from one\n"
              "side shuts down the write side of the other; " PROG " exits when both\n"
              "directions are done.\n"
              "\n"
              "Exit status:\n"
              "  0  success\n"
              "  1  other runtime error (a failed read or write while relaying, a TLS\n"
              "     protocol error or truncated TLS stream, ...)\n"
              "  2  usage error\n"
              "  3  resolve failure: malformed URI, unknown scheme or option, name not found\n"
              "  4  connection refused, no such socket, host or network unreachable\n"
              "  5  timeout\n"
              "  6  TLS verification failure (certificate, host name, pin)\n"
              "  7  transport not supported by this build\n",
              out);
}

static int usage_error(const char *fmt, ...) CONDUIT_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vreport(fmt, ap);
        va_end(ap);
        fputs("Try '" PROG " --help' for more information.\n", stderr);
        return CAT_EXIT_USAGE;
}

/* Sets the TLS flags as the context's defaults. Returns -1 to go on, or
 * the exit status of a usage error (a value the library rejects). */
static int apply_tls_flags(struct cat *c)
{
        for (int i = 0; i < c->ntls; i++) {
                const struct tls_flag *t = &c->tls[i];
                int r = conduit_ctx_set_tls_option(c->ctx, t->key, t->value);
                if (r < 0) {
                        const char *detail = conduit_ctx_error_message(c->ctx);
                        if (*detail)
                                return usage_error("invalid %s '%s': %s: %s", t->flag, t->value,
                                                   conduit_strerror(r), detail);
                        return usage_error("invalid %s '%s': %s", t->flag, t->value,
                                           conduit_strerror(r));
                }
        }
        if (c->insecure)
                report("warning: --insecure: TLS peers are not verified (certificate chain "
                       "and name unchecked)");
        return -1;
}

enum {
        OPT_RESOLVE = 0x100,
        OPT_STATS,
        OPT_CAFILE,
        OPT_CAPATH,
        OPT_CERT,
        OPT_KEY,
        OPT_SERVERNAME,
        OPT_ALPN,
        OPT_PIN,
        OPT_MIN_TLS,
        OPT_INSECURE,
};

/* The TLS flags and the library option each one sets. */
static const struct {
        int opt;
        const char *flag;
        const char *key;
} tls_flag_table[] = {
        { OPT_CAFILE, "--cafile", "cafile" },
        { OPT_CAPATH, "--capath", "capath" },
        { OPT_CERT, "--cert", "cert" },
        { OPT_KEY, "--key", "key" },
        { OPT_SERVERNAME, "--servername", "servername" },
        { OPT_ALPN, "--alpn", "alpn" },
        { OPT_PIN, "--pin", "pin" },
        { OPT_MIN_TLS, "--min-tls", "min_version" },
        { OPT_INSECURE, "--insecure", "verify" },
};

/* Records TLS flag o (an OPT_* of tls_flag_table) with value. */
static void add_tls_flag(struct cat *c, int o, const char *value)
{
        for (size_t i = 0; i < sizeof(tls_flag_table) / sizeof(tls_flag_table[0]); i++) {
                if (tls_flag_table[i].opt != o)
                        continue;
                int j = 0;
                while (j < c->ntls && strcmp(c->tls[j].key, tls_flag_table[i].key) != 0)
                        j++;
                if (j == c->ntls)
                        c->ntls++;
                c->tls[j] =
                        (struct tls_flag){ tls_flag_table[i].flag, tls_flag_table[i].key, value };
                return;
        }
}

/* Returns -1 to go on, or the exit status (help, version, usage errors). */
static int parse_args(struct cat *c, int argc, char **argv)
{
        static const struct option longopts[] = {
                { "listen", no_argument, NULL, 'l' },
                { "keep-open", no_argument, NULL, 'k' },
                { "connect-timeout", required_argument, NULL, 'w' },
                { "resolve", required_argument, NULL, OPT_RESOLVE },
                { "stats", no_argument, NULL, OPT_STATS },
                { "cafile", required_argument, NULL, OPT_CAFILE },
                { "capath", required_argument, NULL, OPT_CAPATH },
                { "cert", required_argument, NULL, OPT_CERT },
                { "key", required_argument, NULL, OPT_KEY },
                { "servername", required_argument, NULL, OPT_SERVERNAME },
                { "alpn", required_argument, NULL, OPT_ALPN },
                { "pin", required_argument, NULL, OPT_PIN },
                { "min-tls", required_argument, NULL, OPT_MIN_TLS },
                { "insecure", no_argument, NULL, OPT_INSECURE },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { NULL, 0, NULL, 0 },
        };
        opterr = 0; /* our messages, named conduit-cat whatever argv[0] is */
        int o;
        while ((o = getopt_long(argc, argv, ":lkw:vhV", longopts, NULL)) != -1) {
                switch (o) {
                case 'l': c->listen = true; break;
                case 'k': c->keep = true; break;
                case 'w':
                        if (!parse_duration(optarg, &c->connect_timeout_ms) ||
                            c->connect_timeout_ms == 0)
                                return usage_error("invalid connect timeout '%s' (expected N, "
                                                   "Nms, Ns or Nm, greater than zero)",
                                                   optarg);
                        break;
                case OPT_RESOLVE: c->resolve_uri = optarg; break;
                case OPT_STATS: c->stats = true; break;
                case OPT_INSECURE:
                        c->insecure = true;
                        add_tls_flag(c, o, "0");
                        break;
                case OPT_CAFILE:
                case OPT_CAPATH:
                case OPT_CERT:
                case OPT_KEY:
                case OPT_SERVERNAME:
                case OPT_ALPN:
                case OPT_PIN:
                case OPT_MIN_TLS: add_tls_flag(c, o, optarg); break;
                case 'v': c->verbose++; break;
                case 'h': usage(stdout); return CAT_EXIT_OK;
                case 'V': printf(PROG " (libconduit) %s\n", conduit_version()); return CAT_EXIT_OK;
                case ':': return usage_error("option '%s' requires an argument", argv[optind - 1]);
                default:
                        if (optopt)
                                return usage_error("unknown option '-%c'", optopt);
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                }
        }
        c->nuri = argc - optind;
        if (c->resolve_uri) {
                if (c->nuri > 0 || c->listen)
                        return usage_error("--resolve takes no other URI and no -l");
                return -1;
        }
        if (c->nuri == 0)
                return usage_error("missing URI");
        if (c->nuri > 2)
                return usage_error("too many URIs (at most two)");
        if (c->keep && !c->listen)
                return usage_error("-k needs -l");
        c->uri[0] = argv[optind];
        c->uri[1] = c->nuri == 2 ? argv[optind + 1] : NULL;
        return -1;
}

/* A closed descriptor 0, 1 or 2 would be handed to the next socket, which
 * stdio would then read or write: give it /dev/null instead. */
static int fill_std_fds(void)
{
        for (int fd = 0; fd < 3; fd++) {
                if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
                        continue;
                int n = open("/dev/null", O_RDWR);
                if (n < 0)
                        return -errno;
                if (n != fd) {
                        close(n);
                        return -EBADF;
                }
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct cat c = { .connect_timeout_ms = -1 };
        int status = parse_args(&c, argc, argv);
        if (status >= 0)
                return status;
        int r = fill_std_fds();
        if (r < 0) {
                report("standard descriptors: %s", conduit_strerror(r));
                return CAT_EXIT_ERROR;
        }
        r = conduit_ctx_new(&c.ctx);
        if (r < 0) {
                report("cannot create a context: %s", conduit_strerror(r));
                return CAT_EXIT_ERROR;
        }
        if (c.verbose > 0)
                conduit_ctx_set_log(c.ctx, log_cb, &c);
        if (c.connect_timeout_ms > 0)
                conduit_ctx_set_timeout(c.ctx, CONDUIT_TIMEOUT_CONNECT, c.connect_timeout_ms);
        status = apply_tls_flags(&c); /* >= 0: a TLS flag the library rejects */
        if (status < 0 && c.resolve_uri)
                status = run_resolve(&c);
        else if (status < 0 && c.listen)
                status = run_listen(&c);
        else if (status < 0)
                status = run_connect(&c);

        conduit_ctx_free(c.ctx);
        free(c.lib_last);
        return status;
}
