/* SPDX-License-Identifier: MIT */
/* Endp invariants shared by fuzz-uri and fuzz-resolver:
 *  - format -> parse -> format is a fixed point and the parsed endp is
 *    equal to the one printed (docs/uri.md), for every kind;
 *  - resolution never asks DNS here: conduit__resolve_probe() stops at the
 *    one name a URI may need, which is then "answered" by
 *    conduit__resolve_answer() with a failure and with made-up addresses
 *    (documentation ranges), as the event API's evdns would. Every
 *    resolved endp round-trips too, and TCP candidates carry an address. */
#ifndef CONDUIT_FUZZ_ENDP_H
#define CONDUIT_FUZZ_ENDP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "conduit/conduit.h"
#include "endp-private.h"
#include "resolver/resolve-private.h"

#include "fuzz-common.h"

static inline void fuzz_check_roundtrip(conduit_ctx *ctx, const conduit_endp *e, const char *what)
{
        char *s1 = NULL, *s2 = NULL;
        conduit_endp *e2 = NULL, *c = NULL;
        int r = conduit_endp_format(e, &s1);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r >= 0 && s1, "%s: format failed: %d", what, r);
        FUZZ_CHECK((size_t)r == strlen(s1), "%s: format returned %d for '%s'", what, r, s1);
        r = conduit_ctx_parse(ctx, s1, &e2);
        FUZZ_CHECK(r == 0, "%s: '%s' does not parse back: %d (%s)", what, s1, r,
                   conduit_ctx_error_message(ctx));
        FUZZ_CHECK(conduit_endp_equal(e, e2), "%s: '%s' parses back to a different endp", what, s1);
        FUZZ_CHECK(conduit_endp_equal(e2, e), "%s: '%s': equality is not symmetric", what, s1);
        FUZZ_CHECK(conduit_endp_get_kind(e) == conduit_endp_get_kind(e2), "%s: '%s' changed kind",
                   what, s1);
        r = conduit_endp_format(e2, &s2);
        FUZZ_CHECK(r >= 0 && s2, "%s: format of the reparsed '%s' failed: %d", what, s1, r);
        FUZZ_CHECK(strcmp(s1, s2) == 0, "%s: '%s' reformats as '%s'", what, s1, s2);
        r = conduit_endp_copy(e, &c);
        FUZZ_CHECK(r == 0 && conduit_endp_equal(e, c), "%s: copy of '%s' differs", what, s1);
        free(s1);
        free(s2);
        conduit_endp_free(e2);
        conduit_endp_free(c);
}

/* The transport under any TLS layers. */
static inline const conduit_endp *fuzz_transport(const conduit_endp *e)
{
        while (conduit_endp_get_kind(e) == CONDUIT_ENDP_TLS)
                e = conduit_endp_get_inner(e);
        return e;
}

static inline void fuzz_check_list(conduit_ctx *ctx, conduit_endp **list, int n, const char *what)
{
        FUZZ_CHECK(n > 0 && list, "%s: resolution returned %d", what, n);
        int i = 0;
        for (; list[i]; i++) {
                FUZZ_CHECK(i < n, "%s: list longer than %d", what, n);
                fuzz_check_roundtrip(ctx, list[i], what);
                const conduit_endp *t = fuzz_transport(list[i]);
                if (conduit_endp_get_kind(t) == CONDUIT_ENDP_TCP && t->host) {
                        struct sockaddr_storage ss;
                        socklen_t len;
                        /* -ENODEV: a zone naming no interface here */
                        int r = conduit_endp_to_sockaddr(t, &ss, &len);
                        FUZZ_CHECK(r == 0 || r == -ENODEV,
                                   "%s: a resolved TCP endp has no address: %d", what, r);
                }
        }
        FUZZ_CHECK(i == n, "%s: list of %d, returned %d", what, i, n);
}

/* Resolves e without DNS; made-up answers stand in for it. */
static inline void fuzz_check_resolve(conduit_ctx *ctx, const conduit_endp *e)
{
        conduit_endp **list = NULL;
        char *name = NULL;
        int family = AF_UNSPEC;
        int r = conduit__resolve_probe(ctx, e, &list, &name, &family);
        if (r > 0) {
                fuzz_check_list(ctx, list, r, "resolve");
                conduit_endp_list_free(list);
                return;
        }
        if (r != CONDUIT__NEED_DNS)
                return; /* rewrite loops, templates that do not parse, ... */
        FUZZ_CHECK(name != NULL, "NEED_DNS without a name");
        FUZZ_CHECK(family == AF_UNSPEC || family == AF_INET || family == AF_INET6,
                   "bad family %d for '%s'", family, name);

        /* the lookup failed: the resolution fails */
        list = NULL;
        r = conduit__resolve_answer(ctx, e, NULL, CONDUIT_E_NOT_FOUND, "fuzz: no DNS", &list);
        FUZZ_CHECK(r < 0 && r != CONDUIT__NEED_DNS, "'%s': a failed lookup gave %d", name, r);

        /* the lookup answered: an IPv6, an IPv4 and the IPv6 again (a
         * duplicate getaddrinfo may give), filtered by family */
        struct sockaddr_in in = { .sin_family = AF_INET };
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
        inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
        inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
        struct addrinfo ai[3] = {
                { .ai_family = AF_INET6, .ai_addrlen = sizeof(in6), .ai_addr = (void *)&in6 },
                { .ai_family = AF_INET, .ai_addrlen = sizeof(in), .ai_addr = (void *)&in },
                { .ai_family = AF_INET6, .ai_addrlen = sizeof(in6), .ai_addr = (void *)&in6 },
        };
        struct addrinfo *head = NULL, **tail = &head;
        for (int i = 0; i < 3; i++)
                if (family == AF_UNSPEC || family == ai[i].ai_family) {
                        *tail = &ai[i];
                        tail = &ai[i].ai_next;
                }
        list = NULL;
        r = conduit__resolve_answer(ctx, e, head, 0, NULL, &list);
        /* CONDUIT_E_URI: a rewrite to a tls+ URI passing the 16 layers */
        if (r != -ENOMEM && r != CONDUIT_E_URI) {
                FUZZ_CHECK(r > 0, "'%s': an answered lookup gave %d (%s)", name, r,
                           conduit_ctx_error_message(ctx));
                FUZZ_CHECK(r <= 2 || family == AF_UNSPEC, "'%s': %d addresses", name, r);
                fuzz_check_list(ctx, list, r, "resolve with an answer");
                conduit_endp_list_free(list);
        }
        free(name);
}

#endif
