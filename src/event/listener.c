/* SPDX-License-Identifier: MIT */
/* Listeners on an event_base: accept whenever the socket is readable, run
 * every TLS handshake as its own set of events, hand over ready flows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "ctx-private.h"
#include "event/loop-private.h"
#include "flow-private.h"
#include "listener-private.h"
#include "tls-private.h"
#include "util.h"

/* Connections taken per readiness of the socket, so that one listener
 * under a flood leaves the loop to others. */
#define ACCEPT_BATCH 64
/* At the descriptor limit the socket rests this long. */
#define EMFILE_PAUSE_MS 100

struct handshake {
        struct handshake *prev, *next;
        struct conduit_loop_listener *l;
        conduit_flow *f;
        struct event *io;
        struct event *timer;
};

struct conduit_loop_listener {
        struct conduit__loop_obj obj;
        conduit_loop *loop;
        conduit_listener *sock;
        conduit_accept_cb *cb;
        void *userdata;
        struct event *accept_ev;
        struct event *pause_ev;
        struct handshake hs; /* list head */
        char *errmsg;
        int busy;  /* callbacks of the listener running (nested) */
        bool dead; /* freed inside its callback: freed once they return */
};

static void set_error(conduit_loop_listener *l, const char *msg)
{
        char *dup = strdup(msg);
        if (dup) {
                free(l->errmsg);
                l->errmsg = dup;
        }
        conduit__listener_note(l->sock, msg);
}

static void hs_free(struct handshake *h)
{
        h->prev->next = h->next;
        h->next->prev = h->prev;
        if (h->io)
                event_free(h->io);
        if (h->timer)
                event_free(h->timer);
        conduit_flow_free(h->f);
        free(h);
}

static void destroy(conduit_loop_listener *l)
{
        conduit__loop_remove(&l->obj);
        while (l->hs.next != &l->hs)
                hs_free(l->hs.next);
        if (l->accept_ev)
                event_free(l->accept_ev);
        if (l->pause_ev)
                event_free(l->pause_ev);
        conduit_listener_free(l->sock);
        free(l->errmsg);
        free(l);
}

static void destroy_obj(struct conduit__loop_obj *o)
{
        destroy((conduit_loop_listener *)o);
}

/* Hands a ready flow to the program (blocking mode, as conduit_listener
 * gives them). Returns false when the callback freed the listener. */
static bool deliver(conduit_loop_listener *l, conduit_flow *f)
{
        conduit_flow_set_nonblocking(f, false);
        l->busy++;
        l->cb(f, l->userdata);
        l->busy--;
        if (l->dead) {
                if (l->busy == 0)
                        destroy(l);
                return false;
        }
        return true;
}

static void hs_drop(struct handshake *h, const char *why)
{
        conduit_flow *f = h->f;
        char *s = conduit__endp_str(conduit_flow_peer(f->inner ? f->inner : f));
        char *msg = NULL;
        if (asprintf(&msg, "TLS handshake with %s failed: %s", s ? s : "?", why) >= 0) {
                conduit__log(h->l->loop->ctx, CONDUIT_LOG_DEBUG, "%s", msg);
                set_error(h->l, msg);
                free(msg);
        }
        free(s);
        hs_free(h);
}

static void hs_step(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        struct handshake *h = arg;
        int r = conduit__tls_handshake_step(h->f);
        if (r == 0) {
                conduit_loop_listener *l = h->l;
                conduit_flow *f = h->f;
                h->f = NULL;
                hs_free(h);
                deliver(l, f);
                return;
        }
        if (r != -EAGAIN) {
                hs_drop(h, conduit_flow_error_message(h->f));
                return;
        }
        int w = conduit_flow_wants(h->f);
        int dir = w & CONDUIT_WANT_WRITE ? CONDUIT_WANT_WRITE : CONDUIT_WANT_READ;
        short ev = (short)((w & CONDUIT_WANT_READ ? EV_READ : 0) |
                           (w & CONDUIT_WANT_WRITE ? EV_WRITE : 0));
        if (event_assign(h->io, h->l->loop->base, conduit_flow_poll_fd(h->f, dir), ev, hs_step, h) <
                    0 ||
            event_add(h->io, NULL) < 0)
                hs_drop(h, "cannot watch the connection");
}

static void hs_timeout(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        hs_drop(arg, "no handshake within the timeout");
}

/* A TLS handshake of its own: a client that stalls delays nobody. */
static void start_handshake(conduit_loop_listener *l, conduit_flow *raw)
{
        conduit_flow *f = NULL;
        conduit_flow_set_nonblocking(raw, true);
        if (conduit__listener_wrap_tls(l->sock, raw, &f) < 0) {
                set_error(l, conduit_listener_error_message(l->sock));
                return;
        }
        struct handshake *h = calloc(1, sizeof(*h));
        if (h) {
                h->io = event_new(l->loop->base, -1, 0, hs_step, h);
                h->timer = evtimer_new(l->loop->base, hs_timeout, h);
        }
        if (!h || !h->io || !h->timer) {
                if (h) {
                        if (h->io)
                                event_free(h->io);
                        if (h->timer)
                                event_free(h->timer);
                        free(h);
                }
                conduit_flow_free(f);
                set_error(l, "out of memory for a handshake");
                return;
        }
        h->l = l;
        h->f = f;
        h->next = l->hs.next;
        h->prev = &l->hs;
        l->hs.next->prev = h;
        l->hs.next = h;
        int ms = l->loop->ctx->timeouts[CONDUIT_TIMEOUT_HANDSHAKE];
        if (ms >= 0) {
                struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
                event_add(h->timer, &tv);
        }
        hs_step(-1, 0, h);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_loop_listener *l = arg;
        event_add(l->accept_ev, NULL);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        conduit_loop_listener *l = arg;
        bool tls = conduit__listener_has_tls(l->sock);
        /* a handshake may finish inside start_handshake() and its callback
         * free the listener: it goes once this returns */
        l->busy++;
        for (int i = 0; i < ACCEPT_BATCH && !l->dead; i++) {
                conduit_flow *f = NULL;
                int r = conduit__listener_accept_raw(l->sock, &f);
                if (r == -EAGAIN)
                        break;
                if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) {
                        /* the connection stays queued; trying again now
                         * would spin */
                        set_error(l, conduit_listener_error_message(l->sock));
                        conduit__log(l->loop->ctx, CONDUIT_LOG_WARNING,
                                     "%s: pausing accept for %d ms", l->errmsg ? l->errmsg : "",
                                     EMFILE_PAUSE_MS);
                        event_del(l->accept_ev);
                        struct timeval tv = { 0, EMFILE_PAUSE_MS * 1000 };
                        event_add(l->pause_ev, &tv);
                        break;
                }
                if (r < 0) {
                        set_error(l, conduit_listener_error_message(l->sock));
                        conduit__log(l->loop->ctx, CONDUIT_LOG_WARNING, "%s", l->errmsg);
                        break;
                }
                if (tls)
                        start_handshake(l, f);
                else
                        deliver(l, f);
        }
        if (--l->busy == 0 && l->dead)
                destroy(l);
}

int conduit_loop_listen(conduit_loop *loop, const char *uri, conduit_accept_cb *cb, void *userdata,
                        conduit_loop_listener **ret)
{
        if (!loop || !uri || !cb || !ret)
                return conduit__set_error(-EINVAL, "missing argument");
        conduit_loop_listener *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->loop = loop;
        l->cb = cb;
        l->userdata = userdata;
        l->hs.next = l->hs.prev = &l->hs;
        int r = conduit_listen(loop->ctx, uri, &l->sock);
        if (r < 0) {
                free(l);
                return r;
        }
        conduit_listener_set_nonblocking(l->sock, true);
        l->accept_ev = event_new(loop->base, conduit_listener_fd(l->sock), EV_READ | EV_PERSIST,
                                 on_accept, l);
        l->pause_ev = evtimer_new(loop->base, on_resume, l);
        if (!l->accept_ev || !l->pause_ev || event_add(l->accept_ev, NULL) < 0) {
                destroy(l);
                return conduit__set_error(-ENOMEM, "cannot watch the listening socket");
        }
        conduit__loop_add(loop, &l->obj, destroy_obj);
        *ret = l;
        return 0;
}

const conduit_endp *conduit_loop_listener_endp(const conduit_loop_listener *l)
{
        return l ? conduit_listener_endp(l->sock) : NULL;
}

const char *conduit_loop_listener_error_message(const conduit_loop_listener *l)
{
        return l && l->errmsg ? l->errmsg : "";
}

conduit_loop_listener *conduit_loop_listener_free(conduit_loop_listener *l)
{
        if (!l)
                return NULL;
        if (l->busy) {
                l->dead = true;
                event_del(l->accept_ev);
                event_del(l->pause_ev);
                return NULL;
        }
        destroy(l);
        return NULL;
}
