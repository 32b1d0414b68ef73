/* SPDX-License-Identifier: MIT */
/* The generic flow layer: everything the contract (docs/flow.md) promises
 * that does not depend on the transport — sticky EOF and errors, shutdown
 * bookkeeping, blocking on top of try-once operations with deadlines,
 * partial-write loops, byte counts, graceful close — lives here, so every
 * backend and every user flow behaves the same. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctx-private.h"
#include "flow-private.h"
#include "util.h"

#define DEFAULT_CLOSE_TIMEOUT_MS 10000

void conduit__flow_init(conduit_flow *f, const conduit_flow_ops *ops, conduit_ctx *ctx)
{
        f->ops = ops;
        f->ctx = conduit__ctx_ref(ctx);
        for (int i = 0; i < CONDUIT__TIMEOUT_COUNT; i++)
                f->timeout[i] = ctx ? ctx->timeouts[i] : -1;
        if (!ctx)
                f->timeout[CONDUIT_TIMEOUT_CLOSE] = DEFAULT_CLOSE_TIMEOUT_MS;
}

int conduit_flow_new(const conduit_flow_ops *ops, void *impl, conduit_flow **ret)
{
        if (!ops || !ops->read || !ops->writev || !ret)
                return -EINVAL;
        conduit_flow *f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        conduit__flow_init(f, ops, NULL);
        f->impl = impl;
        *ret = f;
        return 0;
}

void *conduit_flow_impl(const conduit_flow *f)
{
        return f ? f->impl : NULL;
}

/* Which message slot this thread's current operation writes (0 while the
 * read path runs), and the flow and slot of its last public call, so that
 * conduit_flow_error_message() answers about the caller's own operation. */
static _Thread_local int cur_slot = 1;
static _Thread_local const conduit_flow *last_flow;
static _Thread_local int last_slot;
static _Atomic uint64_t errseq_counter;

static int enter(conduit_flow *f, int slot)
{
        int saved = cur_slot;
        cur_slot = slot;
        last_flow = f;
        last_slot = slot;
        return saved;
}

int conduit_flow_set_error(conduit_flow *f, int err, const char *fmt, ...)
{
        if (!f || !fmt)
                return err;
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n >= 0) {
                int slot = cur_slot;
                free(f->errmsg[slot]);
                f->errmsg[slot] = msg;
                atomic_store(&f->errseq[slot], atomic_fetch_add(&errseq_counter, 1) + 1);
        }
        return err;
}

const char *conduit_flow_error_message(const conduit_flow *f)
{
        if (!f)
                return "";
        int slot = last_flow == f                                            ? last_slot
                   : atomic_load(&f->errseq[0]) > atomic_load(&f->errseq[1]) ? 0
                                                                             : 1;
        return f->errmsg[slot] ? f->errmsg[slot] : "";
}

void conduit__flow_set_endps(conduit_flow *f, conduit_endp *peer, conduit_endp *local)
{
        if (peer) {
                conduit_endp_free(f->peer);
                f->peer = peer;
        }
        if (local) {
                conduit_endp_free(f->local);
                f->local = local;
        }
}

static int get_fd(conduit_flow *f, int want)
{
        return f->ops->get_fd ? f->ops->get_fd(f, want) : -1;
}

/* Waits until the flow's descriptor is ready for wants or the deadline
 * passes. Returns 0 (ready: the operation will tell what happened),
 * -ETIMEDOUT, -EAGAIN (nothing to wait on), or a poll error. */
int conduit__flow_wait(conduit_flow *f, int wants, int64_t deadline)
{
        struct pollfd p[2];
        int n = 0;
        if (wants & CONDUIT_WANT_READ)
                p[n++] = (struct pollfd){ .fd = get_fd(f, CONDUIT_WANT_READ), .events = POLLIN };
        if (wants & CONDUIT_WANT_WRITE)
                p[n++] = (struct pollfd){ .fd = get_fd(f, CONDUIT_WANT_WRITE), .events = POLLOUT };
        for (int i = 0; i < n; i++)
                if (p[i].fd < 0)
                        return -EAGAIN;
        for (;;) {
                int left = conduit__remaining(deadline);
                if (deadline >= 0 && left == 0)
                        return -ETIMEDOUT;
                int r = poll(p, (nfds_t)n, left);
                if (r > 0)
                        return 0;
                if (r == 0)
                        return -ETIMEDOUT;
                if (errno != EINTR)
                        return -errno;
        }
}

static int op_wants(conduit_flow *f, int dflt)
{
        int w = f->ops->wants ? f->ops->wants(f) : 0;
        return w ? w : dflt;
}

/* Errors that describe the stream, not the call: they stay. -ETIMEDOUT from
 * an operation is a user flow's own deadline, so it does not. */
static bool sticky(ssize_t err)
{
        return err != -EAGAIN && err != -EINTR && err != -ETIMEDOUT && err != -EINVAL &&
               err != -ENOMEM;
}

static ssize_t do_read(conduit_flow *f, void *buf, size_t len, int64_t deadline, bool block)
{
        if (f->max_io && len > f->max_io)
                len = f->max_io;
        if (len > SSIZE_MAX)
                len = SSIZE_MAX;
        for (;;) {
                ssize_t n = f->ops->read(f, buf, len);
                if (n > 0) {
                        f->bytes_in += (uint64_t)n;
                        f->rd_wants = 0;
                        return n;
                }
                if (n == 0) {
                        f->rd_eof = true;
                        return 0;
                }
                if (n == -EINTR)
                        continue;
                if (n == -EAGAIN || n == -EWOULDBLOCK) {
                        /* a local copy: another thread may be writing */
                        int w = op_wants(f, CONDUIT_WANT_READ);
                        f->wants = w;
                        f->rd_wants = w;
                        if (!block)
                                return -EAGAIN;
                        int r = conduit__flow_wait(f, w, deadline);
                        if (r == -ETIMEDOUT)
                                return conduit_flow_set_error(f, r, "read timed out");
                        if (r < 0)
                                return r;
                        continue;
                }
                if (sticky(n))
                        f->rd_err = (int)n;
                return n;
        }
}

ssize_t conduit_flow_read(conduit_flow *f, void *buf, size_t len)
{
        if (!f || !buf)
                return -EINVAL;
        int saved = enter(f, 0);
        ssize_t r;
        if (len == 0)
                r = conduit_flow_set_error(f, -EINVAL, "zero-length read");
        else if (f->rd_shut || f->rd_eof)
                r = 0;
        else if (f->rd_err)
                r = f->rd_err;
        else
                r = do_read(f, buf, len, conduit__deadline(f->timeout[CONDUIT_TIMEOUT_READ]),
                            !f->nonblocking);
        cur_slot = saved;
        return r;
}

ssize_t conduit_flow_write(conduit_flow *f, const void *buf, size_t len)
{
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        if (!buf && len)
                return -EINVAL;
        return conduit_flow_writev(f, &iov, 1);
}

/* Builds the next batch of buffers starting at iov[i] + off, at most max
 * bytes (0: unlimited), into tmp. Returns the batch's entry count. */
static int next_batch(const struct iovec *iov, int iovcnt, int i, size_t off, size_t max,
                      struct iovec *tmp, int tmpcap)
{
        int n = 0;
        size_t sum = 0;
        for (; i < iovcnt && n < tmpcap; i++, off = 0) {
                size_t l = iov[i].iov_len - off;
                if (l == 0)
                        continue;
                if (max && l > max - sum)
                        l = max - sum;
                tmp[n++] = (struct iovec){ (char *)iov[i].iov_base + off, l };
                sum += l;
                if (max && sum == max)
                        break;
        }
        return n;
}

static ssize_t do_writev(conduit_flow *f, const struct iovec *iov, int iovcnt);

ssize_t conduit_flow_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        if (!f || iovcnt < 0 || (iovcnt > 0 && !iov))
                return -EINVAL;
        int saved = enter(f, 1);
        ssize_t r = do_writev(f, iov, iovcnt);
        cur_slot = saved;
        return r;
}

static ssize_t do_writev(conduit_flow *f, const struct iovec *iov, int iovcnt)
{
        size_t total = 0;
        for (int i = 0; i < iovcnt; i++) {
                if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
                        return conduit_flow_set_error(f, -EINVAL, "write larger than SSIZE_MAX");
                if (!iov[i].iov_base && iov[i].iov_len)
                        return -EINVAL;
                total += iov[i].iov_len;
        }
        if (f->wr_shut)
                return conduit_flow_set_error(f, -EPIPE,
                                              "write after the write side was shut down");
        if (f->wr_err)
                return f->wr_err;
        if (total == 0)
                return 0;

        bool block = !f->nonblocking;
        int64_t deadline = conduit__deadline(f->timeout[CONDUIT_TIMEOUT_WRITE]);
        struct iovec tmp[64];
        size_t done = 0, off = 0;
        int i = 0;
        while (done < total) {
                const struct iovec *batch;
                int cnt;
                if (off == 0 && f->max_io == 0) {
                        /* common case: hand the caller's array over as is */
                        while (iov[i].iov_len == 0)
                                i++;
                        batch = &iov[i];
                        cnt = iovcnt - i > IOV_MAX ? IOV_MAX : iovcnt - i;
                } else {
                        batch = tmp;
                        cnt = next_batch(iov, iovcnt, i, off, f->max_io, tmp,
                                         (int)CONDUIT__ARRAY_SIZE(tmp));
                }
                ssize_t n = f->ops->writev(f, batch, cnt);
                if (n > 0) {
                        f->bytes_out += (uint64_t)n;
                        f->wr_wants = 0;
                        done += (size_t)n;
                        /* advance (i, off) past n bytes */
                        size_t adv = (size_t)n;
                        while (i < iovcnt && adv >= iov[i].iov_len - off) {
                                adv -= iov[i].iov_len - off;
                                i++;
                                off = 0;
                        }
                        off += adv;
                        if (!block)
                                return (ssize_t)done;
                        continue;
                }
                if (n == -EINTR)
                        continue;
                if (n == 0)
                        n = conduit_flow_set_error(f, -EIO, "transport accepted no bytes");
                if (n == -EAGAIN || n == -EWOULDBLOCK) {
                        int w = op_wants(f, CONDUIT_WANT_WRITE);
                        f->wants = w;
                        f->wr_wants = w;
                        if (!block)
                                return done ? (ssize_t)done : -EAGAIN;
                        int r = conduit__flow_wait(f, w, deadline);
                        if (r == -ETIMEDOUT)
                                return conduit_flow_set_error(f, r, "write timed out");
                        if (r < 0)
                                return r;
                        continue;
                }
                if (sticky(n))
                        f->wr_err = (int)n;
                if (!block && done)
                        return (ssize_t)done;
                return n;
        }
        return (ssize_t)done;
}

/* Runs the backend's shutdown for one direction, waiting (in blocking use)
 * while it reports -EAGAIN, as TLS does while close_notify is flushed. */
static int do_shutdown(conduit_flow *f, int how, int64_t deadline, bool block)
{
        if (!f->ops->shutdown)
                return 0;
        for (;;) {
                int r = f->ops->shutdown(f, how);
                if (r == -EINTR)
                        continue;
                if (r != -EAGAIN)
                        return r;
                int w = op_wants(f, CONDUIT_WANT_WRITE);
                f->wants = w;
                f->wr_wants = w;
                if (!block)
                        return -EAGAIN;
                r = conduit__flow_wait(f, w, deadline);
                if (r < 0)
                        return r;
        }
}

static int shutdown_dirs(conduit_flow *f, int how)
{
        int r = 0;
        if ((how & CONDUIT_SHUT_WR) && !f->wr_shut) {
                r = do_shutdown(f, CONDUIT_SHUT_WR,
                                conduit__deadline(f->timeout[CONDUIT_TIMEOUT_WRITE]),
                                !f->nonblocking);
                if (r == -EAGAIN || r == -ETIMEDOUT)
                        return r; /* not done yet: the caller tries again */
                f->wr_shut = true;
        }
        if ((how & CONDUIT_SHUT_RD) && !f->rd_shut) {
                int r2 = f->ops->shutdown ? f->ops->shutdown(f, CONDUIT_SHUT_RD) : 0;
                f->rd_shut = true;
                if (r == 0)
                        r = r2;
        }
        return r;
}

int conduit_flow_shutdown(conduit_flow *f, int how)
{
        if (!f || how < CONDUIT_SHUT_RD || how > CONDUIT_SHUT_RDWR)
                return -EINVAL;
        int saved = enter(f, 1);
        int r = shutdown_dirs(f, how);
        cur_slot = saved;
        return r;
}

conduit_flow *conduit_flow_free(conduit_flow *f)
{
        if (!f)
                return NULL;
        conduit_flow *inner = f->inner;
        if (f->ops->destroy)
                f->ops->destroy(f);
        conduit_endp_free(f->peer);
        conduit_endp_free(f->local);
        free(f->errmsg[0]);
        free(f->errmsg[1]);
        if (last_flow == f)
                last_flow = NULL;
        conduit_ctx_free(f->ctx);
        free(f);
        return conduit_flow_free(inner);
}

int conduit_flow_close(conduit_flow *f)
{
        if (!f)
                return 0;
        int64_t deadline = conduit__deadline(f->timeout[CONDUIT_TIMEOUT_CLOSE]);
        int rc = 0;
        /* Deadlines must hold even on a flow without timeouts; a user flow
         * that blocks by itself sees them as its read/write timeouts and
         * must block: close waits even on a non-blocking flow. */
        f->nonblocking = false;
        f->force_dontwait = true;
        f->timeout[CONDUIT_TIMEOUT_READ] = f->timeout[CONDUIT_TIMEOUT_CLOSE];
        f->timeout[CONDUIT_TIMEOUT_WRITE] = f->timeout[CONDUIT_TIMEOUT_CLOSE];
        if (!f->wr_shut && !f->wr_err) {
                rc = do_shutdown(f, CONDUIT_SHUT_WR, deadline, true);
                f->wr_shut = true;
        }
        if (rc == 0 && !f->rd_eof && !f->rd_err && !f->rd_shut) {
                char buf[16384];
                for (;;) {
                        /* a user flow that blocks by itself gets only what
                         * is left of the close timeout */
                        if (deadline >= 0) {
                                int left = conduit__remaining(deadline);
                                if (left == 0) {
                                        /* a peer that keeps sending never
                                         * finishes */
                                        rc = conduit_flow_set_error(f, -ETIMEDOUT,
                                                                    "close timed out");
                                        break;
                                }
                                f->timeout[CONDUIT_TIMEOUT_READ] = left;
                        }
                        ssize_t n = do_read(f, buf, sizeof(buf), deadline, true);
                        if (n <= 0) {
                                rc = (int)n;
                                break;
                        }
                }
        }
        conduit_flow_free(f);
        return rc;
}

int conduit_flow_set_nonblocking(conduit_flow *f, bool nonblocking)
{
        if (!f)
                return -EINVAL;
        f->nonblocking = nonblocking;
        return 0;
}

bool conduit_flow_get_nonblocking(const conduit_flow *f)
{
        return f && f->nonblocking;
}

int conduit_flow_set_timeout(conduit_flow *f, conduit_timeout which, int ms)
{
        if (!f || (unsigned)which >= CONDUIT__ARRAY_SIZE(f->timeout))
                return -EINVAL;
        f->timeout[which] = ms < 0 ? -1 : ms;
        return 0;
}

int conduit_flow_get_timeout(const conduit_flow *f, conduit_timeout which)
{
        if (!f || (unsigned)which >= CONDUIT__ARRAY_SIZE(f->timeout))
                return -EINVAL;
        return f->timeout[which];
}

int conduit_flow_wants(const conduit_flow *f)
{
        return f ? f->wants : 0;
}

size_t conduit_flow_pending(const conduit_flow *f)
{
        if (!f || !f->ops->pending)
                return 0;
        return f->ops->pending((conduit_flow *)f);
}

int conduit__flow_transport_fd(conduit_flow *f)
{
        /* The innermost flow's transport descriptor (not its poll
         * descriptor, which for a user flow may be an eventfd). */
        while (f && f->inner)
                f = f->inner;
        int fd;
        if (f && f->ops->query && f->ops->query(f, CONDUIT_QUERY_FD, &fd) == 0)
                return fd;
        return -1;
}

static int sockopt(conduit_flow *f, int level, int name, int value)
{
        int fd = conduit__flow_transport_fd(f);
        if (fd < 0)
                return conduit_flow_set_error(f, -ENOTSUP, "flow has no socket");
        if (setsockopt(fd, level, name, &value, sizeof(value)) < 0) {
                /* an fd flow over a tty or a pipe; a TCP option on a socket
                 * of another family (Unix says EOPNOTSUPP, vsock
                 * ENOPROTOOPT): one answer for "not here" */
                if (errno == ENOTSOCK || (level == IPPROTO_TCP && errno == ENOPROTOOPT))
                        return conduit_flow_set_error(f, -ENOTSUP, "flow has no socket");
                return conduit_flow_set_error(f, -errno, "setsockopt: %s", strerror(errno));
        }
        return 0;
}

int conduit_flow_set_nodelay(conduit_flow *f, bool on)
{
        if (!f)
                return -EINVAL;
        return sockopt(f, IPPROTO_TCP, TCP_NODELAY, on);
}

int conduit_flow_set_keepalive(conduit_flow *f, int idle_s, int interval_s, int probes)
{
        if (!f || idle_s < 0 || (idle_s > 0 && (interval_s <= 0 || probes <= 0)))
                return -EINVAL;
        int r = sockopt(f, SOL_SOCKET, SO_KEEPALIVE, idle_s > 0);
        if (r < 0 || idle_s == 0)
                return r;
        if ((r = sockopt(f, IPPROTO_TCP, TCP_KEEPIDLE, idle_s)) < 0 ||
            (r = sockopt(f, IPPROTO_TCP, TCP_KEEPINTVL, interval_s)) < 0)
                return r;
        return sockopt(f, IPPROTO_TCP, TCP_KEEPCNT, probes);
}

int conduit_flow_set_buffer_sizes(conduit_flow *f, int rcvbuf, int sndbuf)
{
        if (!f || rcvbuf < 0 || sndbuf < 0)
                return -EINVAL;
        int r = 0;
        if (rcvbuf > 0)
                r = sockopt(f, SOL_SOCKET, SO_RCVBUF, rcvbuf);
        if (r == 0 && sndbuf > 0)
                r = sockopt(f, SOL_SOCKET, SO_SNDBUF, sndbuf);
        return r;
}

int conduit_flow_set_max_io(conduit_flow *f, size_t max)
{
        if (!f)
                return -EINVAL;
        f->max_io = max;
        return 0;
}

int conduit_flow_query(conduit_flow *f, int what, void *ret)
{
        if (!f || !ret)
                return -EINVAL;
        switch (what) {
        case CONDUIT_QUERY_BYTES_IN: *(uint64_t *)ret = f->bytes_in; return 0;
        case CONDUIT_QUERY_BYTES_OUT: *(uint64_t *)ret = f->bytes_out; return 0;
        case CONDUIT_QUERY_PEER_ENDP:
        case CONDUIT_QUERY_LOCAL_ENDP: {
                /* the same answer as conduit_flow_peer()/local(), whose
                 * cached endp may be better than the kernel's (a long Unix
                 * path reached through /proc/self/fd) */
                const conduit_endp *e = what == CONDUIT_QUERY_PEER_ENDP ? conduit_flow_peer(f)
                                                                        : conduit_flow_local(f);
                if (e)
                        return conduit_endp_copy(e, ret);
                break;
        }
        default: break;
        }
        for (conduit_flow *l = f; l; l = l->inner) {
                int r = l->ops->query ? l->ops->query(l, what, ret) : -ENOPROTOOPT;
                if (r != -ENOPROTOOPT)
                        return r;
        }
        return -ENOPROTOOPT;
}

const conduit_endp *conduit_flow_peer(conduit_flow *f)
{
        if (!f)
                return NULL;
        if (!f->peer && f->ops->query)
                f->ops->query(f, CONDUIT_QUERY_PEER_ENDP, &f->peer);
        return f->peer;
}

const conduit_endp *conduit_flow_local(conduit_flow *f)
{
        if (!f)
                return NULL;
        if (!f->local && f->ops->query)
                f->ops->query(f, CONDUIT_QUERY_LOCAL_ENDP, &f->local);
        return f->local;
}

int conduit_flow_fd(conduit_flow *f)
{
        if (!f)
                return -1;
        int fd;
        if (f->ops->query && f->ops->query(f, CONDUIT_QUERY_FD, &fd) == 0)
                return fd;
        return get_fd(f, CONDUIT_WANT_READ);
}

int conduit_flow_poll_fd(conduit_flow *f, int want)
{
        if (!f || (want != CONDUIT_WANT_READ && want != CONDUIT_WANT_WRITE))
                return -1;
        return get_fd(f, want);
}

const char *conduit_flow_backend(const conduit_flow *f)
{
        return f && f->ops->name ? f->ops->name : "";
}
