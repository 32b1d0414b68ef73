/* SPDX-License-Identifier: MIT */
/* Internal representation of conduit_endp, shared by the resolver (parse,
 * format), the endp object code and the backends. */
#ifndef CONDUIT_ENDP_PRIVATE_H
#define CONDUIT_ENDP_PRIVATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conduit/conduit.h"

/* Query options. Values are stored on the endp as canonical strings (what
 * the printer emits, what conduit_endp_get_option() returns); NULL means
 * unset. The printer emits them in this order. */
enum conduit__opt {
        /* transport options: live on the transport endp (the inner endp of
         * a TLS endp) */
        CONDUIT__OPT_CONNECT_TIMEOUT, /* duration: "250ms", "5s" */
        CONDUIT__OPT_NODELAY,         /* TCP; bool "0"/"1" */
        CONDUIT__OPT_KEEPALIVE,       /* TCP; "0", "1" or "IDLE,INTERVAL,PROBES" */
        CONDUIT__OPT_MODE,            /* Unix path; octal "0660" */
        CONDUIT__OPT_UNLINK,          /* Unix path; bool */
        CONDUIT__OPT_TO_HOST,         /* vsock; bool */
        CONDUIT__OPT_HANDSHAKE,       /* vsock-mux; "strict" / "lenient" */
        CONDUIT__OPT_RETRY,           /* duration: keep retrying a peer not up yet */
        CONDUIT__OPT_MAX_IO,          /* bytes per system call at most */
        /* TLS options: live on the TLS endp */
        CONDUIT__OPT_SERVERNAME, /* aliases sni, snihost */
        CONDUIT__OPT_VERIFY,     /* bool */
        CONDUIT__OPT_CAFILE,
        CONDUIT__OPT_CAPATH,
        CONDUIT__OPT_CERT,
        CONDUIT__OPT_KEY,
        CONDUIT__OPT_ALPN,          /* "h2,http/1.1" */
        CONDUIT__OPT_MIN_VERSION,   /* "1.2" / "1.3" */
        CONDUIT__OPT_MAX_VERSION,   /* "1.2" / "1.3" */
        CONDUIT__OPT_PIN,           /* "sha256//BASE64[,sha256//BASE64...]" */
        CONDUIT__OPT_SESSION_CACHE, /* bool: session resumption (default on) */
        CONDUIT__OPT_CIPHERSUITES,  /* "TLS_AES_128_GCM_SHA256,..." (TLS 1.3 only) */
        CONDUIT__OPT_COUNT
};

#define CONDUIT__OPT_FIRST_TLS CONDUIT__OPT_SERVERNAME

/* The most TLS layers an endp may have: the parser refuses more, and so do
 * conduit_endp_new_tls() and resolution (a rewrite to a tls+ URI adds
 * layers), so that every endp prints to a URI that parses back. */
#define CONDUIT__TLS_DEPTH_MAX 16

struct conduit_endp {
        conduit_endp_kind kind;

        /* TCP: forced family (AF_INET for tcp4://, AF_INET6 for tcp6://),
         * AF_UNSPEC otherwise. Only kept for names and wildcards: a literal
         * address implies its family. */
        int family;
        /* TCP: the host name, lower-cased, or the literal address text as
         * inet_ntop prints it (no brackets, no zone); NULL for the wildcard
         * (listen on any address). UNKNOWN: the reason. */
        char *host;
        /* TCP: IPv6 zone ("eth0", "3"), NULL if none. */
        char *zone;
        /* TCP: addr holds the address (a literal, or a resolved name whose
         * name is still in host). Port not set in addr. */
        bool has_addr;
        struct sockaddr_storage addr;

        /* TCP port (0..65535), vsock port, vsock-mux port. */
        uint32_t port;

        /* UNIX: the path (relative or absolute) or abstract name (without
         * the leading NUL); path_len == 0 and !abstract is the unnamed
         * socket. VSOCK_MUX: the multiplexer's socket path. VCHAN: the port
         * name. Always NUL-terminated after path_len bytes. */
        char *path;
        size_t path_len;
        bool abstract;

        /* VSOCK: CID (VMADDR_CID_ANY = 0xffffffff). VCHAN: domain id. */
        uint32_t cid;

        /* HYPERV: GUIDs in RFC 4122 byte order (the order they print in). */
        uint8_t vmid[16];
        uint8_t service[16];

        /* FD */
        int fd;

        /* TLS */
        conduit_endp *inner;

        char *opt[CONDUIT__OPT_COUNT];
};

/* Allocates a zeroed endp of a kind (fd = -1). NULL on ENOMEM. */
conduit_endp *conduit__endp_new(conduit_endp_kind kind);

/* The TLS-less endp at the bottom of a TLS chain (e itself if not TLS). */
const conduit_endp *conduit__endp_transport(const conduit_endp *e);

/* Option helpers: value as parsed from the canonical string. */
int conduit__endp_opt_bool(const conduit_endp *e, enum conduit__opt o, int def);
/* Duration option in ms, or def if unset. */
int conduit__endp_opt_ms(const conduit_endp *e, enum conduit__opt o, int def);

/* The name of an option (its canonical key). */
const char *conduit__opt_name(enum conduit__opt o);

/* ---- the parser and printer (src/resolver/) ------------------------------ */

/* Parses uri. ctx (may be NULL) supplies the service table: with NULL only
 * built-in entries are known. On failure returns a negative code and writes
 * a detail message (never truncated mid-UTF-8 concerns aside) into
 * err[errlen]. Pure: no I/O beyond the context's services file. */
int conduit__uri_parse(conduit_ctx *ctx, const char *uri, conduit_endp **ret, char *err,
                       size_t errlen);

/* Prints the canonical URI; returns its length or -ENOMEM. */
int conduit__uri_format(const conduit_endp *e, char **ret);

/* Well-known Hyper-V VM ids. */
extern const uint8_t conduit__hv_wildcard[16], conduit__hv_children[16], conduit__hv_loopback[16],
        conduit__hv_parent[16], conduit__hv_silohost[16];

/* The Linux vsock port a Hyper-V service GUID maps to
 * (XXXXXXXX-facb-11e6-bd58-64006a7986d3 -> 0xXXXXXXXX); -1 for other GUIDs. */
long long conduit__hv_service_port(const uint8_t service[16]);

/* The number of TLS layers of e (0 for a transport endp). */
static inline unsigned conduit__tls_depth(const conduit_endp *e)
{
        unsigned n = 0;
        for (; e && e->kind == CONDUIT_ENDP_TLS; e = e->inner)
                n++;
        return n;
}

#endif
