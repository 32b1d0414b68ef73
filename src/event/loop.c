/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "ctx-private.h"
#include "event/loop-private.h"

int conduit_loop_new(conduit_ctx *ctx, struct event_base *base, conduit_loop **ret)
{
        if (!base || !ret)
                return -EINVAL;
        conduit_loop *loop = calloc(1, sizeof(*loop));
        if (!loop)
                return -ENOMEM;
        if (!(loop->ctx = conduit__ctx_get(ctx))) {
                free(loop);
                return -ENOMEM;
        }
        loop->base = base;
        loop->objs.prev = loop->objs.next = &loop->objs;
        *ret = loop;
        return 0;
}

static void dns_free(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        struct conduit__dns *d = arg;
        evdns_base_free(d->evdns, 0);
        event_free(d->free_ev);
        free(d);
}

void conduit__loop_dns_done(struct conduit__dns *d)
{
        /* not from inside evdns' own callback: right after it, in the same
         * pass of the loop (an event activated from a callback runs in the
         * pass that activated it) */
        if (--d->pending == 0 && d->orphan)
                event_active(d->free_ev, 0, 0);
}

struct conduit__dns *conduit__loop_dns(conduit_loop *loop)
{
        if (loop->dns)
                return loop->dns;
        struct conduit__dns *d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->evdns = evdns_base_new(loop->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        d->free_ev = event_new(loop->base, -1, 0, dns_free, d);
        if (!d->evdns || !d->free_ev) {
                if (d->evdns)
                        evdns_base_free(d->evdns, 0);
                if (d->free_ev)
                        event_free(d->free_ev);
                free(d);
                return NULL;
        }
        /* the context's hosts file first: evdns answers with the entries of
         * every file it read, in order */
        if (loop->ctx->hosts_file && evdns_base_load_hosts(d->evdns, loop->ctx->hosts_file) < 0)
                conduit__log(loop->ctx, CONDUIT_LOG_WARNING, "cannot read hosts file %s",
                             loop->ctx->hosts_file);
        /* then what getaddrinfo() would use: resolv.conf's servers and
         * options, and /etc/hosts. Without resolv.conf evdns asks
         * 127.0.0.1 (its default); hosts-file answers work anyway. */
        evdns_base_resolv_conf_parse(d->evdns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
        loop->dns = d;
        return d;
}

void conduit__loop_add(conduit_loop *loop, struct conduit__loop_obj *o,
                       void (*destroy)(struct conduit__loop_obj *o))
{
        o->destroy = destroy;
        o->next = loop->objs.next;
        o->prev = &loop->objs;
        loop->objs.next->prev = o;
        loop->objs.next = o;
}

void conduit__loop_remove(struct conduit__loop_obj *o)
{
        if (!o->next)
                return;
        o->prev->next = o->next;
        o->next->prev = o->prev;
        o->prev = o->next = NULL;
}

conduit_loop *conduit_loop_free(conduit_loop *loop)
{
        if (!loop)
                return NULL;
        while (loop->objs.next != &loop->objs) {
                struct conduit__loop_obj *o = loop->objs.next;
                conduit__loop_remove(o);
                o->destroy(o);
        }
        if (loop->dns) {
                /* every lookup was cancelled above; their callbacks may
                 * still be on their way */
                if (loop->dns->pending == 0)
                        dns_free(-1, 0, loop->dns);
                else
                        loop->dns->orphan = true;
        }
        conduit_ctx_free(loop->ctx);
        free(loop);
        return NULL;
}

struct event_base *conduit_loop_base(const conduit_loop *loop)
{
        return loop ? loop->base : NULL;
}
