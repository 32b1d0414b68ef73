/* SPDX-License-Identifier: MIT */
/* Internal: the flow base every backend embeds first. */
#ifndef CONDUIT_FLOW_PRIVATE_H
#define CONDUIT_FLOW_PRIVATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conduit/conduit.h"

/* The number of conduit_timeout values. */
#define CONDUIT__TIMEOUT_COUNT 6

struct conduit_flow {
        const conduit_flow_ops *ops;
        void *impl;          /* user flows: conduit_flow_new()'s pointer */
        conduit_flow *inner; /* layered flows: freed by the generic layer */
        conduit_ctx *ctx;    /* reference, may be NULL */
        conduit_endp *peer;  /* cached, owned */
        conduit_endp *local; /* cached, owned */
        /* Detail messages: [0] set by the read path, [1] by everything
         * else, so a reader thread and a writer thread never free each
         * other's; errseq says which is newer. Owned. */
        char *errmsg[2];
        _Atomic uint64_t errseq[2];
        uint64_t bytes_in;
        uint64_t bytes_out;
        size_t max_io;                       /* 0: unlimited */
        int timeout[CONDUIT__TIMEOUT_COUNT]; /* indexed by conduit_timeout; -1 none */
        int rd_err;                          /* sticky read error, 0 if none */
        int wr_err;                          /* sticky write error, 0 if none */
        int wants;                           /* CONDUIT_WANT_* after the last -EAGAIN */
        int rd_wants; /* ... of the last read that returned -EAGAIN; 0 after progress */
        int wr_wants; /* ... of the last write or shutdown that did; 0 likewise */
        bool nonblocking;
        bool force_dontwait; /* close(): deadlines apply even without timeouts */
        bool rd_eof;
        bool rd_shut;
        bool wr_shut;
};

/* Initialises an embedded base: default timeouts from ctx (taking a
 * reference), or library defaults when ctx is NULL. */
void conduit__flow_init(conduit_flow *f, const conduit_flow_ops *ops, conduit_ctx *ctx);

/* Whether a built-in operation in direction CONDUIT_WANT_READ/WRITE must not
 * sleep in the kernel: the generic layer then waits with poll() under the
 * flow's deadline. Blocking flows without timeouts sleep in the kernel,
 * which costs one system call instead of three. */
static inline bool conduit__flow_dontwait(const conduit_flow *f, int dir)
{
        return f->nonblocking || f->force_dontwait ||
               f->timeout[dir == CONDUIT_WANT_READ ? CONDUIT_TIMEOUT_READ
                                                   : CONDUIT_TIMEOUT_WRITE] >= 0;
}

/* Sets peer/local endps (takes ownership; either may be NULL). */
void conduit__flow_set_endps(conduit_flow *f, conduit_endp *peer, conduit_endp *local);

/* Waits until the flow's poll descriptors are ready for wants, or the
 * deadline (absolute ms, -1 none) passes. Returns 0 (ready), -ETIMEDOUT,
 * -EAGAIN (no descriptor to wait on) or a poll error. */
int conduit__flow_wait(conduit_flow *f, int wants, int64_t deadline);

/* The descriptor of the innermost flow (the transport socket), or -1. */
int conduit__flow_transport_fd(conduit_flow *f);

#endif
