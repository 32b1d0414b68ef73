/* SPDX-License-Identifier: MIT */
/* conduit-cat: a socat/ncat-like tool on the public libconduit API only.
 *
 * Every mode comes down to relays between two flows: stdin/stdout are
 * wrapped as flows too, so connecting, listening and relaying between two
 * peers share one engine. Everything runs on one libevent loop through
 * libconduit's event API: a readiness watch per flow (which accounts for a
 * TLS read waiting for writability and for decrypted data already
 * buffered), a listener that accepts and runs TLS handshakes concurrently,
 * asynchronous connects for the relays of accepted clients. A relay
 * carries a half-close across (EOF from one side becomes a write shutdown
 * of the other) and ends when both directions are done: no timers, no
 * fixed cut-off. With -l -k every client is served at once, in a relay of
 * its own. Between two plain descriptors (TCP, Unix, pipes, a file read)
 * a direction moves its bytes with splice(2) through a pipe, never
 * copying them to user space. The manual is docs/conduit-cat.1. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <conduit/conduit.h>

#define PROG "conduit-cat"

/* Per direction: large reads keep the syscall count low on fast links. */
#define RELAY_BUF_SIZE (128 * 1024)
/* Operations one direction may run before the loop serves others. */
#define STEP_BUDGET 16

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

/* One side of a relay, with the names its two halves have in messages. A
 * peer is one flow. stdin and stdout are a flow each, with a watch each:
 * a watch takes a regular file (or /dev/null) as always ready, and that
 * must not make it spin while the other descriptor is a full pipe. */
struct end {
        conduit_flow *rf;  /* until the relay starts: the flow read from */
        conduit_flow *wf;  /* and the one written to (rf, but for stdio) */
        conduit_watch *rw; /* once it runs: their watches, which own them */
        conduit_watch *ww;
        char *rname; /* where data read from it comes from: "stdin", a peer URI */
        char *wname; /* where data written to it goes: "stdout", a peer URI */
        bool shared; /* the stdio of -l -k URI, every client's (struct hub) */
};

struct session;
struct hub;

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
        /* The last library warning, printed once however often it comes
         * (a full descriptor table pauses accepting every 100 ms). */
        char *lib_warning;

        struct event_base *base;
        conduit_loop *loop;
        conduit_loop_listener *listener;
        struct end io;            /* stdin/stdout, until a relay or the hub takes them */
        struct hub *hub;          /* -l -k URI */
        struct session *sessions; /* every relay, and every client waiting for its connect */
        struct event *stdout_closer;
        struct event *listener_closer;
        bool accepted; /* without -k: the one client came */
        int live;      /* the listener and the sessions: the loop ends at 0 */
        int status;    /* the exit status, from the last relay or failure */
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

/* The library's traces under -v; its warnings always, each once. */
static void log_cb(void *userdata, int level, const char *message)
{
        struct cat *c = userdata;
        if (level <= CONDUIT_LOG_WARNING) {
                if (c->lib_warning && strcmp(c->lib_warning, message) == 0)
                        return;
                free(c->lib_warning);
                c->lib_warning = strdup(message);
        } else if (c->verbose < 1) {
                return;
        }
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

/* ---- the relay -------------------------------------------------------------- */

enum dir_state {
        DIR_COPY,     /* reading from src, writing to dst */
        DIR_SHUTDOWN, /* src is finished: shutting down dst's write side */
        DIR_DONE,
};

/* One direction of a relay: src -> dst. */
struct dir {
        struct end *src;
        struct end *dst;
        char *buf;       /* RELAY_BUF_SIZE bytes; from the shared stdin, the hub's */
        size_t off, len; /* bytes read but not yet written */
        uint64_t bytes;
        double elapsed; /* seconds from the session start until done */
        enum dir_state state;
        int err;   /* what ended the direction, 0 for EOF */
        bool owes; /* from the shared stdin: the hub's chunk is not all sent */
        /* splice(2) from sfd to dfd, the bytes waiting in pipe[] instead of
         * buf (len counts them); pipe[0] < 0 when copying through buf. */
        int pipe[2];
        int sfd, dfd;
};

/* A relay between two ends, or a client waiting for its relay. */
struct session {
        struct cat *c;
        struct session *prev, *next; /* c->sessions */
        struct end a, b;
        struct dir dir[2]; /* a -> b, b -> a */
        double start;
        conduit_connecting *connecting; /* -l URI1 URI2: the connect to URI2 */
        /* A client of the hub: the shared stdio stands in for a. queued: in
         * the hub's queue for stdout. */
        bool member;
        bool queued;
        struct session *qprev, *qnext;
};

/* -l -k URI: the clients share stdin and stdout, as with ncat. What a
 * client sends goes to stdout a chunk (one read) at a time, so the output
 * of clients never mixes within a chunk: the queue holds the clients with
 * data for stdout, and its head writes. A chunk read from stdin goes to
 * every client connected when it was read; stdin is read again once each
 * of them took it all (the slowest client sets the pace), and only while
 * a client is connected. Once stdin is finished every client, present and
 * future, gets EOF. */
struct hub {
        struct end io;
        char *buf;      /* the chunk of stdin being sent */
        size_t owing;   /* clients still sending it */
        size_t members; /* clients connected */
        bool eof;       /* stdin is finished */
        struct session *qhead, *qtail;
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
        *e = (struct end){ .rf = f, .wf = f };
        e->rname = flow_name(f, fallback);
        e->wname = e->rname ? strdup(e->rname) : NULL;
}

static void end_clear(struct end *e)
{
        if (e->ww != e->rw)
                conduit_watch_free(e->ww);
        conduit_watch_free(e->rw);
        if (e->wf != e->rf)
                conduit_flow_free(e->wf);
        conduit_flow_free(e->rf);
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

static conduit_flow *rflow(const struct end *e)
{
        return conduit_watch_flow(e->rw);
}

static conduit_flow *wflow(const struct end *e)
{
        return conduit_watch_flow(e->ww);
}

static void report_io(const char *what, conduit_flow *f, const char *name, int err)
{
        const char *detail = conduit_flow_error_message(f);
        if (*detail)
                report("%s %s: %s: %s", what, name, conduit_strerror(err), detail);
        else
                report("%s %s: %s", what, name, conduit_strerror(err));
}

/* stdin and stdout, as a flow each. They are not closed at the end (the
 * exit does it) and keep their file status flags: a terminal may be
 * shared with the shell. */
static int stdio_end(struct end *e)
{
        conduit_flow *in = NULL, *out = NULL;
        int r = conduit_flow_from_fd(STDIN_FILENO, 0, &in);
        if (r >= 0)
                r = conduit_flow_from_fd(STDOUT_FILENO, 0, &out);
        if (r < 0) {
                conduit_flow_free(in);
                report("stdin/stdout: %s", conduit_strerror(r));
                return CAT_EXIT_ERROR;
        }
        *e = (struct end){
                .rf = in, .wf = out, .rname = strdup("stdin"), .wname = strdup("stdout")
        };
        return 0;
}

/* Hands e's flows to watches calling rcb (reads) and wcb (writes). On
 * failure the flows not yet watched stay in e, for end_clear(). */
static int end_watch(struct cat *c, struct end *e, conduit_watch_cb *rcb, conduit_watch_cb *wcb,
                     void *userdata)
{
        bool one = e->wf == e->rf;
        int r = conduit_loop_watch(c->loop, e->rf, rcb, userdata, &e->rw);
        if (r < 0) {
                report_io("cannot watch", e->rf, rname(e), r);
                return CAT_EXIT_ERROR;
        }
        e->rf = NULL;
        if (one) {
                e->wf = NULL;
                e->ww = e->rw;
                return 0;
        }
        r = conduit_loop_watch(c->loop, e->wf, wcb, userdata, &e->ww);
        if (r < 0) {
                report_io("cannot watch", e->wf, wname(e), r);
                return CAT_EXIT_ERROR;
        }
        e->wf = NULL;
        return 0;
}

/* Standard output has no half-close when it is a pipe: its reader sees
 * EOF once the descriptor is closed. Replacing it by /dev/null closes it
 * and keeps descriptor 1 from going to the next socket. This runs from
 * the loop, after the callback that freed stdout's watch: its event is
 * gone by then. */
static void close_stdout(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what, (void)arg;
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
                close(STDOUT_FILENO);
        if (null >= 0)
                close(null);
}

/* The write shutdown of e; stdout is closed as well (close_stdout). */
static int end_shutdown_write(struct cat *c, struct end *e)
{
        int r = conduit_flow_shutdown(wflow(e), CONDUIT_SHUT_WR);
        if (r == -EAGAIN || e->ww == e->rw)
                return r;
        e->ww = conduit_watch_free(e->ww);
        event_active(c->stdout_closer, 0, 0);
        return r;
}

/* ---- the hub's queue for stdout ------------------------------------------------- */

static void hub_enqueue(struct hub *h, struct session *s)
{
        if (s->queued)
                return;
        s->queued = true;
        s->qnext = NULL;
        s->qprev = h->qtail;
        if (h->qtail)
                h->qtail->qnext = s;
        else
                h->qhead = s;
        h->qtail = s;
}

static void hub_dequeue(struct hub *h, struct session *s)
{
        if (!s->queued)
                return;
        s->queued = false;
        if (s->qprev)
                s->qprev->qnext = s->qnext;
        else
                h->qhead = s->qnext;
        if (s->qnext)
                s->qnext->qprev = s->qprev;
        else
                h->qtail = s->qprev;
        s->qprev = s->qnext = NULL;
}

/* d of client s has nothing buffered any more: it owes the hub nothing
 * and lets the next client write to stdout. */
static void hub_settle(struct hub *h, struct session *s, struct dir *d)
{
        if (d->owes) {
                d->owes = false;
                h->owing--;
        }
        if (d->dst->shared)
                hub_dequeue(h, s);
}

/* What the shared stdin and stdout wait for. */
static void hub_wants(struct hub *h)
{
        conduit_watch_set(h->io.rw,
                          h->members > 0 && !h->eof && h->owing == 0 ? CONDUIT_EV_READ : 0);
        conduit_watch_set(h->io.ww, h->qhead ? CONDUIT_EV_WRITE : 0);
}

/* ---- one direction ------------------------------------------------------------ */

static void dir_finish(struct cat *c, struct session *s, struct dir *d)
{
        d->state = DIR_DONE;
        d->len = 0;
        d->elapsed = now_s() - s->start;
        if (s->member)
                hub_settle(c->hub, s, d);
}

/* dst cannot take data any more: this direction is over, and so is reading
 * its source, whose data would have nowhere to go. */
static void dir_write_failed(struct cat *c, struct session *s, struct dir *d, int err)
{
        report_io("write to", wflow(d->dst), wname(d->dst), err);
        d->err = err;
        if (!d->src->shared) {
                trace(c, 1, "shutting down read side of %s", rname(d->src));
                conduit_flow_shutdown(rflow(d->src), CONDUIT_SHUT_RD);
        }
        dir_finish(c, s, d);
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
                conduit_flow_shutdown(rflow(r->src), CONDUIT_SHUT_RD);
        r->err = r->err ? r->err : d->err;
        dir_finish(c, s, r);
}

/* ---- zero copy ------------------------------------------------------------------ */

/* The descriptor that carries exactly f's bytes in direction want (a
 * CONDUIT_WANT_*), for splice(2), or -1. TCP and Unix flows qualify (their
 * sockets are ours, and made non-blocking: splice into a socket waits
 * unless the socket is O_NONBLOCK); among inherited descriptors, pipes
 * (SPLICE_F_NONBLOCK covers them, their flags stay as they are) and a
 * regular file to read. Not TLS (records, not bytes), not ttys, not
 * vsock and hybrid vsock (a stripped "OK" line, untested here). */
static int splice_fd(conduit_flow *f, int want)
{
        const char *backend = conduit_flow_backend(f);
        int fd = conduit_flow_poll_fd(f, want);
        if (fd < 0)
                return -1;
        if (strcmp(backend, "tcp") == 0 || strcmp(backend, "unix") == 0) {
                int fl = fcntl(fd, F_GETFL);
                if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
                        return -1;
                return fd;
        }
        struct stat st;
        if (strcmp(backend, "fd") != 0 || fstat(fd, &st) < 0)
                return -1;
        if (S_ISFIFO(st.st_mode) || (S_ISREG(st.st_mode) && want == CONDUIT_WANT_READ))
                return fd;
        return -1;
}

/* Sets d up to splice when both of its ends can; otherwise it copies. */
static void dir_splice_setup(struct cat *c, struct dir *d)
{
        d->pipe[0] = d->pipe[1] = -1;
        if (d->src->shared || d->dst->shared)
                return;
        d->sfd = splice_fd(rflow(d->src), CONDUIT_WANT_READ);
        d->dfd = d->sfd < 0 ? -1 : splice_fd(wflow(d->dst), CONDUIT_WANT_WRITE);
        if (d->dfd < 0 || pipe2(d->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                d->pipe[0] = d->pipe[1] = -1;
                return;
        }
        /* as large as a copy's buffer; a smaller pipe works too */
        (void)fcntl(d->pipe[1], F_SETPIPE_SZ, RELAY_BUF_SIZE);
        /* splice into a socket or pipe that is gone raises SIGPIPE (the
         * flows' own writes never do): keep it pending instead, and let
         * the write fail with EPIPE like a flow's */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigprocmask(SIG_BLOCK, &set, NULL);
        trace(c, 1, "%s -> %s: splice(2)", rname(d->src), wname(d->dst));
}

static void dir_splice_end(struct dir *d)
{
        for (int i = 0; i < 2; i++)
                if (d->pipe[i] >= 0)
                        close(d->pipe[i]);
        d->pipe[0] = d->pipe[1] = -1;
}

/* A SIGPIPE left pending by a failed splice goes, so that none piles up. */
static void drop_sigpipe(void)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        static const struct timespec zero = { 0, 0 };
        while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
                ;
}

/* splice(2) cannot serve these descriptors after all (an old kernel, a
 * socket family without splice): the direction copies from now on, the
 * bytes already in the pipe first. Returns false if they cannot be read
 * back (then the direction fails with err). */
static bool dir_unsplice(struct cat *c, struct dir *d, int *err)
{
        trace(c, 1, "%s -> %s: splice(2) refused, copying", rname(d->src), wname(d->dst));
        size_t got = 0;
        while (got < d->len) {
                ssize_t n = read(d->pipe[0], d->buf + got, d->len - got);
                if (n <= 0) {
                        *err = n < 0 ? -errno : -EIO;
                        return false;
                }
                got += (size_t)n;
        }
        d->off = 0;
        dir_splice_end(d);
        return true;
}

/* Moves data from src to dst until one of them would block or the budget
 * is spent. What it waits for then follows from its state (session_wants). */
static void dir_step(struct cat *c, struct session *s, struct dir *d)
{
        for (int budget = STEP_BUDGET; budget > 0 && d->state != DIR_DONE; budget--) {
                if (d->state == DIR_SHUTDOWN) {
                        if (d->dst->shared) {
                                dir_finish(c, s, d);
                                return;
                        }
                        int r = end_shutdown_write(c, d->dst);
                        if (r == -EAGAIN)
                                return;
                        if (r < 0)
                                trace(c, 1, "shutting down write side of %s: %s", wname(d->dst),
                                      conduit_strerror(r));
                        dir_finish(c, s, d);
                        return;
                }
                if (d->pipe[0] >= 0 && d->len > 0) {
                        ssize_t n = splice(d->pipe[0], NULL, d->dfd, NULL, d->len,
                                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                        int err = n < 0 ? -errno : 0;
                        if (err == -EAGAIN)
                                return;
                        if ((err == -EINVAL || err == -ENOSYS) && d->bytes == 0 &&
                            dir_unsplice(c, d, &err))
                                continue;
                        if (err) {
                                if (err == -EPIPE)
                                        drop_sigpipe();
                                dir_write_failed(c, s, d, err);
                                return;
                        }
                        trace(c, 2, "%zd bytes to %s", n, wname(d->dst));
                        d->len -= (size_t)n;
                        d->bytes += (uint64_t)n;
                        continue;
                }
                if (d->len > 0) {
                        /* the shared stdout: another client's chunk first */
                        if (d->dst->shared && c->hub->qhead && c->hub->qhead != s) {
                                hub_enqueue(c->hub, s);
                                return;
                        }
                        ssize_t n = conduit_flow_write(wflow(d->dst), d->buf + d->off, d->len);
                        if (n == -EAGAIN) {
                                if (d->dst->shared)
                                        hub_enqueue(c->hub, s);
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
                        if (s->member && d->len == 0)
                                hub_settle(c->hub, s, d);
                        else if (d->dst->shared) /* the rest of the chunk comes next */
                                hub_enqueue(c->hub, s);
                        continue;
                }
                if (d->src->shared) {
                        /* stdin's chunks come from the hub (hub_read) */
                        if (!c->hub->eof)
                                return;
                        trace(c, 1, "EOF from %s, shutting down write side of %s", rname(d->src),
                              wname(d->dst));
                        d->state = DIR_SHUTDOWN;
                        continue;
                }
                ssize_t n;
                if (d->pipe[0] >= 0) {
                        n = splice(d->sfd, NULL, d->pipe[1], NULL, RELAY_BUF_SIZE,
                                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                        if (n < 0)
                                n = -errno;
                        if ((n == -EINVAL || n == -ENOSYS) && d->bytes == 0) {
                                int err = 0;
                                (void)dir_unsplice(c, d, &err); /* the pipe is empty */
                                continue;
                        }
                } else {
                        n = conduit_flow_read(rflow(d->src), d->buf, RELAY_BUF_SIZE);
                }
                if (n == -EAGAIN)
                        return;
                if (n <= 0) {
                        if (n < 0) {
                                /* A broken source ends like a finished one: the
                                 * other side learns that no more data comes. */
                                report_io("read from", rflow(d->src), rname(d->src), (int)n);
                                d->err = (int)n;
                                if (connection_broken((int)n))
                                        drop_reverse(c, s, d);
                        }
                        if (d->dst->shared)
                                trace(c, 1, "%s from %s, %s stays open for the other clients",
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

/* ---- sessions ------------------------------------------------------------------- */

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

static struct session *session_new(struct cat *c)
{
        struct session *s = calloc(1, sizeof(*s));
        if (!s) {
                report("out of memory");
                return NULL;
        }
        s->c = c;
        for (int i = 0; i < 2; i++)
                s->dir[i].pipe[0] = s->dir[i].pipe[1] = -1;
        s->next = c->sessions;
        if (c->sessions)
                c->sessions->prev = s;
        c->sessions = s;
        c->live++;
        return s;
}

/* Releases s (a connect in flight included); the loop ends with the last
 * session once nothing listens. */
static void session_free(struct session *s)
{
        struct cat *c = s->c;
        if (s->prev)
                s->prev->next = s->next;
        else
                c->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        conduit_connecting_cancel(s->connecting);
        if (s->member) {
                hub_settle(c->hub, s, &s->dir[0]);
                hub_dequeue(c->hub, s);
                c->hub->members--;
                hub_wants(c->hub);
        } else {
                free(s->dir[0].buf);
        }
        free(s->dir[1].buf);
        dir_splice_end(&s->dir[0]);
        dir_splice_end(&s->dir[1]);
        end_clear(&s->a);
        end_clear(&s->b);
        free(s);
        if (--c->live == 0)
                event_base_loopbreak(c->base);
}

static void session_end(struct session *s)
{
        struct cat *c = s->c;
        trace(c, 1, "%s <-> %s: done", rname(s->dir[0].src), rname(s->dir[1].src));
        if (c->stats)
                for (int i = 0; i < 2; i++)
                        print_stats(&s->dir[i]);
        c->status = s->dir[0].err || s->dir[1].err ? CAT_EXIT_ERROR : CAT_EXIT_OK;
        session_free(s);
}

/* What each watch of s waits for: a direction with nothing buffered reads
 * its source, one holding data (or a write shutdown to finish) writes to
 * its destination. A flow whose watch asks for nothing is not read, which
 * is the back-pressure. The shared stdio is the hub's business. */
static void session_wants(struct session *s)
{
        struct end *ends[2] = { &s->a, &s->b };
        for (int i = 0; i < 2; i++) {
                struct end *e = ends[i];
                if (!e->rw)
                        continue;
                int rd = 0, wr = 0;
                for (int k = 0; k < 2; k++) {
                        const struct dir *d = &s->dir[k];
                        if (d->src == e && d->state == DIR_COPY && d->len == 0)
                                rd = CONDUIT_EV_READ;
                        if (d->dst == e && (d->state == DIR_SHUTDOWN || d->len > 0))
                                wr = CONDUIT_EV_WRITE;
                }
                if (e->ww == e->rw) {
                        conduit_watch_set(e->rw, rd | wr);
                } else {
                        conduit_watch_set(e->rw, rd);
                        if (e->ww)
                                conduit_watch_set(e->ww, wr);
                }
        }
        if (s->member)
                hub_wants(s->c->hub);
}

/* Steps both directions; may free s. */
static void session_run(struct session *s)
{
        for (int i = 0; i < 2; i++)
                if (s->dir[i].state != DIR_DONE)
                        dir_step(s->c, s, &s->dir[i]);
        if (s->dir[0].state == DIR_DONE && s->dir[1].state == DIR_DONE) {
                session_end(s);
                return;
        }
        session_wants(s);
}

static void session_cb(conduit_watch *w, conduit_flow *f, int events, void *userdata)
{
        (void)w, (void)f, (void)events;
        session_run(userdata);
}

/* Starts relaying a <-> b (for a client of the hub: stdio <-> b). Returns 0
 * (s may be gone already: a relay can end at once) or the exit status of
 * a failure, s left to the caller. */
static int session_start(struct session *s)
{
        struct cat *c = s->c;
        struct end *a = &s->a;
        if (s->member) {
                c->hub->members++;
                a = &c->hub->io;
        }
        s->dir[0] = (struct dir){ .src = a, .dst = &s->b, .pipe = { -1, -1 } };
        s->dir[1] = (struct dir){ .src = &s->b, .dst = a, .pipe = { -1, -1 } };
        s->dir[0].buf = s->member ? c->hub->buf : malloc(RELAY_BUF_SIZE);
        s->dir[1].buf = malloc(RELAY_BUF_SIZE);
        if (!s->dir[0].buf || !s->dir[1].buf) {
                report("out of memory");
                return CAT_EXIT_ERROR;
        }
        int status = s->member ? 0 : end_watch(c, &s->a, session_cb, session_cb, s);
        if (status == 0)
                status = end_watch(c, &s->b, session_cb, session_cb, s);
        if (status != 0)
                return status;
        for (int i = 0; i < 2; i++)
                dir_splice_setup(c, &s->dir[i]);
        s->start = now_s();
        session_run(s);
        return 0;
}

/* ---- the hub -------------------------------------------------------------------- */

/* stdin is readable: a new chunk for every client, or EOF for all. */
static void hub_read(conduit_watch *w, conduit_flow *f, int events, void *userdata)
{
        (void)w, (void)events;
        struct cat *c = userdata;
        struct hub *h = c->hub;
        if (h->members == 0 || h->eof || h->owing > 0) {
                hub_wants(h);
                return;
        }
        ssize_t n = conduit_flow_read(f, h->buf, RELAY_BUF_SIZE);
        if (n == -EAGAIN)
                return;
        if (n > 0) {
                trace(c, 2, "%zd bytes from stdin", n);
                for (struct session *s = c->sessions; s; s = s->next) {
                        struct dir *d = &s->dir[0];
                        if (!s->member || d->state != DIR_COPY)
                                continue;
                        d->off = 0;
                        d->len = (size_t)n;
                        d->owes = true;
                        h->owing++;
                }
        } else {
                if (n < 0) /* every client gets EOF, as at the end of stdin */
                        report_io("read from", f, "stdin", (int)n);
                h->eof = true;
        }
        for (struct session *s = c->sessions, *next; s; s = next) {
                next = s->next;
                if (s->member)
                        session_run(s);
        }
        hub_wants(h);
}

/* stdout is writable: the clients in the queue write, in turn. One round
 * only: a client that keeps sending waits for the next. */
static void hub_write(conduit_watch *w, conduit_flow *f, int events, void *userdata)
{
        (void)w, (void)f, (void)events;
        struct cat *c = userdata;
        struct hub *h = c->hub;
        for (size_t i = h->members; i > 0 && h->qhead; i--) {
                struct session *s = h->qhead;
                session_run(s);
                if (h->qhead == s) /* stdout is full, or s used its budget */
                        break;
        }
        hub_wants(h);
}

/* Takes stdio over for the clients of -l -k URI. */
static int hub_start(struct cat *c)
{
        struct hub *h = calloc(1, sizeof(*h));
        if (!h || !(h->buf = malloc(RELAY_BUF_SIZE))) {
                free(h);
                report("out of memory");
                return CAT_EXIT_ERROR;
        }
        c->hub = h;
        h->io = c->io;
        h->io.shared = true;
        c->io = (struct end){ 0 };
        return end_watch(c, &h->io, hub_read, hub_write, c);
}

static void hub_free(struct cat *c)
{
        if (!c->hub)
                return;
        end_clear(&c->hub->io);
        free(c->hub->buf);
        free(c->hub);
        c->hub = NULL;
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
        const char *version = query_str(e->rf, CONDUIT_QUERY_TLS_VERSION);
        if (!version)
                return;
        const char *cipher = query_str(e->rf, CONDUIT_QUERY_TLS_CIPHER);
        const char *alpn = query_str(e->rf, CONDUIT_QUERY_TLS_ALPN);
        const char *subject = query_str(e->rf, CONDUIT_QUERY_TLS_PEER_SUBJECT);
        long vr = 0;
        char verify[64] = "";
        if (conduit_flow_query(e->rf, CONDUIT_QUERY_TLS_VERIFY_RESULT, &vr) == 0 && vr != 0)
                snprintf(verify, sizeof(verify), ", verify result %ld (not verified)", vr);
        int resumed = 0;
        (void)conduit_flow_query(e->rf, CONDUIT_QUERY_TLS_RESUMED, &resumed);
        trace(c, 1, "TLS with %s: %s, cipher %s, ALPN %s, peer certificate %s%s%s", rname(e),
              version, cipher ? cipher : "?", alpn ? alpn : "none", subject ? subject : "none",
              verify, resumed ? ", resumed" : "");
}

/* Finishes the handshake of a TLS flow of a peer not yet watched (at once
 * if it is done: connects and listeners finish them), so that a peer
 * failing verification ends the connect with its own exit status and not
 * as a relay error. Returns 0 or the exit status. */
static int tls_establish(struct cat *c, const char *name, struct end *e)
{
        int r = conduit_tls_handshake(e->rf);
        if (r == -EINVAL) /* not a TLS flow */
                return 0;
        if (r < 0) {
                report_io("TLS handshake with", e->rf, name, r);
                return exit_status(r);
        }
        trace_tls(c, e);
        return 0;
}

/* ---- modes ------------------------------------------------------------------ */

/* Connecting before the loop runs, with nothing else to serve meanwhile,
 * blocks: conduit_connect(). */
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

/* Runs the loop until the last session ends and nothing listens. */
static int run_loop(struct cat *c)
{
        if (c->live > 0 && event_base_dispatch(c->base) < 0) {
                report("the event loop failed");
                return CAT_EXIT_ERROR;
        }
        return c->status;
}

/* URI: stdin/stdout <-> URI. URI1 URI2: URI1 <-> URI2. */
static int run_connect(struct cat *c)
{
        struct session *s = session_new(c);
        if (!s)
                return CAT_EXIT_ERROR;
        int status = c->nuri == 1 ? stdio_end(&s->a) : connect_uri(c, c->uri[0], &s->a);
        if (status == 0)
                status = connect_uri(c, c->uri[c->nuri - 1], &s->b);
        if (status == 0)
                status = session_start(s);
        if (status != 0) {
                session_free(s);
                return status;
        }
        return run_loop(c);
}

/* -l URI1 URI2: the connect to URI2 for the client in s->a is done. */
static void on_connected(conduit_flow *f, int err, void *userdata)
{
        struct session *s = userdata;
        struct cat *c = s->c;
        int status;
        s->connecting = NULL;
        if (err < 0) {
                report_error("connect", c->uri[1], err, conduit_ctx_error_message(c->ctx));
                status = exit_status(err);
        } else {
                end_init(&s->b, f, c->uri[1]);
                trace(c, 1, "connected to %s", rname(&s->b));
                status = tls_establish(c, c->uri[1], &s->b);
                if (status == 0)
                        status = session_start(s);
        }
        if (status != 0) {
                c->status = status;
                session_free(s);
        }
}

/* A client, its TLS handshake done. -l URI: its relay with stdio (the
 * hub's, with -k). -l URI1 URI2: a connect to URI2 first, without blocking
 * the loop; the client is not read until it is done. */
static void on_accept(conduit_flow *f, void *userdata)
{
        struct cat *c = userdata;
        if (!c->keep && c->accepted) { /* came in the same batch as the one */
                conduit_flow_free(f);
                return;
        }
        struct session *s = session_new(c);
        if (!s) {
                conduit_flow_free(f);
                return;
        }
        if (!c->keep) { /* one client: release the address now (close_listener) */
                c->accepted = true;
                event_active(c->listener_closer, 0, 0);
        }
        struct end *peer = c->nuri == 2 ? &s->a : &s->b;
        end_init(peer, f, "?");
        trace(c, 1, "accepted from %s", rname(peer));
        int status = tls_establish(c, rname(peer), peer);
        if (status == 0 && c->nuri == 2) {
                trace(c, 1, "connecting to %s", c->uri[1]);
                int r = conduit_loop_connect(c->loop, c->uri[1], on_connected, s, &s->connecting);
                if (r < 0) {
                        report_error("connect", c->uri[1], r, conduit_ctx_error_message(c->ctx));
                        status = exit_status(r);
                }
        } else if (status == 0) {
                if (c->keep) {
                        s->member = true;
                } else {
                        s->a = c->io;
                        c->io = (struct end){ 0 };
                }
                status = session_start(s);
        }
        if (status != 0) {
                c->status = status;
                session_free(s);
        }
}

/* Without -k, once the client came. Not from on_accept(): when a TLS
 * handshake finishes within the accept that took the connection, the
 * loop listener delivers the flow from inside its accept loop and goes on
 * using itself after the callback, freed or not. */
static void close_listener(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        struct cat *c = arg;
        c->listener = conduit_loop_listener_free(c->listener);
        if (--c->live == 0)
                event_base_loopbreak(c->base);
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
 * <-> a new connection to URI2. Without -k one client, else every client
 * at once. */
static int run_listen(struct cat *c)
{
        if (c->nuri == 1) {
                int status = stdio_end(&c->io);
                if (status == 0 && c->keep)
                        status = hub_start(c);
                if (status != 0)
                        return status;
        }
        int r = conduit_loop_listen(c->loop, c->uri[0], on_accept, c, &c->listener);
        if (r < 0) {
                report_error("listen", c->uri[0], r, conduit_ctx_error_message(c->ctx));
                return listen_exit_status(r);
        }
        c->live++;
        char *bound = endp_name(conduit_loop_listener_endp(c->listener), c->uri[0]);
        if (c->verbose == 0 && asked_any_port(c, c->uri[0]))
                report("listening on %s", bound ? bound : "?");
        else
                trace(c, 1, "listening on %s", bound ? bound : "?");
        free(bound);
        return run_loop(c);
}

/* The event loop and what runs on it. Returns -1 to go on, or the exit
 * status of a failure. */
static int loop_init(struct cat *c)
{
        c->base = event_base_new();
        if (!c->base) {
                report("cannot create an event loop");
                return CAT_EXIT_ERROR;
        }
        int r = conduit_loop_new(c->ctx, c->base, &c->loop);
        c->stdout_closer = event_new(c->base, -1, 0, close_stdout, NULL);
        c->listener_closer = event_new(c->base, -1, 0, close_listener, c);
        if (r < 0 || !c->stdout_closer || !c->listener_closer) {
                report("cannot create an event loop: %s", conduit_strerror(r < 0 ? r : -ENOMEM));
                return CAT_EXIT_ERROR;
        }
        return -1;
}

static void loop_free(struct cat *c)
{
        while (c->sessions)
                session_free(c->sessions);
        hub_free(c);
        end_clear(&c->io);
        conduit_loop_listener_free(c->listener);
        conduit_loop_free(c->loop);
        if (c->stdout_closer)
                event_free(c->stdout_closer);
        if (c->listener_closer)
                event_free(c->listener_closer);
        if (c->base)
                event_base_free(c->base);
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
              "       " PROG " -l [-k] [OPTIONS] URI  listen; the client <-> stdin/stdout (-k:\n"
              "                                          every client at once, sharing them)\n"
              "       " PROG " -l [-k] [OPTIONS] URI1 URI2\n"
              "                                          listen on URI1; each client <-> a new\n"
              "                                          connection to URI2\n"
              "       " PROG " --resolve URI          print the endpoints URI resolves to\n"
              "\n"
              "Options:\n"
              "  -l, --listen               listen on the first URI and accept one client\n"
              "  -k, --keep-open            with -l: keep accepting, serve every client at once;\n"
              "                             with stdin/stdout, what a client sends goes to\n"
              "                             stdout and stdin goes to every client\n"
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

/* A URI that turns TLS verification off is warned about as --insecure is:
 * a client that does not verify talks to whoever answers, a server with
 * verify=0 takes any client certificate. (A URI that fails to parse is
 * reported where it is used.) */
static void warn_unverified(struct cat *c)
{
        for (int i = 0; i < c->nuri; i++) {
                conduit_endp *e = NULL;
                if (conduit_ctx_parse(c->ctx, c->uri[i], &e) < 0)
                        continue;
                for (const conduit_endp *t = e; t && conduit_endp_get_kind(t) == CONDUIT_ENDP_TLS;
                     t = conduit_endp_get_inner(t)) {
                        const char *v = conduit_endp_get_option(t, "verify");
                        if (v && strcmp(v, "0") == 0) {
                                report("warning: %s: verify=0: TLS peers are not verified "
                                       "(certificate chain and name unchecked)",
                                       c->uri[i]);
                                break;
                        }
                }
                conduit_endp_free(e);
        }
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
        if (!c->resolve_uri)
                warn_unverified(c);
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
        conduit_ctx_set_log(c.ctx, log_cb, &c);
        if (c.connect_timeout_ms > 0)
                conduit_ctx_set_timeout(c.ctx, CONDUIT_TIMEOUT_CONNECT, c.connect_timeout_ms);
        status = apply_tls_flags(&c); /* >= 0: a TLS flag the library rejects */
        if (status < 0 && c.resolve_uri)
                status = run_resolve(&c);
        else if (status < 0 && (status = loop_init(&c)) < 0)
                status = c.listen ? run_listen(&c) : run_connect(&c);

        loop_free(&c);
        conduit_ctx_free(c.ctx);
        free(c.lib_last);
        free(c.lib_warning);
        return status;
}
