/* SPDX-License-Identifier: MIT */
/* Readiness callbacks per flow, TLS's wants and pending accounted for, and
 * the asynchronous graceful close. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "event/loop-private.h"
#include "flow-private.h"

struct slot {
        struct event *ev;
        int fd;   /* -1: unused */
        int mask; /* EV_READ | EV_WRITE */
};

struct conduit_watch {
        struct conduit__loop_obj obj; /* on the loop's list unless a bridge's */
        struct event_base *base;
        conduit_flow *f;
        conduit_watch_cb *cb;
        void *userdata;
        int want;       /* CONDUIT_EV_READ | CONDUIT_EV_WRITE */
        int timeout_ms; /* < 0: none */
        struct slot slot[2];
        struct event *timer; /* CONDUIT_EV_TIMEOUT, and the close deadline */
        struct event *now;   /* runs dispatch without waiting */
        int always;          /* CONDUIT_WANT_* whose descriptor cannot be polled (a regular
                        * file, /dev/null): it never blocks */
        int ar_events;       /* CONDUIT_EV_* that can go on at once for that reason */
        bool in_cb;
        bool dead; /* freed inside its callback: freed once it returns */
        /* conduit_watch_close() */
        bool closing;
        conduit_closed_cb *closed_cb;
        void *closed_userdata;
};

static void update(conduit_watch *w);

/* Runs on_now on the loop's next pass. Not event_active(): libevent runs
 * what a callback activates in the same pass, so a flow that stays ready
 * (a regular file, plaintext the program leaves unread) would starve
 * every other event and timer; a timer that is due now waits for the
 * next pass, after the descriptors were polled. */
static void kick(conduit_watch *w)
{
        static const struct timeval now = { 0, 0 };
        event_add(w->now, &now);
}

static void destroy(conduit_watch *w)
{
        conduit__loop_remove(&w->obj);
        for (int i = 0; i < 2; i++)
                if (w->slot[i].ev)
                        event_free(w->slot[i].ev);
        if (w->timer)
                event_free(w->timer);
        if (w->now)
                event_free(w->now);
        conduit_flow_free(w->f);
        free(w);
}

static void destroy_obj(struct conduit__loop_obj *o)
{
        destroy((conduit_watch *)o);
}

/* What the flow can do without waiting for its descriptors: a read that
 * returns data already decrypted, EOF or a sticky error; a write that
 * fails at once. */
static int ready_now(const conduit_watch *w)
{
        const conduit_flow *f = w->f;
        int r = 0;
        if ((w->want & CONDUIT_EV_READ) &&
            (f->rd_eof || f->rd_shut || f->rd_err || conduit_flow_pending(f) > 0))
                r |= CONDUIT_EV_READ;
        if ((w->want & CONDUIT_EV_WRITE) && (f->wr_shut || f->wr_err))
                r |= CONDUIT_EV_WRITE;
        return r;
}

static void arm_timer(conduit_watch *w)
{
        if (w->timeout_ms >= 0 && w->want) {
                struct timeval tv = { w->timeout_ms / 1000, (w->timeout_ms % 1000) * 1000 };
                event_add(w->timer, &tv);
        } else {
                event_del(w->timer);
        }
}

/* Runs the callback for events (unless nothing is asked for). */
static void dispatch(conduit_watch *w, int events)
{
        events &= w->want | CONDUIT_EV_TIMEOUT;
        if (!events || w->closing)
                return;
        w->in_cb = true;
        w->cb(w, w->f, events, w->userdata);
        w->in_cb = false;
        if (w->dead) {
                destroy(w);
                return;
        }
        if (w->closing) {
                kick(w);
                return;
        }
        arm_timer(w);
        update(w);
}

/* Which operations the descriptor events `what` on fd let progress. */
static int progress(conduit_watch *w, int fd, short what)
{
        conduit_flow *f = w->f;
        int r = 0, got = (what & EV_READ ? CONDUIT_WANT_READ : 0) |
                         (what & EV_WRITE ? CONDUIT_WANT_WRITE : 0);
        int rw = f->rd_wants ? f->rd_wants : CONDUIT_WANT_READ;
        int ww = f->wr_wants ? f->wr_wants : CONDUIT_WANT_WRITE;
        for (int d = CONDUIT_WANT_READ; d <= CONDUIT_WANT_WRITE; d <<= 1) {
                if (!(got & d) || conduit_flow_poll_fd(f, d) != fd)
                        continue;
                if (rw & d)
                        r |= CONDUIT_EV_READ;
                if (ww & d)
                        r |= CONDUIT_EV_WRITE;
        }
        return r;
}

static void step_close(conduit_watch *w);

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
        conduit_watch *w = arg;
        if (w->closing) {
                step_close(w);
                return;
        }
        dispatch(w, progress(w, (int)fd, what));
}

static void on_now(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_watch *w = arg;
        if (w->closing) {
                step_close(w);
                return;
        }
        dispatch(w, ready_now(w) | w->ar_events);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_watch *w = arg;
        if (w->closing) {
                step_close(w);
                return;
        }
        dispatch(w, CONDUIT_EV_TIMEOUT);
}

/* Makes the descriptor events match what the flow waits for: for each
 * operation asked for, the directions its last -EAGAIN wanted (a TLS read
 * may wait for writability), on the descriptor of each direction. */
static void watch_fds(conduit_watch *w, int rw, int ww)
{
        conduit_flow *f = w->f;
        int fd[2] = { -1, -1 }, mask[2] = { 0, 0 };
        int dirs = rw | ww;
        for (int d = CONDUIT_WANT_READ; d <= CONDUIT_WANT_WRITE; d <<= 1) {
                if (!(dirs & d))
                        continue;
                int pfd = conduit_flow_poll_fd(f, d);
                int k = fd[0] < 0 || fd[0] == pfd ? 0 : 1;
                fd[k] = pfd;
                mask[k] |= d == CONDUIT_WANT_READ ? EV_READ : EV_WRITE;
        }
        for (int k = 0; k < 2; k++) {
                struct slot *s = &w->slot[k];
                if (s->fd == fd[k] && s->mask == mask[k])
                        continue;
                if (s->ev)
                        event_del(s->ev);
                s->fd = fd[k];
                s->mask = mask[k];
                if (fd[k] < 0 || !mask[k])
                        continue;
                if (!s->ev)
                        s->ev = event_new(w->base, -1, 0, on_fd, w);
                if (!s->ev ||
                    event_assign(s->ev, w->base, fd[k], (short)(mask[k] | EV_PERSIST), on_fd, w) <
                            0 ||
                    event_add(s->ev, NULL) < 0) {
                        /* epoll refuses regular files, which never block:
                         * what waits for that descriptor can go on at once */
                        for (int d = CONDUIT_WANT_READ; d <= CONDUIT_WANT_WRITE; d <<= 1)
                                if (conduit_flow_poll_fd(f, d) == fd[k])
                                        w->always |= d;
                        s->fd = -1;
                        s->mask = 0;
                }
        }
}

static void update(conduit_watch *w)
{
        if (w->dead || w->in_cb)
                return;
        conduit_flow *f = w->f;
        int ready = ready_now(w);
        for (int pass = 0; pass < 2; pass++) {
                int rw = 0, ww = 0, always = w->always;
                w->ar_events = 0;
                if ((w->want & CONDUIT_EV_READ) && !(ready & CONDUIT_EV_READ))
                        rw = f->rd_wants ? f->rd_wants : CONDUIT_WANT_READ;
                if ((w->want & CONDUIT_EV_WRITE) && !(ready & CONDUIT_EV_WRITE))
                        ww = f->wr_wants ? f->wr_wants : CONDUIT_WANT_WRITE;
                /* an operation that waits only for descriptors that never
                 * block can go on now */
                if (rw && !(rw & ~always)) {
                        w->ar_events |= CONDUIT_EV_READ;
                        rw = 0;
                }
                if (ww && !(ww & ~always)) {
                        w->ar_events |= CONDUIT_EV_WRITE;
                        ww = 0;
                }
                watch_fds(w, rw & ~always, ww & ~always);
                if (w->always == always)
                        break; /* else a descriptor just turned out unpollable */
        }
        if (ready || w->ar_events)
                kick(w);
}

int conduit__watch_new(conduit_loop *loop, conduit_flow *f, conduit_watch_cb *cb, void *userdata,
                       bool listed, conduit_watch **ret)
{
        if (!loop || !f || !cb || !ret)
                return -EINVAL;
        if (conduit_flow_poll_fd(f, CONDUIT_WANT_READ) < 0 ||
            conduit_flow_poll_fd(f, CONDUIT_WANT_WRITE) < 0)
                return conduit_flow_set_error(f, -ENOTSUP,
                                              "a flow without a descriptor to poll cannot be "
                                              "watched (a user flow needs get_fd)");
        conduit_watch *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->base = loop->base;
        w->f = f;
        w->cb = cb;
        w->userdata = userdata;
        w->timeout_ms = -1;
        w->slot[0].fd = w->slot[1].fd = -1;
        w->timer = evtimer_new(loop->base, on_timer, w);
        w->now = event_new(loop->base, -1, 0, on_now, w);
        if (!w->timer || !w->now) {
                w->f = NULL; /* not ours yet */
                destroy(w);
                return -ENOMEM;
        }
        /* regular files and directories never block, and epoll refuses
         * them */
        for (int d = CONDUIT_WANT_READ; d <= CONDUIT_WANT_WRITE; d <<= 1) {
                struct stat st;
                if (fstat(conduit_flow_poll_fd(f, d), &st) == 0 &&
                    (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
                        w->always |= d;
        }
        conduit_flow_set_nonblocking(f, true);
        if (listed)
                conduit__loop_add(loop, &w->obj, destroy_obj);
        *ret = w;
        return 0;
}

int conduit_loop_watch(conduit_loop *loop, conduit_flow *f, conduit_watch_cb *cb, void *userdata,
                       conduit_watch **ret)
{
        return conduit__watch_new(loop, f, cb, userdata, true, ret);
}

int conduit_watch_set(conduit_watch *w, int events)
{
        if (!w || (events & ~(CONDUIT_EV_READ | CONDUIT_EV_WRITE)))
                return -EINVAL;
        if (w->closing)
                return -EINVAL;
        bool was = w->want != 0;
        w->want = events;
        if (!was && !w->in_cb)
                arm_timer(w);
        else if (!events)
                event_del(w->timer);
        update(w);
        return 0;
}

int conduit_watch_set_timeout(conduit_watch *w, int ms)
{
        if (!w || w->closing)
                return -EINVAL;
        w->timeout_ms = ms < 0 ? -1 : ms;
        if (!w->in_cb)
                arm_timer(w);
        return 0;
}

conduit_flow *conduit_watch_flow(const conduit_watch *w)
{
        return w ? w->f : NULL;
}

conduit_watch *conduit_watch_free(conduit_watch *w)
{
        if (!w)
                return NULL;
        if (w->in_cb) {
                w->dead = true;
                w->want = 0;
                return NULL;
        }
        destroy(w);
        return NULL;
}

conduit_flow *conduit__watch_release(conduit_watch *w)
{
        conduit_flow *f = w->f;
        w->f = NULL;
        destroy(w);
        return f;
}

/* ---- the asynchronous graceful close ------------------------------------------ */

static void finish_close(conduit_watch *w, int err)
{
        conduit_closed_cb *cb = w->closed_cb;
        void *ud = w->closed_userdata;
        destroy(w);
        if (cb)
                cb(err, ud);
}

/* Shuts the write side down, then reads until the peer's EOF, each step
 * as far as it goes without waiting; then waits for what it needs. */
static void step_close(conduit_watch *w)
{
        conduit_flow *f = w->f;
        if (!f->wr_shut && !f->wr_err) {
                int r = conduit_flow_shutdown(f, CONDUIT_SHUT_WR);
                if (r == -EAGAIN) {
                        watch_fds(w, 0, f->wr_wants ? f->wr_wants : CONDUIT_WANT_WRITE);
                        return;
                }
                f->wr_shut = true;
                if (r < 0) {
                        finish_close(w, r);
                        return;
                }
        }
        if (!f->rd_eof && !f->rd_err && !f->rd_shut) {
                char buf[16384];
                for (int i = 0; i < 64; i++) {
                        ssize_t n = conduit_flow_read(f, buf, sizeof(buf));
                        if (n == -EAGAIN) {
                                watch_fds(w, f->rd_wants ? f->rd_wants : CONDUIT_WANT_READ, 0);
                                return;
                        }
                        if (n <= 0) {
                                finish_close(w, (int)n);
                                return;
                        }
                }
                /* a peer that keeps sending: let others run */
                kick(w);
                return;
        }
        finish_close(w, 0);
}

static void close_timeout(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_watch *w = arg;
        conduit_flow_set_error(w->f, -ETIMEDOUT, "close timed out");
        finish_close(w, -ETIMEDOUT);
}

void conduit_watch_close(conduit_watch *w, conduit_closed_cb *cb, void *userdata)
{
        if (!w || w->closing || w->dead)
                return;
        w->closing = true;
        w->want = 0;
        w->closed_cb = cb;
        w->closed_userdata = userdata;
        /* the close deadline replaces the watch's timeout */
        event_del(w->timer);
        event_assign(w->timer, w->base, -1, 0, close_timeout, w);
        int ms = w->f->timeout[CONDUIT_TIMEOUT_CLOSE];
        if (ms >= 0) {
                struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
                event_add(w->timer, &tv);
        }
        if (!w->in_cb)
                kick(w);
}
