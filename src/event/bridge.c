/* SPDX-License-Identifier: MIT */
/* The bufferevent bridge: the program gets a filtering bufferevent over
 * one end of a bufferevent pair; the bridge moves bytes between the other
 * end and the flow through a watch. The filter's free_context tells the
 * bridge when the program frees its bufferevent. */
#include <errno.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "event/loop-private.h"
#include "flow-private.h"

/* Bytes of the flow's data held for the program before the bridge stops
 * reading the flow (and of the program's data before the pair stops
 * passing it on). */
#define HIGH  (256 * 1024)
#define CHUNK (64 * 1024)
/* Reads start at this size and grow to CHUNK while they come back full:
 * a connection of small messages does not allocate (and free) 64 KiB
 * buffers for each. */
#define MIN_CHUNK 4096

/* Not on the loop's list: the bridge belongs to the program's
 * bufferevent, whose destruction libevent may defer (finalizers) — only
 * its free_context says when it is gone. */
struct bridge {
        conduit_watch *w;          /* owns the flow */
        struct bufferevent *user;  /* the filter the program has */
        struct bufferevent *under; /* the pair's end under it */
        struct bufferevent *mine;  /* the bridge's end of the pair */
        struct evbuffer_cb_entry *under_cb, *user_cb;
        struct event *eof_ev; /* passes the EOF on, on the loop's next pass */
        bool eof_in;          /* the flow's EOF: to pass on once the data is */
        bool eof_sent;
        bool finish_out; /* the program is done writing: shut the flow's write side */
        bool shut_out;
        bool failed;
        size_t rsize; /* the next read's size: MIN_CHUNK to CHUNK */
        int busy;     /* callbacks of the bridge running (nested) */
        bool dead;    /* the program freed its bufferevent meanwhile */
};

static void destroy(struct bridge *b)
{
        /* the program's input and the pair end under it still exist (the
         * filter frees them after its free_context) */
        if (b->user_cb)
                evbuffer_remove_cb_entry(bufferevent_get_input(b->user), b->user_cb);
        if (b->under_cb)
                evbuffer_remove_cb_entry(bufferevent_get_input(b->under), b->under_cb);
        conduit_watch_free(b->w);
        if (b->eof_ev)
                event_free(b->eof_ev);
        if (b->mine)
                bufferevent_free(b->mine);
        free(b);
}

/* The filter's free_context: the program freed its bufferevent (perhaps
 * from a callback the bridge triggered: then the bridge goes once its own
 * callbacks have returned). */
static void user_freed(void *arg)
{
        struct bridge *b = arg;
        if (b->busy) {
                b->dead = true;
                return;
        }
        destroy(b);
}

static void enter(struct bridge *b)
{
        b->busy++;
}

static void leave(struct bridge *b)
{
        if (--b->busy == 0 && b->dead)
                destroy(b);
}

static void update(struct bridge *b);

static void fail(struct bridge *b, int err, short what)
{
        if (b->failed || b->dead)
                return;
        b->failed = true;
        conduit_watch_set(b->w, 0);
        EVUTIL_SET_SOCKET_ERROR(-err);
        bufferevent_trigger_event(b->user, (short)(BEV_EVENT_ERROR | what), 0);
}

static void pump_in(struct bridge *b)
{
        conduit_flow *f = conduit_watch_flow(b->w);
        struct evbuffer *out = bufferevent_get_output(b->mine);
        while (!b->eof_in && !b->failed && !b->dead && evbuffer_get_length(out) < HIGH) {
                struct evbuffer_iovec v[2];
                int nv = evbuffer_reserve_space(out, (ev_ssize_t)b->rsize, v, 2);
                if (nv <= 0) {
                        fail(b, -ENOMEM, BEV_EVENT_READING);
                        return;
                }
                ssize_t n = conduit_flow_read(f, v[0].iov_base, v[0].iov_len);
                if (n > 0) {
                        /* read sizes follow the traffic: a full read
                         * doubles the next, a small one halves it */
                        if ((size_t)n == v[0].iov_len && b->rsize < CHUNK)
                                b->rsize *= 2;
                        else if ((size_t)n <= b->rsize / 4 && b->rsize > MIN_CHUNK)
                                b->rsize /= 2;
                        v[0].iov_len = (size_t)n;
                        evbuffer_commit_space(out, v, 1);
                        continue;
                }
                evbuffer_commit_space(out, v, 0);
                if (n == -EAGAIN)
                        return;
                if (n == 0)
                        b->eof_in = true;
                else
                        fail(b, (int)n, BEV_EVENT_READING);
        }
}

static void pump_out(struct bridge *b)
{
        conduit_flow *f = conduit_watch_flow(b->w);
        struct evbuffer *in = bufferevent_get_input(b->mine);
        while (!b->failed && !b->dead && evbuffer_get_length(in) > 0) {
                struct evbuffer_iovec v[16];
                int nv = evbuffer_peek(in, -1, NULL, v, 16);
                if (nv > 16)
                        nv = 16;
                ssize_t n = conduit_flow_writev(f, (const struct iovec *)v, nv);
                if (n == -EAGAIN)
                        return;
                if (n < 0) {
                        fail(b, (int)n, BEV_EVENT_WRITING);
                        return;
                }
                evbuffer_drain(in, (size_t)n);
        }
        if (b->finish_out && !b->shut_out && !b->failed && !b->dead) {
                int r = conduit_flow_shutdown(f, CONDUIT_SHUT_WR);
                if (r == -EAGAIN)
                        return;
                b->shut_out = true;
                if (r < 0)
                        fail(b, r, BEV_EVENT_WRITING);
        }
}

/* What to wait for next, and the EOF once the data before it is through. */
static void update(struct bridge *b)
{
        if (b->failed || b->dead)
                return;
        struct evbuffer *out = bufferevent_get_output(b->mine);
        /* the EOF once every byte reached the program's own input: none
         * left in the bridge's output nor under the filter */
        if (b->eof_in && !b->eof_sent && evbuffer_get_length(out) == 0 &&
            evbuffer_get_length(bufferevent_get_input(b->under)) == 0) {
                /* not now: this may run inside the filter moving the last
                 * bytes, before it calls the program's read callback */
                static const struct timeval now = { 0, 0 };
                event_add(b->eof_ev, &now);
        }
        int want = 0;
        if (!b->eof_in && evbuffer_get_length(out) < HIGH)
                want |= CONDUIT_EV_READ;
        if (evbuffer_get_length(bufferevent_get_input(b->mine)) > 0 ||
            (b->finish_out && !b->shut_out))
                want |= CONDUIT_EV_WRITE;
        conduit_watch_set(b->w, want);
}

static void on_flow(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)w, (void)f;
        struct bridge *b = arg;
        enter(b);
        if (events & CONDUIT_EV_WRITE)
                pump_out(b);
        if (events & CONDUIT_EV_READ)
                pump_in(b);
        update(b);
        leave(b);
}

/* The program's data arrived at the bridge's end. */
static void on_mine_read(struct bufferevent *bev, void *arg)
{
        (void)bev;
        struct bridge *b = arg;
        enter(b);
        pump_out(b);
        update(b);
        leave(b);
}

static void on_eof(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        struct bridge *b = arg;
        if (b->eof_sent || b->failed || b->dead ||
            evbuffer_get_length(bufferevent_get_output(b->mine)) ||
            evbuffer_get_length(bufferevent_get_input(b->under)))
                return;
        enter(b);
        b->eof_sent = true;
        bufferevent_flush(b->mine, EV_WRITE, BEV_FINISHED);
        leave(b);
}

/* Data left the pair end under the filter: perhaps time for the EOF. */
static void on_under_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
        (void)buf;
        struct bridge *b = arg;
        if (!info->n_deleted || b->dead)
                return;
        enter(b);
        update(b);
        leave(b);
}

/* The program drained its input. With a read high-watermark set, libevent
 * 2.1's filter does not always pull what waits under it again: the bridge
 * asks it to (deferred: not from inside the program's drain). */
static void on_user_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
        (void)buf;
        struct bridge *b = arg;
        if (info->n_deleted && !b->dead && evbuffer_get_length(bufferevent_get_input(b->under)))
                bufferevent_trigger(b->under, EV_READ,
                                    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The program took data: room to read the flow again. */
static void on_mine_write(struct bufferevent *bev, void *arg)
{
        (void)bev;
        struct bridge *b = arg;
        enter(b);
        update(b);
        leave(b);
}

static void on_mine_event(struct bufferevent *bev, short what, void *arg)
{
        (void)bev;
        struct bridge *b = arg;
        if (what & BEV_EVENT_EOF) {
                /* bufferevent_flush(user, EV_WRITE, BEV_FINISHED) */
                enter(b);
                b->finish_out = true;
                pump_out(b);
                update(b);
                leave(b);
        }
}

int conduit_loop_bufferevent(conduit_loop *loop, conduit_flow *f, int options,
                             struct bufferevent **ret)
{
        if (!loop || !f || !ret)
                return -EINVAL;
        struct bridge *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        struct bufferevent *pair[2] = { NULL, NULL };
        if (bufferevent_pair_new(loop->base, options & ~BEV_OPT_CLOSE_ON_FREE, pair) < 0) {
                free(b);
                return -ENOMEM;
        }
        b->mine = pair[1];
        b->rsize = MIN_CHUNK;
        b->eof_ev = evtimer_new(loop->base, on_eof, b);
        if (!b->eof_ev) {
                bufferevent_free(pair[0]);
                bufferevent_free(pair[1]);
                free(b);
                return -ENOMEM;
        }
        int r = conduit__watch_new(loop, f, on_flow, b, false, &b->w);
        if (r < 0) {
                event_free(b->eof_ev);
                bufferevent_free(pair[0]);
                bufferevent_free(pair[1]);
                free(b);
                return r;
        }
        b->user = bufferevent_filter_new(pair[0], NULL, NULL, options | BEV_OPT_CLOSE_ON_FREE,
                                         user_freed, b);
        if (!b->user) {
                conduit__watch_release(b->w); /* the flow stays the caller's */
                event_free(b->eof_ev);
                bufferevent_free(pair[0]);
                bufferevent_free(pair[1]);
                free(b);
                return -ENOMEM;
        }
        b->under = pair[0];
        /* the pair stops passing data on while this much waits under the
         * filter: the bridge's output then fills and it stops reading */
        bufferevent_setwatermark(b->under, EV_READ, 0, HIGH);
        b->under_cb = evbuffer_add_cb(bufferevent_get_input(b->under), on_under_input, b);
        b->user_cb = evbuffer_add_cb(bufferevent_get_input(b->user), on_user_input, b);
        if (!b->under_cb || !b->user_cb) {
                conduit__watch_release(b->w); /* the flow stays the caller's */
                b->w = NULL;
                bufferevent_free(b->user); /* frees b (free_context) and the pair */
                return -ENOMEM;
        }
        bufferevent_setwatermark(b->mine, EV_READ, 0, HIGH);
        bufferevent_setwatermark(b->mine, EV_WRITE, HIGH / 2, 0);
        bufferevent_setcb(b->mine, on_mine_read, on_mine_write, on_mine_event, b);
        bufferevent_enable(b->mine, EV_READ | EV_WRITE);
        update(b);
        *ret = b->user;
        return 0;
}
