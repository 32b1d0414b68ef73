/* SPDX-License-Identifier: MIT */
/* echo-server URI: echoes every client over any transport (tcp://127.0.0.1:7000, unix:///e.sock,
 * vsock://:5000, tls+...). Exit status: 0 after SIGINT/SIGTERM, 1 cannot listen, 2 bad usage. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <conduit/conduit.h>
#include <event2/event.h>

struct conn {
        struct conn *next, **prev; /* on the list of open connections, freed at exit */
        size_t end, len;           /* buf[end - len..end): read, to echo before reading more */
        char buf[65536];
};
static struct conn *conns;

static void on_ready(conduit_watch *w, conduit_flow *f, int events, void *arg)
{
        struct conn *c = arg;
        (void)events;
        for (ssize_t i = 0, n = 0; i < 16 && n != -EAGAIN; i++) { /* then others have a turn */
                if (c->len > 0) {
                        if ((n = conduit_flow_write(f, c->buf + c->end - c->len, c->len)) > 0)
                                c->len -= (size_t)n;
                } else if ((n = conduit_flow_read(f, c->buf, sizeof(c->buf))) > 0) {
                        c->end = c->len = (size_t)n;
                }
                if (n <= 0 && n != -EAGAIN) { /* EOF, all echoed (or an error): close */
                        if ((*c->prev = c->next))
                                c->next->prev = c->prev;
                        free(c);
                        conduit_watch_close(w, NULL, NULL); /* shuts down, awaits the EOF */
                        return;
                }
        }
        conduit_watch_set(w, c->len > 0 ? CONDUIT_EV_WRITE : CONDUIT_EV_READ);
}

static void on_accept(conduit_flow *f, void *loop)
{
        struct conn *c = calloc(1, sizeof(*c));
        conduit_watch *w;
        if (!c || conduit_loop_watch(loop, f, on_ready, c, &w) < 0) {
                free(c);
                conduit_flow_free(f); /* not watched: still ours */
                return;
        }
        if ((c->next = conns))
                conns->prev = &c->next;
        c->prev = &conns;
        conns = c;
        conduit_watch_set(w, CONDUIT_EV_READ);
}

static void on_signal(evutil_socket_t sig, short what, void *base)
{
        (void)sig, (void)what;
        event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
        if (argc != 2 || argv[1][0] == '-') {
                fprintf(stderr, "usage: echo-server URI\n");
                return 2;
        }
        struct event_base *base = event_base_new();
        struct event *sig[2] = { NULL, NULL };
        conduit_loop *loop = NULL;
        conduit_loop_listener *l = NULL;
        char *bound = NULL;
        int r = base ? conduit_loop_new(NULL, base, &loop) : -ENOMEM;
        if (r == 0)
                r = conduit_loop_listen(loop, argv[1], on_accept, loop, &l);
        for (int i = 0; r == 0 && i < 2; i++)
                if (!(sig[i] = evsignal_new(base, i ? SIGTERM : SIGINT, on_signal, base)) ||
                    evsignal_add(sig[i], NULL) < 0)
                        r = -ENOMEM;
        if (r == 0 && (r = conduit_endp_format(conduit_loop_listener_endp(l), &bound)) >= 0) {
                printf("%s\n", bound); /* for scripts: the port the kernel chose */
                fflush(stdout);
                r = event_base_dispatch(base);
        } else {
                fprintf(stderr, "echo-server: %s: %s\n", argv[1], conduit_ctx_error_message(NULL));
        }
        for (struct conn *next; conns; conns = next) {
                next = conns->next;
                free(conns);
        }
        conduit_loop_free(loop); /* the listener, the watches and their flows */
        for (int i = 0; i < 2; i++)
                if (sig[i])
                        event_free(sig[i]);
        if (base)
                event_base_free(base);
        free(bound);
        return r != 0;
}
