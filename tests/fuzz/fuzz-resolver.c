/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the service table, rewrite rules and static hosts.
 *
 * The input is a small program, one command a line (at most 32), run
 * against a fresh context without a services file:
 *   s SCHEME PORT TLS   conduit_ctx_add_service() (TLS 0 or 1); on success
 *                       conduit_ctx_lookup_service() must return it
 *   l SCHEME            conduit_ctx_lookup_service()
 *   r SUFFIX TARGET     conduit_ctx_add_rewrite()
 *   h NAME ADDRESS      conduit_ctx_add_host()
 *   u URI               conduit_ctx_parse(), the round trip and a resolution
 *                       without DNS (fuzz-endp.h)
 * Fields are separated by one space; the last field takes the rest of the
 * line. Unknown commands are skipped. No DNS lookup is ever made: names the
 * static table does not know stop at conduit__resolve_probe(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conduit/conduit.h"

#include "fuzz-common.h"
#include "fuzz-endp.h"

#define MAX_COMMANDS 32

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        return 0;
}

/* Splits off the next space-separated field of *s (the rest if last). */
static char *field(char **s, bool last)
{
        char *f = *s;
        if (!f)
                return NULL;
        if (last) {
                *s = NULL;
                return f;
        }
        char *sp = strchr(f, ' ');
        if (sp) {
                *sp = '\0';
                *s = sp + 1;
        } else {
                *s = NULL;
        }
        return f;
}

static void run(conduit_ctx *ctx, char *line)
{
        char op = line[0];
        char *rest = line[0] && line[1] == ' ' ? line + 2 : NULL;
        if (!rest)
                return;
        switch (op) {
        case 's': {
                char *scheme = field(&rest, false);
                char *port = field(&rest, false);
                char *tls = field(&rest, true);
                if (!scheme || !port || !tls)
                        return;
                unsigned long p = strtoul(port, NULL, 10) & 0xffff;
                bool t = tls[0] == '1';
                int r = conduit_ctx_add_service(ctx, scheme, (uint16_t)p, t);
                if (r == 0) {
                        uint16_t gp = 0;
                        bool gt = false;
                        r = conduit_ctx_lookup_service(ctx, scheme, &gp, &gt);
                        FUZZ_CHECK(r == 0 && gp == p && gt == t,
                                   "service '%s' added as %lu/%d, looked up as %d: %u/%d", scheme,
                                   p, t, r, gp, gt);
                }
                break;
        }
        case 'l': {
                uint16_t gp = 0;
                bool gt = false;
                if (conduit_ctx_lookup_service(ctx, rest, &gp, &gt) == 0)
                        FUZZ_CHECK(gp != 0, "service '%s' has port 0", rest);
                break;
        }
        case 'r': {
                char *suffix = field(&rest, false);
                char *target = field(&rest, true);
                if (suffix && target)
                        (void)conduit_ctx_add_rewrite(ctx, suffix, target);
                break;
        }
        case 'h': {
                char *name = field(&rest, false);
                char *addr = field(&rest, true);
                if (name && addr)
                        (void)conduit_ctx_add_host(ctx, name, addr);
                break;
        }
        case 'u': {
                conduit_endp *e = NULL;
                if (conduit_ctx_parse(ctx, rest, &e) == 0) {
                        fuzz_check_roundtrip(ctx, e, "parse");
                        fuzz_check_resolve(ctx, e);
                        conduit_endp_free(e);
                }
                break;
        }
        default: break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 8192)
                return -1;
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        conduit_ctx *ctx = NULL;
        if (conduit_ctx_new(&ctx) < 0)
                fuzz_fail("conduit_ctx_new");
        conduit_ctx_set_services_file(ctx, NULL);
        char *save = NULL;
        int n = 0;
        for (char *line = strtok_r(text, "\n", &save); line && n < MAX_COMMANDS;
             line = strtok_r(NULL, "\n", &save), n++)
                run(ctx, line);
        conduit_ctx_free(ctx);
        free(text);
        return 0;
}
