/* SPDX-License-Identifier: MIT */
/* An echo server and echo clients on a conduit_loop, written with the
 * readiness callbacks (conduit_watch): the event suites' load generator. */
#ifndef CONDUIT_TESTS_EVENT_ECHO_H
#define CONDUIT_TESTS_EVENT_ECHO_H

#include <stdbool.h>
#include <stddef.h>

#include "conduit/conduit.h"

struct echo_conn;

struct echo_server {
        conduit_loop *loop;
        conduit_loop_listener *l;
        bool silent; /* keep accepted flows without reading them */
        bool mux;    /* act as a hybrid-vsock multiplexer first (port 9: close) */
        struct echo_conn *conns;
        int accepted;
};

/* Listens on uri (asserting success). */
void echo_server_start(struct echo_server *s, conduit_loop *loop, const char *uri);

/* fmt with its %s replaced by the URI of the bound endp (malloc'd). */
char *echo_server_uri(struct echo_server *s, const char *fmt);

/* Stops listening and frees the connections still open. */
void echo_server_stop(struct echo_server *s);

struct echo_client;

struct echo_clients {
        conduit_loop *loop;
        const char *uri;
        int n;
        size_t size;
        unsigned char *data; /* client i sends size bytes from data + i */
        struct echo_client *c;
        int ok, failed;
        bool finished;
        char first_error[512];
};

/* n clients connect to uri at once, each sends size bytes of its own (a
 * stream crossed with another's shows), finishes its write side and checks
 * that exactly those bytes come back before EOF. */
void echo_clients_start(struct echo_clients *cl, conduit_loop *loop, const char *uri, int n,
                        size_t size);
void echo_clients_free(struct echo_clients *cl);

#endif
