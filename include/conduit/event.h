/* SPDX-License-Identifier: MIT */
/* libconduit: event-driven use on a libevent event_base.
 *
 * Everything here runs on the caller's struct event_base, from its
 * callbacks: asynchronous resolve (evdns) and connect (Happy Eyeballs,
 * hybrid-vsock and TLS handshakes, deadlines, retry), listeners that hand
 * over flows whose handshakes are done, readiness callbacks per flow, and a
 * bridge to libevent's bufferevents. Thousands of flows of any backend fit
 * on one event_base. All calls are made from the thread running the base.
 * docs/event.md is the guide. */
#ifndef CONDUIT_EVENT_H
#define CONDUIT_EVENT_H

#include "conduit/common.h"
#include "conduit/context.h"
#include "conduit/endp.h"
#include "conduit/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct bufferevent;

/* libconduit's side of one event_base: the context it uses and an evdns
 * resolver, made at the first lookup (the context's hosts file, then the
 * system's resolv.conf and /etc/hosts). */
typedef struct conduit_loop conduit_loop;

/* ctx may be NULL (the process's default context, see conduit/connect.h).
 * Errors: -EINVAL, -ENOMEM. */
CONDUIT_EXPORT int conduit_loop_new(conduit_ctx *ctx, struct event_base *base, conduit_loop **ret);

/* Cancels pending connects (their callbacks do not run) and frees the
 * listeners and watches (with their flows) still made with it, then the
 * loop. Bufferevents of the bridge belong to the program: free them
 * before event_base_free(), as any bufferevent. Call it before
 * event_base_free(), and not from a callback of the loop's objects.
 * Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_loop *conduit_loop_free(conduit_loop *loop);

CONDUIT_EXPORT struct event_base *conduit_loop_base(const conduit_loop *loop);

/* ---- connecting ------------------------------------------------------------ */

typedef struct conduit_connecting conduit_connecting;

/* Called once: with a connected flow (blocking mode; the callee owns it)
 * and err 0, or with f NULL and err < 0 (the errors of conduit_connect();
 * the detail is in conduit_ctx_error_message() during the callback). */
typedef void conduit_connect_cb(conduit_flow *f, int err, void *userdata);

/* Resolves uri with evdns and connects as conduit_connect() does —
 * Happy Eyeballs across TCP candidates, hybrid-vsock and TLS handshakes,
 * the connect deadline, retry=, all without blocking. The callback never
 * runs from inside this call. *ret_handle (if ret_handle is not NULL)
 * cancels it. Errors (returned at once, no callback): parse errors,
 * -ENOMEM. */
CONDUIT_EXPORT int conduit_loop_connect(conduit_loop *loop, const char *uri, conduit_connect_cb *cb,
                                        void *userdata, conduit_connecting **ret_handle);

/* Cancels a pending connect: its callback will not run, and everything it
 * holds is freed. Only before the callback ran. Accepts NULL. */
CONDUIT_EXPORT void conduit_connecting_cancel(conduit_connecting *c);

/* ---- listening -------------------------------------------------------------- */

typedef struct conduit_loop_listener conduit_loop_listener;

/* A new flow, its TLS handshake (if any) complete; the callee owns it. */
typedef void conduit_accept_cb(conduit_flow *f, void *userdata);

/* Listens on uri (as conduit_listen()) and calls cb for each new flow.
 * Handshakes run concurrently: a client that stalls never delays others
 * and is dropped at the handshake timeout. At the descriptor limit
 * (EMFILE) accepting pauses for 100 ms instead of spinning. */
CONDUIT_EXPORT int conduit_loop_listen(conduit_loop *loop, const char *uri, conduit_accept_cb *cb,
                                       void *userdata, conduit_loop_listener **ret);

CONDUIT_EXPORT const conduit_endp *conduit_loop_listener_endp(const conduit_loop_listener *l);

/* Detail of the last failure: a client dropped (handshake failed or timed
 * out) or an accept error ("" if none). */
CONDUIT_EXPORT const char *conduit_loop_listener_error_message(const conduit_loop_listener *l);

/* Stops listening, drops handshakes in progress. Accepts NULL. */
CONDUIT_EXPORT conduit_loop_listener *conduit_loop_listener_free(conduit_loop_listener *l);

/* ---- readiness callbacks ------------------------------------------------------ */

typedef struct conduit_watch conduit_watch;

#define CONDUIT_EV_READ    1 /* a read will make progress: data, EOF or an error */
#define CONDUIT_EV_WRITE   2 /* a write will make progress */
#define CONDUIT_EV_TIMEOUT 4 /* the watch's timeout passed with nothing to do */

typedef void conduit_watch_cb(conduit_watch *w, conduit_flow *f, int events, void *userdata);

/* Watches f (which it owns from now on, and switches to non-blocking
 * mode): cb runs when an operation the program asked for with
 * conduit_watch_set() can make progress. TLS is accounted for: plaintext
 * already decrypted makes the flow readable, and a read that needs the
 * opposite direction is woken by it. In the callback, read or write until
 * -EAGAIN. */
CONDUIT_EXPORT int conduit_loop_watch(conduit_loop *loop, conduit_flow *f, conduit_watch_cb *cb,
                                      void *userdata, conduit_watch **ret);

/* Which of CONDUIT_EV_READ and CONDUIT_EV_WRITE the callback is for. */
CONDUIT_EXPORT int conduit_watch_set(conduit_watch *w, int events);

/* CONDUIT_EV_TIMEOUT after ms without a callback while the watch asks for
 * something (the timer restarts after each callback; negative: none). */
CONDUIT_EXPORT int conduit_watch_set_timeout(conduit_watch *w, int ms);

CONDUIT_EXPORT conduit_flow *conduit_watch_flow(const conduit_watch *w);

/* Graceful close without blocking: shuts the write side down, discards
 * what the peer still sends until its EOF (bounded by the flow's close
 * timeout), frees the flow and the watch, then calls cb (if not NULL) with
 * 0 or the error (-ETIMEDOUT, ...). No watch callback runs after this. */
typedef void conduit_closed_cb(int err, void *userdata);
CONDUIT_EXPORT void conduit_watch_close(conduit_watch *w, conduit_closed_cb *cb, void *userdata);

/* Frees the watch and its flow at once. Accepts NULL. Returns NULL. */
CONDUIT_EXPORT conduit_watch *conduit_watch_free(conduit_watch *w);

/* ---- the bufferevent bridge ---------------------------------------------------- */

/* A bufferevent for programs written around libevent's bufferevents,
 * backed by any flow (TLS over vsock included), which it owns.
 * bufferevent_free() frees the flow too. Half-close both ways:
 * bufferevent_flush(bev, EV_WRITE, BEV_FINISHED) shuts down the flow's
 * write side once what was written is sent; the flow's EOF arrives as
 * BEV_EVENT_EOF, its errors as BEV_EVENT_ERROR. options: BEV_OPT_* of
 * bufferevent_filter_new() (BEV_OPT_CLOSE_ON_FREE is implied). */
CONDUIT_EXPORT int conduit_loop_bufferevent(conduit_loop *loop, conduit_flow *f, int options,
                                            struct bufferevent **ret);

#ifdef __cplusplus
}
#endif

#endif
