/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "common.h"
#include "event-echo.h"

#define BUF 16384

struct echo_conn {
        struct echo_conn *prev, *next;
        struct echo_server *s;
        conduit_watch *w;
        conduit_flow *held; /* silent mode */
        unsigned char buf[BUF];
        size_t len; /* bytes in buf not yet echoed */
        bool eof;
        bool shut;
        bool handshook; /* mux mode: the CONNECT line is done */
        char line[64];
        size_t linelen;
};

static void conn_unlink(struct echo_conn *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                c->s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
}

static void conn_free(struct echo_conn *c)
{
        conn_unlink(c);
        conduit_watch_free(c->w);
        conduit_flow_free(c->held);
        free(c);
}

static void conn_closed(int err, void *arg)
{
        (void)err;
        free(arg);
}

/* The echo: read while there is room, write what was read; after the
 * peer's EOF and the last byte, a graceful asynchronous close. */
static void conn_cb(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)events;
        struct echo_conn *c = arg;
        if (c->s->mux && !c->handshook) {
                for (;;) {
                        char ch;
                        ssize_t n = conduit_flow_read(f, &ch, 1);
                        if (n == -EAGAIN)
                                return;
                        if (n <= 0 || c->linelen + 1 >= sizeof(c->line)) {
                                conn_free(c);
                                return;
                        }
                        if (ch != '\n') {
                                c->line[c->linelen++] = ch;
                                continue;
                        }
                        c->line[c->linelen] = '\0';
                        if (strcmp(c->line, "CONNECT 9") == 0) {
                                conn_free(c); /* nobody listens on port 9 */
                                return;
                        }
                        const char ok[] = "OK 1073741824\n";
                        if (conduit_flow_write(f, ok, sizeof(ok) - 1) != sizeof(ok) - 1) {
                                conn_free(c);
                                return;
                        }
                        c->handshook = true;
                        break;
                }
        }
        for (int round = 0; round < 16; round++) {
                bool progress = false;
                if (!c->eof && c->len < BUF) {
                        ssize_t n = conduit_flow_read(f, c->buf + c->len, BUF - c->len);
                        if (n > 0) {
                                c->len += (size_t)n;
                                progress = true;
                        } else if (n == 0) {
                                c->eof = true;
                        } else if (n != -EAGAIN) {
                                conn_free(c);
                                return;
                        }
                }
                if (c->len > 0) {
                        ssize_t n = conduit_flow_write(f, c->buf, c->len);
                        if (n > 0) {
                                memmove(c->buf, c->buf + n, c->len - (size_t)n);
                                c->len -= (size_t)n;
                                progress = true;
                        } else if (n != -EAGAIN) {
                                conn_free(c);
                                return;
                        }
                }
                if (!progress)
                        break;
        }
        if (c->eof && c->len == 0) {
                conn_unlink(c);
                conduit_watch_close(w, conn_closed, c);
                return;
        }
        conduit_watch_set(w, (c->eof || c->len == BUF ? 0 : CONDUIT_EV_READ) |
                                     (c->len ? CONDUIT_EV_WRITE : 0));
}

static void on_accept(conduit_flow *f, void *arg)
{
        struct echo_server *s = arg;
        struct echo_conn *c = calloc(1, sizeof(*c));
        ck_assert_ptr_nonnull(c);
        c->s = s;
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->accepted++;
        if (s->silent) {
                c->held = f;
                return;
        }
        int r = conduit_loop_watch(s->loop, f, conn_cb, c, &c->w);
        ck_assert_msg(r == 0, "conduit_loop_watch: %s", conduit_strerror(r));
        conduit_watch_set(c->w, CONDUIT_EV_READ);
}

void echo_server_start(struct echo_server *s, conduit_loop *loop, const char *uri)
{
        memset(s, 0, sizeof(*s));
        s->loop = loop;
        int r = conduit_loop_listen(loop, uri, on_accept, s, &s->l);
        ck_assert_msg(r == 0, "listen on %s: %s (%s)", uri, conduit_strerror(r),
                      conduit_ctx_error_message(NULL));
}

char *echo_server_uri(struct echo_server *s, const char *fmt)
{
        char *u = NULL, *out = NULL;
        ck_assert_int_ge(conduit_endp_format(conduit_loop_listener_endp(s->l), &u), 0);
        const char *at = strstr(fmt, "%s");
        ck_assert_ptr_nonnull(at);
        ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - fmt), fmt, u, at + 2), 0);
        free(u);
        return out;
}

void echo_server_stop(struct echo_server *s)
{
        conduit_loop_listener_free(s->l);
        s->l = NULL;
        while (s->conns)
                conn_free(s->conns);
}

/* ---- clients ------------------------------------------------------------------------ */

struct echo_client {
        struct echo_clients *cl;
        conduit_watch *w;
        const unsigned char *data; /* its own bytes: streams crossed show */
        size_t sent, got;
        bool shut;
        bool done;
};

static void client_done(struct echo_client *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void client_done(struct echo_client *c, const char *fmt, ...)
{
        struct echo_clients *cl = c->cl;
        c->done = true;
        if (fmt) {
                if (cl->failed++ == 0) {
                        va_list ap;
                        va_start(ap, fmt);
                        vsnprintf(cl->first_error, sizeof(cl->first_error), fmt, ap);
                        va_end(ap);
                }
        } else {
                cl->ok++;
        }
        conduit_watch_free(c->w);
        c->w = NULL;
        if (cl->ok + cl->failed == cl->n)
                cl->finished = true;
}

static void client_cb(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        (void)events;
        struct echo_client *c = arg;
        struct echo_clients *cl = c->cl;
        while (c->sent < cl->size) {
                ssize_t n = conduit_flow_write(f, c->data + c->sent, cl->size - c->sent);
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        client_done(c, "write: %s (%s)", conduit_strerror((int)n),
                                    conduit_flow_error_message(f));
                        return;
                }
                c->sent += (size_t)n;
        }
        if (c->sent == cl->size && !c->shut) {
                int r = conduit_flow_shutdown(f, CONDUIT_SHUT_WR);
                if (r == 0)
                        c->shut = true;
                else if (r != -EAGAIN) {
                        client_done(c, "shutdown: %s", conduit_strerror(r));
                        return;
                }
        }
        unsigned char buf[16384];
        for (;;) {
                ssize_t n = conduit_flow_read(f, buf, sizeof(buf));
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        client_done(c, "read: %s (%s)", conduit_strerror((int)n),
                                    conduit_flow_error_message(f));
                        return;
                }
                if (n == 0) {
                        if (c->got != cl->size)
                                client_done(c, "EOF after %zu of %zu bytes", c->got, cl->size);
                        else
                                client_done(c, NULL);
                        return;
                }
                if (c->got + (size_t)n > cl->size ||
                    memcmp(buf, c->data + c->got, (size_t)n) != 0) {
                        client_done(c, "wrong bytes at offset %zu", c->got);
                        return;
                }
                c->got += (size_t)n;
        }
        conduit_watch_set(w, CONDUIT_EV_READ | (c->shut ? 0 : CONDUIT_EV_WRITE));
}

static void client_connected(conduit_flow *f, int err, void *arg)
{
        struct echo_client *c = arg;
        if (err < 0) {
                client_done(c, "connect: %s (%s)", conduit_strerror(err),
                            conduit_ctx_error_message(NULL));
                return;
        }
        int r = conduit_loop_watch(c->cl->loop, f, client_cb, c, &c->w);
        if (r < 0) {
                conduit_flow_free(f);
                client_done(c, "watch: %s", conduit_strerror(r));
                return;
        }
        conduit_watch_set(c->w, CONDUIT_EV_READ | CONDUIT_EV_WRITE);
}

void echo_clients_start(struct echo_clients *cl, conduit_loop *loop, const char *uri, int n,
                        size_t size)
{
        memset(cl, 0, sizeof(*cl));
        cl->loop = loop;
        cl->uri = uri;
        cl->n = n;
        cl->size = size;
        /* client i sends size bytes from data + i */
        cl->data = malloc(size + (size_t)n + 1);
        cl->c = calloc((size_t)n, sizeof(*cl->c));
        ck_assert(cl->data && cl->c);
        tc_fill(cl->data, size + (size_t)n, (uint32_t)size);
        for (int i = 0; i < n; i++) {
                cl->c[i].cl = cl;
                cl->c[i].data = cl->data + i;
                int r = conduit_loop_connect(loop, uri, client_connected, &cl->c[i], NULL);
                ck_assert_msg(r == 0, "connect %s: %s", uri, conduit_strerror(r));
        }
        if (n == 0)
                cl->finished = true;
}

void echo_clients_free(struct echo_clients *cl)
{
        for (int i = 0; i < cl->n; i++)
                conduit_watch_free(cl->c[i].w);
        free(cl->c);
        free(cl->data);
}
