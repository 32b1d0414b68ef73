/* SPDX-License-Identifier: MIT */
/* The service table: URI schemes that stand for a TCP port, possibly with
 * TLS. Built-in entries, a context's own entries, then a services(5) file. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctx-private.h"
#include "util.h"

static const struct {
        const char *scheme;
        uint16_t port;
        bool tls;
} builtin[] = {
        { "http", 80, false },       { "ws", 80, false },           { "https", 443, true },
        { "wss", 443, true },        { "ftp", 21, false },          { "ssh", 22, false },
        { "telnet", 23, false },     { "smtp", 25, false },         { "submission", 587, false },
        { "smtps", 465, true },      { "dns", 53, false },          { "dot", 853, true },
        { "pop3", 110, false },      { "pop3s", 995, true },        { "nntp", 119, false },
        { "nntps", 563, true },      { "imap", 143, false },        { "imaps", 993, true },
        { "ldap", 389, false },      { "ldaps", 636, true },        { "irc", 6667, false },
        { "ircs", 6697, true },      { "xmpp", 5222, false },       { "mysql", 3306, false },
        { "postgres", 5432, false }, { "postgresql", 5432, false }, { "redis", 6379, false },
        { "rediss", 6379, true },    { "mqtt", 1883, false },       { "mqtts", 8883, true },
        { "amqp", 5672, false },     { "amqps", 5671, true },       { "memcache", 11211, false },
        { "git", 9418, false },
};

static bool find(const struct conduit__service *s, size_t n, const char *scheme, uint16_t *port,
                 bool *tls)
{
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(s[i].scheme, scheme) == 0) {
                        *port = s[i].port;
                        *tls = s[i].tls;
                        return true;
                }
        return false;
}

/* Reads "name port/proto [aliases...] [# comment]" lines; keeps tcp ones. */
static void load_file(conduit_ctx *ctx)
{
        FILE *f = fopen(ctx->services_file, "re");
        if (!f)
                return;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *save = NULL;
                char *name = strtok_r(line, " \t\r\n", &save);
                char *portproto = name ? strtok_r(NULL, " \t\r\n", &save) : NULL;
                if (!portproto)
                        continue;
                char *slash = strchr(portproto, '/');
                if (!slash || strcasecmp(slash + 1, "tcp") != 0)
                        continue;
                uint64_t port;
                if (!conduit__parse_uint(portproto, (size_t)(slash - portproto), 65535, &port) ||
                    port == 0)
                        continue;
                for (char *n = name; n; n = strtok_r(NULL, " \t\r\n", &save)) {
                        struct conduit__service *grown = realloc(
                                ctx->file_services, (ctx->n_file_services + 1) * sizeof(*grown));
                        char *dup = strdup(n);
                        if (!grown || !dup) {
                                free(dup);
                                if (grown)
                                        ctx->file_services = grown;
                                goto out;
                        }
                        ctx->file_services = grown;
                        conduit__ascii_lower(dup);
                        grown[ctx->n_file_services++] =
                                (struct conduit__service){ dup, (uint16_t)port, false };
                }
        }
out:
        free(line);
        fclose(f);
}

int conduit__service_lookup(conduit_ctx *ctx, const char *scheme, uint16_t *ret_port, bool *ret_tls)
{
        uint16_t port;
        bool tls;
        if (!scheme || !*scheme)
                return CONDUIT_E_SCHEME;
        if (ctx && find(ctx->services, ctx->n_services, scheme, &port, &tls))
                goto found;
        for (size_t i = 0; i < CONDUIT__ARRAY_SIZE(builtin); i++)
                if (strcasecmp(builtin[i].scheme, scheme) == 0) {
                        port = builtin[i].port;
                        tls = builtin[i].tls;
                        goto found;
                }
        if (!ctx || !ctx->services_file)
                return CONDUIT_E_SCHEME;
        pthread_mutex_lock(&ctx->file_lock);
        if (!ctx->file_loaded) {
                load_file(ctx);
                ctx->file_loaded = true;
        }
        bool hit = find(ctx->file_services, ctx->n_file_services, scheme, &port, &tls);
        pthread_mutex_unlock(&ctx->file_lock);
        if (!hit)
                return CONDUIT_E_SCHEME;
found:
        *ret_port = port;
        *ret_tls = tls;
        return 0;
}
