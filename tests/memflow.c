/* SPDX-License-Identifier: MIT */
/* The in-memory flow of memflow.h. Each direction is a ring with its own
 * condition variable (its reader and its writer wait on it) and two
 * eventfds: the reader's readiness descriptor (readable while the counter
 * is non-zero) and the writer's (writable while the counter is below
 * 0xfffffffffffffffe, so it is made unwritable by adding that much and
 * writable again by reading the counter back to zero). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "memflow.h"

#define EVENTFD_FULL UINT64_C(0xfffffffffffffffe)

struct ring {
        uint8_t *buf;
        size_t cap, head, len;
        bool wr_closed; /* the writer shut down or went away: EOF once drained */
        bool rd_closed; /* the reader shut down reading or went away: -EPIPE */
        pthread_cond_t cond;
        int data_fd;  /* the reader's readiness descriptor, -1 once it is gone */
        int space_fd; /* the writer's readiness descriptor, -1 once it is gone */
        bool data_signalled;
        bool space_blocked;
};

struct shared {
        pthread_mutex_t lock;
        struct ring ring[2]; /* ring[i] carries the data flowing to side i */
        int refs;
        unsigned id;
};

struct side {
        struct shared *sh;
        int idx;
        int wants;
        char name[64];
        char peer_name[64];
};

static const conduit_flow_ops memflow_ops;

static struct side *side_of(conduit_flow *f)
{
        return conduit_flow_impl(f);
}

static void ev_add(int fd, uint64_t v)
{
        /* Cannot block or fail: EFD_NONBLOCK, and the counter is known. */
        ssize_t n = write(fd, &v, sizeof(v));
        (void)n;
}

static void ev_reset(int fd)
{
        uint64_t v;
        ssize_t n = read(fd, &v, sizeof(v));
        (void)n;
}

/* Brings the eventfds of r in line with its state. Lock held. */
static void ring_sync(struct ring *r)
{
        bool readable = r->len > 0 || r->wr_closed || r->rd_closed;
        if (r->data_fd >= 0 && readable != r->data_signalled) {
                if (readable)
                        ev_add(r->data_fd, 1);
                else
                        ev_reset(r->data_fd);
                r->data_signalled = readable;
        }
        bool writable = r->len < r->cap || r->rd_closed || r->wr_closed;
        if (r->space_fd >= 0 && writable == r->space_blocked) {
                if (writable)
                        ev_reset(r->space_fd);
                else
                        ev_add(r->space_fd, EVENTFD_FULL);
                r->space_blocked = !writable;
        }
}

static void ring_changed(struct ring *r)
{
        ring_sync(r);
        pthread_cond_broadcast(&r->cond);
}

/* Waits on r's condition variable until *deadline (computed on first use
 * from timeout_ms; negative means none). Returns 0 or -ETIMEDOUT. */
static int ring_wait(struct shared *sh, struct ring *r, int timeout_ms, struct timespec *deadline,
                     bool *have_deadline)
{
        if (timeout_ms < 0) {
                pthread_cond_wait(&r->cond, &sh->lock);
                return 0;
        }
        if (!*have_deadline) {
                clock_gettime(CLOCK_MONOTONIC, deadline);
                deadline->tv_sec += timeout_ms / 1000;
                deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
                if (deadline->tv_nsec >= 1000000000L) {
                        deadline->tv_sec++;
                        deadline->tv_nsec -= 1000000000L;
                }
                *have_deadline = true;
        }
        int e = pthread_cond_timedwait(&r->cond, &sh->lock, deadline);
        return e == ETIMEDOUT ? -ETIMEDOUT : 0;
}

static ssize_t mf_read(conduit_flow *f, void *buf, size_t len)
{
        struct side *s = side_of(f);
        struct shared *sh = s->sh;
        struct ring *r = &sh->ring[s->idx];
        int timeout = conduit_flow_get_timeout(f, CONDUIT_TIMEOUT_READ);
        struct timespec deadline;
        bool have_deadline = false;
        ssize_t ret;

        pthread_mutex_lock(&sh->lock);
        for (;;) {
                if (r->len > 0) {
                        size_t n = len < r->len ? len : r->len;
                        size_t first = r->cap - r->head < n ? r->cap - r->head : n;
                        memcpy(buf, r->buf + r->head, first);
                        memcpy((uint8_t *)buf + first, r->buf, n - first);
                        r->head = (r->head + n) % r->cap;
                        r->len -= n;
                        ring_changed(r);
                        ret = (ssize_t)n;
                        break;
                }
                if (r->wr_closed || r->rd_closed) {
                        ret = 0;
                        break;
                }
                if (conduit_flow_get_nonblocking(f)) {
                        s->wants = CONDUIT_WANT_READ;
                        ret = -EAGAIN;
                        break;
                }
                if (ring_wait(sh, r, timeout, &deadline, &have_deadline) < 0) {
                        pthread_mutex_unlock(&sh->lock);
                        return conduit_flow_set_error(f, -ETIMEDOUT, "memory read timed out");
                }
        }
        pthread_mutex_unlock(&sh->lock);
        return ret;
}

static ssize_t mf_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        struct side *s = side_of(f);
        struct shared *sh = s->sh;
        struct ring *r = &sh->ring[1 - s->idx];
        int timeout = conduit_flow_get_timeout(f, CONDUIT_TIMEOUT_WRITE);
        struct timespec deadline;
        bool have_deadline = false;
        ssize_t ret;

        pthread_mutex_lock(&sh->lock);
        for (;;) {
                if (r->rd_closed) {
                        pthread_mutex_unlock(&sh->lock);
                        return conduit_flow_set_error(f, -EPIPE, "memory peer is not reading");
                }
                if (r->wr_closed) {
                        pthread_mutex_unlock(&sh->lock);
                        return conduit_flow_set_error(f, -EPIPE, "memory write side shut down");
                }
                if (r->len < r->cap) {
                        size_t done = 0;
                        for (int i = 0; i < iovcnt && r->len < r->cap; i++) {
                                const uint8_t *p = iov[i].iov_base;
                                size_t left = iov[i].iov_len;
                                while (left > 0 && r->len < r->cap) {
                                        size_t tail = (r->head + r->len) % r->cap;
                                        size_t room = r->cap - r->len;
                                        size_t chunk = tail + room > r->cap ? r->cap - tail : room;
                                        if (chunk > left)
                                                chunk = left;
                                        memcpy(r->buf + tail, p, chunk);
                                        r->len += chunk;
                                        p += chunk;
                                        left -= chunk;
                                        done += chunk;
                                }
                        }
                        ring_changed(r);
                        ret = (ssize_t)done;
                        break;
                }
                if (conduit_flow_get_nonblocking(f)) {
                        s->wants = CONDUIT_WANT_WRITE;
                        ret = -EAGAIN;
                        break;
                }
                if (ring_wait(sh, r, timeout, &deadline, &have_deadline) < 0) {
                        pthread_mutex_unlock(&sh->lock);
                        return conduit_flow_set_error(f, -ETIMEDOUT, "memory write timed out");
                }
        }
        pthread_mutex_unlock(&sh->lock);
        return ret;
}

static int mf_shutdown(conduit_flow *f, int how)
{
        struct side *s = side_of(f);
        struct shared *sh = s->sh;
        pthread_mutex_lock(&sh->lock);
        if (how == CONDUIT_SHUT_WR) {
                sh->ring[1 - s->idx].wr_closed = true;
                ring_changed(&sh->ring[1 - s->idx]);
        } else {
                struct ring *r = &sh->ring[s->idx];
                r->rd_closed = true;
                r->len = 0;
                ring_changed(r);
        }
        pthread_mutex_unlock(&sh->lock);
        return 0;
}

static int mf_wants(conduit_flow *f)
{
        struct side *s = side_of(f);
        pthread_mutex_lock(&s->sh->lock);
        int w = s->wants;
        pthread_mutex_unlock(&s->sh->lock);
        return w;
}

static int mf_get_fd(conduit_flow *f, int want)
{
        struct side *s = side_of(f);
        struct shared *sh = s->sh;
        /* Only this side closes these two, in destroy: no lock needed. */
        return want == CONDUIT_WANT_WRITE ? sh->ring[1 - s->idx].space_fd
                                          : sh->ring[s->idx].data_fd;
}

static int abstract_endp(const char *name, conduit_endp **ret)
{
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        size_t n = strlen(name);
        if (n + 1 > sizeof(un.sun_path))
                return -ENAMETOOLONG;
        memcpy(un.sun_path + 1, name, n);
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
        return conduit_endp_from_sockaddr((struct sockaddr *)&un, len, ret);
}

static int mf_query(conduit_flow *f, int what, void *ret)
{
        struct side *s = side_of(f);
        switch (what) {
        case CONDUIT_QUERY_PEER_ENDP: return abstract_endp(s->peer_name, ret);
        case CONDUIT_QUERY_LOCAL_ENDP: return abstract_endp(s->name, ret);
        case CONDUIT_QUERY_FD: *(int *)ret = -1; return 0;
        default: return -ENOPROTOOPT;
        }
}

static void shared_free(struct shared *sh)
{
        for (int i = 0; i < 2; i++) {
                struct ring *r = &sh->ring[i];
                if (r->data_fd >= 0)
                        close(r->data_fd);
                if (r->space_fd >= 0)
                        close(r->space_fd);
                pthread_cond_destroy(&r->cond);
                free(r->buf);
        }
        pthread_mutex_destroy(&sh->lock);
        free(sh);
}

static void mf_destroy(conduit_flow *f)
{
        struct side *s = side_of(f);
        struct shared *sh = s->sh;
        struct ring *in = &sh->ring[s->idx], *out = &sh->ring[1 - s->idx];
        pthread_mutex_lock(&sh->lock);
        in->rd_closed = true;
        in->len = 0;
        out->wr_closed = true;
        /* This side's readiness descriptors go with it; the peer keeps its
         * own two, which ring_changed() now makes ready. */
        close(in->data_fd);
        in->data_fd = -1;
        close(out->space_fd);
        out->space_fd = -1;
        ring_changed(in);
        ring_changed(out);
        bool last = --sh->refs == 0;
        pthread_mutex_unlock(&sh->lock);
        if (last)
                shared_free(sh);
        free(s);
}

static const conduit_flow_ops memflow_ops = {
        .name = "memory",
        .read = mf_read,
        .writev = mf_writev,
        .shutdown = mf_shutdown,
        .wants = mf_wants,
        .get_fd = mf_get_fd,
        .query = mf_query,
        .destroy = mf_destroy,
};

static int shared_new(struct shared **ret)
{
        static atomic_uint next_id;
        struct shared *sh = calloc(1, sizeof(*sh));
        if (!sh)
                return -ENOMEM;
        sh->id = atomic_fetch_add(&next_id, 1);
        sh->refs = 2;
        pthread_mutex_init(&sh->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        int r = 0;
        for (int i = 0; i < 2; i++) {
                struct ring *ring = &sh->ring[i];
                pthread_cond_init(&ring->cond, &ca);
                ring->cap = MEMFLOW_CAPACITY;
                ring->buf = malloc(ring->cap);
                ring->data_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                if (ring->data_fd < 0 && r == 0)
                        r = -errno;
                ring->space_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                if (ring->space_fd < 0 && r == 0)
                        r = -errno;
                if (!ring->buf && r == 0)
                        r = -ENOMEM;
        }
        pthread_condattr_destroy(&ca);
        if (r < 0) {
                shared_free(sh);
                return r;
        }
        *ret = sh;
        return 0;
}

int memflow_pair(conduit_flow **a, conduit_flow **b)
{
        struct shared *sh;
        struct side *s[2] = { NULL, NULL };
        conduit_flow *f[2] = { NULL, NULL };
        int r = shared_new(&sh);
        if (r < 0)
                return r;
        for (int i = 0; i < 2; i++) {
                if (!(s[i] = calloc(1, sizeof(*s[i])))) {
                        r = -ENOMEM;
                        break;
                }
                s[i]->sh = sh;
                s[i]->idx = i;
                snprintf(s[i]->name, sizeof(s[i]->name), "conduit-memflow-%u-%d", sh->id, i);
                snprintf(s[i]->peer_name, sizeof(s[i]->peer_name), "conduit-memflow-%u-%d", sh->id,
                         1 - i);
                if ((r = conduit_flow_new(&memflow_ops, s[i], &f[i])) < 0)
                        break;
        }
        if (r < 0) {
                /* A created flow's destroy releases its side and a share. */
                int live = 0;
                for (int i = 0; i < 2; i++) {
                        if (f[i]) {
                                conduit_flow_free(f[i]);
                                live++;
                        } else {
                                free(s[i]);
                        }
                }
                if (live == 0)
                        shared_free(sh);
                else if (live == 1) {
                        pthread_mutex_lock(&sh->lock);
                        bool last = --sh->refs == 0;
                        pthread_mutex_unlock(&sh->lock);
                        if (last)
                                shared_free(sh);
                }
                return r;
        }
        *a = f[0];
        *b = f[1];
        return 0;
}

const char *memflow_name(const conduit_flow *f)
{
        if (!f || conduit_flow_backend(f) != memflow_ops.name)
                return NULL;
        return ((const struct side *)conduit_flow_impl(f))->name;
}
