/* SPDX-License-Identifier: MIT */
/* Internal: the event loop glue shared by the event API's parts. */
#ifndef CONDUIT_LOOP_PRIVATE_H
#define CONDUIT_LOOP_PRIVATE_H

#include <event2/dns.h>
#include <event2/event.h>

#include "conduit/conduit.h"
#include "conduit/event.h"

/* Everything made with a loop is on its list, so conduit_loop_free() can
 * free what the program left. */
struct conduit__loop_obj {
        struct conduit__loop_obj *prev, *next;
        void (*destroy)(struct conduit__loop_obj *o);
};

/* The loop's evdns base. Lookups cancelled by a connect end with a
 * callback evdns runs later, from the loop, and which needs the evdns base
 * alive: a loop freed meanwhile leaves it to the last of those callbacks
 * (conduit__loop_dns_done()). */
struct conduit__dns {
        struct evdns_base *evdns;
        struct event *free_ev; /* frees it, once orphaned and done */
        int pending;           /* lookups whose callback has not come yet */
        bool orphan;           /* the loop is gone */
};

struct conduit_loop {
        conduit_ctx *ctx;
        struct event_base *base;
        struct conduit__dns *dns;      /* made on the first lookup */
        struct conduit__loop_obj objs; /* list head */
};

void conduit__loop_add(conduit_loop *loop, struct conduit__loop_obj *o,
                       void (*destroy)(struct conduit__loop_obj *o));
void conduit__loop_remove(struct conduit__loop_obj *o);

/* The loop's evdns, made on first use. NULL on ENOMEM. A lookup started
 * with it counts in ->pending until its callback calls
 * conduit__loop_dns_done(). */
struct conduit__dns *conduit__loop_dns(conduit_loop *loop);
void conduit__loop_dns_done(struct conduit__dns *d);

/* conduit_loop_watch(); listed false keeps it off the loop's list (a
 * bridge's watch belongs to its bufferevent, not to the loop). */
int conduit__watch_new(conduit_loop *loop, conduit_flow *f, conduit_watch_cb *cb, void *userdata,
                       bool listed, conduit_watch **ret);

/* Frees a watch but not its flow, which it returns (in non-blocking
 * mode). */
conduit_flow *conduit__watch_release(conduit_watch *w);

#endif
