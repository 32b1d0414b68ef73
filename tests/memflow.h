/* SPDX-License-Identifier: MIT */
/* An in-memory flow built with the public conduit_flow_ops API, for the
 * conformance suite: it is the "flow a user implements" of DESIGN §2 and
 * must pass the same tests as the kernel transports.
 *
 * memflow_pair() makes two connected flows over two bounded ring buffers
 * (MEMFLOW_CAPACITY bytes each, one per direction) guarded by one mutex,
 * in state shared by both flows and freed with the last of them.
 *
 * Behaviour, as a transport:
 *  - blocking mode: read and writev block on a condition variable
 *    (CLOCK_MONOTONIC), bounded by conduit_flow_get_timeout(f,
 *    CONDUIT_TIMEOUT_READ / _WRITE) read at the start of each operation
 *    call, and return -ETIMEDOUT at expiry;
 *  - non-blocking mode: -EAGAIN, and the wants operation reports the
 *    direction that would have waited;
 *  - pollable: each flow exposes one eventfd per direction through get_fd
 *    (so conduit_flow_poll_fd() works and libconduit's generic wait can be
 *    used, as conduit_flow_close() does on a non-blocking flow). They are
 *    kept level-triggered in step with the ring state: the read descriptor
 *    is readable (POLLIN) while data, EOF or an error is there to read; the
 *    write descriptor is writable (POLLOUT) while the ring has room or a
 *    write would fail at once. The eventfds are never to be read or written
 *    by users. conduit_flow_fd() is -1: there is no transport descriptor;
 *  - shutdown(CONDUIT_SHUT_WR): the peer reads what is buffered, then EOF;
 *  - shutdown(CONDUIT_SHUT_RD): buffered incoming data is discarded and
 *    later peer writes get -EPIPE;
 *  - destroy (conduit_flow_free/close): what this side had not read is
 *    discarded; the peer still reads what this side wrote, then EOF (never
 *    -ECONNRESET); the peer's writes get -EPIPE;
 *  - query: CONDUIT_QUERY_PEER_ENDP / LOCAL_ENDP give a unix-abstract endp
 *    "conduit-memflow-ID-SIDE" (ID unique per pair, SIDE 0 or 1), the peer's
 *    local endp being this flow's peer endp; CONDUIT_QUERY_FD gives -1;
 *    anything else -ENOPROTOOPT. The backend name is "memory". */
#ifndef CONDUIT_TESTS_MEMFLOW_H
#define CONDUIT_TESTS_MEMFLOW_H

#include "conduit/conduit.h"

#define MEMFLOW_CAPACITY (64 * 1024)

/* Two connected in-memory flows. Errors: -ENOMEM, -errno of eventfd(). */
int memflow_pair(conduit_flow **a, conduit_flow **b);

/* The abstract name (as in its local endp) of a flow made by
 * memflow_pair(); NULL for other flows. Owned by the flow. */
const char *memflow_name(const conduit_flow *f);

#endif
