/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conduit/conduit.h"
#include "ctx-private.h"

const char *conduit_strerror(int err)
{
        switch (err) {
        case 0: return "Success";
        case CONDUIT_E_URI: return "Malformed URI";
        case CONDUIT_E_SCHEME: return "Unknown URI scheme";
        case CONDUIT_E_OPTION: return "Unknown or inapplicable URI option";
        case CONDUIT_E_OPTION_VALUE: return "Invalid URI option value";
        case CONDUIT_E_NOT_FOUND: return "Host name not found";
        case CONDUIT_E_UNSUPPORTED: return "Transport not supported by this build";
        case CONDUIT_E_TLS: return "TLS protocol error";
        case CONDUIT_E_TLS_VERIFY: return "TLS peer verification failed";
        case CONDUIT_E_TLS_TRUNCATED: return "TLS stream truncated (EOF without close_notify)";
        case CONDUIT_E_PROTOCOL: return "Transport handshake protocol error";
        default: break;
        }
        if (err == INT_MIN)
                return "Unknown error";
        int e = err < 0 ? -err : err;
        /* strerrordesc_np is thread-safe and never formats into a buffer. */
        const char *s = e < 4000 ? strerrordesc_np(e) : NULL;
        return s ? s : "Unknown error";
}

/* Large enough for a message that quotes a PATH_MAX path. */
static _Thread_local char errmsg[4096 + 512];

int conduit__set_error(int err, const char *fmt, ...)
{
        /* Formatted aside first: callers may quote the previous message
         * (conduit__error_message()) in the new one. */
        char buf[sizeof(errmsg)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        memcpy(errmsg, buf, sizeof(errmsg));
        return err;
}

const char *conduit__error_message(void)
{
        return errmsg;
}

const char *conduit_ctx_error_message(const conduit_ctx *ctx)
{
        (void)ctx;
        return errmsg;
}

const char *conduit_version(void)
{
        return CONDUIT_VERSION_STRING;
}
