/* SPDX-License-Identifier: MIT */
/* Black-box tests of the URI grammar (docs/uri.md): parsing, canonical
 * printing, round trips, accessors, kernel addresses, the service table and
 * error strings. Only the public API is used; every expectation below comes
 * from docs/uri.md, not from the parser's code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include "conduit/conduit.h"

/* ---- the table ------------------------------------------------------------ */

struct uri_case {
        const char *uri;   /* input; NULL tests the NULL argument */
        int rc;            /* expected result: 0 or the exact negative code */
        const char *canon; /* expected canonical URI; NULL when rc != 0, or when
                            * the spec leaves the exact spelling open (then only
                            * the round trip is checked) */
};

/* clang-format off */
#define OK(in, out)   { in, 0, out }
/* Parses, but docs/uri.md does not pin the printed spelling (hex digit case
 * of a percent-encoded byte, which characters get encoded, IPv6 text form). */
#define OKX(in)       { in, 0, NULL }
#define ERR(in, code) { in, code, NULL }
/* clang-format on */

#define E_URI    CONDUIT_E_URI
#define E_SCHEME CONDUIT_E_SCHEME
#define E_OPTION CONDUIT_E_OPTION
#define E_VALUE  CONDUIT_E_OPTION_VALUE

/* Hyper-V service GUID of vsock port N: NNNNNNNN-facb-11e6-bd58-64006a7986d3. */
#define HVSVC(hex8) hex8 "-facb-11e6-bd58-64006a7986d3"

/* sha256 pins: the bytes 0x00..0x1f, 0x20..0x3f, 0x40..0x5f (base64 chosen to
 * hold neither '+' nor '/'). */
#define PIN0_B64 "sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PIN0_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define PIN0_HEXC                                                                                 \
        "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:" \
        "1d:1e:1f"
#define PIN1_B64 "sha256//ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define PIN1_HEX "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
#define PIN1_HEXC_UPPER                                                                           \
        "20:21:22:23:24:25:26:27:28:29:2A:2B:2C:2D:2E:2F:30:31:32:33:34:35:36:37:38:39:3A:3B:3C:" \
        "3D:3E:3F"
#define PIN2_B64 "sha256//QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="

/* Long inputs, built by build_long_inputs() before the runner starts. */
static char uri_unix_200[16 + 200];
static char uri_unix_rel_200[16 + 200];
static char uri_unix_4095[16 + 4095];
static char uri_unix_4096[16 + 4096];
static char uri_unix_rel_4096[16 + 4096];
static char uri_unix_connect_4096[16 + 4096];
static char uri_bare_4096[16 + 4096];
static char uri_tls_unix_4096[16 + 4096];
static char uri_unix_enc_4095[16 + 3 * 4095];
static char canon_unix_enc_4095[16 + 4095];
static char uri_unix_enc_4096[16 + 3 * 4096];
static char uri_abs_107[32 + 107];
static char uri_abs_108[32 + 108];
static char uri_at_107[32 + 107];
static char canon_at_107[32 + 107];
static char uri_at_108[32 + 108];
static char uri_unix_at_108[32 + 108];
static char uri_abstract_connect_108[32 + 108];
static char uri_abs_nul_107[32 + 111];
static char uri_abs_nul_108[32 + 112];
static char uri_alpn_255[64 + 255];
static char uri_alpn_256[64 + 256];

static const struct uri_case cases[] = {
        /* TCP: names, literals, case, numbers */
        OK("tcp://example.com:80", "tcp://example.com:80"),
        OK("tcp://Example.COM:8080", "tcp://example.com:8080"),
        OK("TCP://example.com:80", "tcp://example.com:80"),
        OK("Tcp://localhost:0", "tcp://localhost:0"),
        OK("tcp://h:65535", "tcp://h:65535"),
        OK("tcp://h:0x50", "tcp://h:80"),
        OK("tcp://h:080", "tcp://h:80"),
        OK("tcp://h:010", "tcp://h:10"),
        OK("tcp://ex%41mple.com:80", "tcp://example.com:80"),
        OK("tcp://192.0.2.1:80", "tcp://192.0.2.1:80"),
        OK("tcp://0.0.0.0:80", "tcp://0.0.0.0:80"),
        OK("tcp://[::1]:80", "tcp://[::1]:80"),
        OK("tcp://[::]:80", "tcp://[::]:80"),
        OK("tcp://[2001:db8::1]:443", "tcp://[2001:db8::1]:443"),
        OK("tcp://[2001:DB8::1]:443", "tcp://[2001:db8::1]:443"),
        OKX("tcp://[2001:db8:0:0:0:0:0:1]:443"),
        /* IPv6 zones: %ZONE and the RFC 6874 %25ZONE spelling. The printer
         * emits %25 only before a zone that itself starts with "25" and goes
         * on, so "%25" + "251" is zone "251", "%251" is zone "1", and a lone
         * "%25" must read back as zone "25" (round trip). */
        OK("tcp://[fe80::1%eth0]:80", "tcp://[fe80::1%eth0]:80"),
        OK("tcp://[fe80::1%25eth0]:80", "tcp://[fe80::1%eth0]:80"),
        OK("tcp://[fe80::1%25251]:80", "tcp://[fe80::1%25251]:80"),
        OK("tcp://[fe80::1%251]:80", "tcp://[fe80::1%1]:80"),
        OK("tcp://[fe80::1%25]:80", "tcp://[fe80::1%25]:80"),
        /* one family: names and wildcards only, a literal implies its family */
        OK("tcp4://example.com:80", "tcp4://example.com:80"),
        OK("tcp6://example.com:80", "tcp6://example.com:80"),
        OK("TCP6://Example.com:80", "tcp6://example.com:80"),
        OK("tcp4://192.0.2.1:80", "tcp://192.0.2.1:80"),
        OK("tcp6://[::1]:80", "tcp://[::1]:80"),
        /* wildcards */
        OK("tcp://:80", "tcp://:80"),
        OK("tcp4://:80", "tcp4://:80"),
        OK("tcp6://:0", "tcp6://:0"),
        OK("tcp://h:1?", "tcp://h:1"),

        /* TCP options */
        OK("tcp://h:1?nodelay=1", "tcp://h:1?nodelay=1"),
        OK("tcp://h:1?nodelay", "tcp://h:1?nodelay=1"),
        OK("tcp://h:1?nodelay=true", "tcp://h:1?nodelay=1"),
        OK("tcp://h:1?nodelay=ON", "tcp://h:1?nodelay=1"),
        OK("tcp://h:1?NoDelay=Yes", "tcp://h:1?nodelay=1"),
        OK("tcp://h:1?nodelay=0", "tcp://h:1?nodelay=0"),
        OK("tcp://h:1?nodelay=False", "tcp://h:1?nodelay=0"),
        OK("tcp://h:1?nodelay=no", "tcp://h:1?nodelay=0"),
        OK("tcp://h:1?nodelay=off", "tcp://h:1?nodelay=0"),
        OK("tcp://h:1?keepalive", "tcp://h:1?keepalive=1"),
        OK("tcp://h:1?keepalive=on", "tcp://h:1?keepalive=1"),
        OK("tcp://h:1?keepalive=0", "tcp://h:1?keepalive=0"),
        OK("tcp://h:1?keepalive=60,10,5", "tcp://h:1?keepalive=60,10,5"),
        OK("tcp://h:1?connect_timeout=5", "tcp://h:1?connect_timeout=5s"),
        OK("tcp://h:1?connect_timeout=5s", "tcp://h:1?connect_timeout=5s"),
        OK("tcp://h:1?connect_timeout=1500ms", "tcp://h:1?connect_timeout=1500ms"),
        OK("tcp://h:1?connect_timeout=1.5s", "tcp://h:1?connect_timeout=1500ms"),
        OK("tcp://h:1?connect_timeout=1.5", "tcp://h:1?connect_timeout=1500ms"),
        OK("tcp://h:1?connect_timeout=0.25", "tcp://h:1?connect_timeout=250ms"),
        OK("tcp://h:1?connect_timeout=2000ms", "tcp://h:1?connect_timeout=2s"),
        OK("tcp://h:1?connect_timeout=2m", "tcp://h:1?connect_timeout=120s"),
        OK("tcp://h:1?connect_timeout=1.5m", "tcp://h:1?connect_timeout=90s"),
        OK("tcp://h:1?connect-timeout=10", "tcp://h:1?connect_timeout=10s"),
        OK("tcp://h:1?Connect-Timeout=250ms", "tcp://h:1?connect_timeout=250ms"),
        OK("tcp://h:1?keepalive=60,10,5&nodelay=yes&connect-timeout=250ms",
           "tcp://h:1?connect_timeout=250ms&nodelay=1&keepalive=60,10,5"),
        OK("tcp://:8080?nodelay=1", "tcp://:8080?nodelay=1"),

        /* TCP errors */
        ERR("tcp://h", E_URI),
        ERR("tcp://h:", E_URI),
        ERR("tcp://h:65536", E_URI),
        ERR("tcp://h:-1", E_URI),
        ERR("tcp://h:abc", E_URI),
        ERR("tcp://h:8o", E_URI),
        ERR("tcp://h:1e3", E_URI),
        ERR("tcp://h: 80", E_URI),
        ERR("tcp://h:80 ", E_URI),
        ERR("tcp://h:+80", E_URI),
        ERR("tcp://h:0x", E_URI),
        ERR("tcp://h:99999999999999999999", E_URI),
        ERR("tcp://[::1:80", E_URI),
        ERR("tcp://::1:80", E_URI),
        ERR("tcp://[::1]", E_URI),
        ERR("tcp://[::1]80", E_URI),
        ERR("tcp://[zz::1]:80", E_URI),
        ERR("tcp://u@h:1", E_URI),
        ERR("tcp://user:pw@h:1", E_URI),
        ERR("tcp://h:1#frag", E_URI),
        ERR("tcp://h:1/x", E_URI),
        ERR("tcp://h%zz:80", E_URI),
        ERR("tcp://h:1?bogus=1", E_OPTION),
        ERR("tcp://h:1?mode=0600", E_OPTION),
        ERR("tcp://h:1?unlink=1", E_OPTION),
        ERR("tcp://h:1?verify=0", E_OPTION),
        ERR("tcp://h:1?servername=x", E_OPTION),
        ERR("tcp://h:1?to_host=1", E_OPTION),
        ERR("tcp://h:1?handshake=strict", E_OPTION),
        ERR("tcp://h:1?nodelay=maybe", E_VALUE),
        ERR("tcp://h:1?nodelay=2", E_VALUE),
        ERR("tcp://h:1?keepalive=60,10", E_VALUE),
        ERR("tcp://h:1?keepalive=0,10,5", E_VALUE),
        ERR("tcp://h:1?keepalive=60,10,5,1", E_VALUE),
        ERR("tcp://h:1?keepalive=a,b,c", E_VALUE),
        ERR("tcp://h:1?connect_timeout=-1", E_VALUE),
        ERR("tcp://h:1?connect_timeout=abc", E_VALUE),
        ERR("tcp://h:1?connect_timeout=5h", E_VALUE),
        ERR("tcp://h:1?connect_timeout=ms", E_VALUE),
        ERR("tcp://h:1?nodelay=1&nodelay=1", E_URI),
        ERR("tcp://h:1?nodelay&NODELAY=0", E_URI),
        ERR("tcp://h:1?connect-timeout=1&connect_timeout=1", E_URI),

        /* Unix paths */
        OK("unix:///tmp/x.sock", "unix:///tmp/x.sock"),
        OK("unix:/tmp/x.sock", "unix:///tmp/x.sock"),
        OK("Unix:/tmp/x.sock", "unix:///tmp/x.sock"),
        OK("unix:rel/x.sock", "unix:rel/x.sock"),
        OK("unix:x.sock", "unix:x.sock"),
        OK("unix:", "unix:"),
        OK("unix:///tmp/%41b", "unix:///tmp/Ab"),
        OK("unix:%41bc", "unix:Abc"),
        OKX("unix:///tmp/a%20b"),
        OKX("unix:///tmp/a%3Fb"),
        OK("unix:///tmp/a:b", "unix:///tmp/a:b"),
        OK("unix:///tmp/x?", "unix:///tmp/x"),
        OK("unix:///tmp/x?mode=660", "unix:///tmp/x?mode=0660"),
        OK("unix:///tmp/x?mode=0600", "unix:///tmp/x?mode=0600"),
        OK("unix:///tmp/x?mode=0", "unix:///tmp/x?mode=0000"),
        OK("unix:///tmp/x?mode=777", "unix:///tmp/x?mode=0777"),
        OK("unix:///tmp/x?unlink", "unix:///tmp/x?unlink=1"),
        OK("unix:///tmp/x?unlink=1&mode=600", "unix:///tmp/x?mode=0600&unlink=1"),
        OK("unix:rel.sock?unlink=off", "unix:rel.sock?unlink=0"),
        OK("unix:///tmp/x?connect_timeout=3", "unix:///tmp/x?connect_timeout=3s"),
        OK(uri_unix_200, uri_unix_200),
        OK(uri_unix_rel_200, uri_unix_rel_200),
        OK(uri_unix_4095, uri_unix_4095),
        OK(uri_unix_enc_4095, canon_unix_enc_4095),
        ERR(uri_unix_4096, -ENAMETOOLONG),
        ERR(uri_unix_rel_4096, -ENAMETOOLONG),
        ERR(uri_unix_enc_4096, -ENAMETOOLONG),
        ERR(uri_unix_connect_4096, -ENAMETOOLONG),
        ERR(uri_bare_4096, -ENAMETOOLONG),
        ERR(uri_tls_unix_4096, -ENAMETOOLONG),
        ERR("unix://host/path", E_URI),
        ERR("unix://localhost/tmp/x", E_URI),
        ERR("unix:///tmp/%", E_URI),
        ERR("unix:///tmp/%z", E_URI),
        ERR("unix:///tmp/%0", E_URI),
        ERR("unix:///tmp/%zz", E_URI),
        ERR("unix:///tmp/a%00b", E_URI),
        ERR("unix:rel%00", E_URI),
        ERR("unix:///tmp/x#frag", E_URI),
        ERR("unix:///tmp/x?mode=0999", E_VALUE),
        ERR("unix:///tmp/x?mode=1000", E_VALUE),
        ERR("unix:///tmp/x?mode=rw", E_VALUE),
        ERR("unix:///tmp/x?unlink=maybe", E_VALUE),
        ERR("unix:///tmp/x?nodelay=1", E_OPTION),
        ERR("unix:///tmp/x?to_host=1", E_OPTION),
        ERR("unix:///tmp/x?verify=0", E_OPTION),
        ERR("unix:///tmp/x?mode=0600&mode=0600", E_URI),

        /* Unix abstract names */
        OK("unix-abstract:agent", "unix-abstract:agent"),
        OK("UNIX-ABSTRACT:agent", "unix-abstract:agent"),
        OK("unix-abstract:", "unix-abstract:"),
        OK("unix-abstract:a%00b", "unix-abstract:a%00b"),
        OK("unix-abstract:%00", "unix-abstract:%00"),
        OK("unix-abstract:%00%00x", "unix-abstract:%00%00x"),
        OK("unix-abstract:%41bc", "unix-abstract:Abc"),
        OKX("unix-abstract:%ff%fe"),
        OK("unix-abstract:agent?connect_timeout=2", "unix-abstract:agent?connect_timeout=2s"),
        OK(uri_abs_107, uri_abs_107),
        OK(uri_at_107, canon_at_107),
        OK(uri_abs_nul_107, uri_abs_nul_107),
        ERR(uri_abs_108, -ENAMETOOLONG),
        ERR(uri_at_108, -ENAMETOOLONG),
        ERR(uri_unix_at_108, -ENAMETOOLONG),
        ERR(uri_abstract_connect_108, -ENAMETOOLONG),
        ERR(uri_abs_nul_108, -ENAMETOOLONG),
        ERR("unix-abstract:%", E_URI),
        ERR("unix-abstract:%g0", E_URI),
        ERR("unix-abstract:agent?mode=0600", E_OPTION),
        ERR("unix-abstract:agent?unlink=1", E_OPTION),

        /* vsock */
        OK("vsock://3:1024", "vsock://3:1024"),
        OK("VSOCK://3:1024", "vsock://3:1024"),
        OK("vsock://hypervisor:1", "vsock://0:1"),
        OK("vsock://local:1", "vsock://1:1"),
        OK("vsock://host:1024", "vsock://2:1024"),
        OK("vsock://any:1024", "vsock://any:1024"),
        OK("vsock://-1:1024", "vsock://any:1024"),
        OK("vsock://:1024", "vsock://any:1024"),
        OK("vsock://4294967295:1024", "vsock://any:1024"),
        OK("vsock://4294967294:1024", "vsock://4294967294:1024"),
        OK("vsock://3:any", "vsock://3:any"),
        OK("vsock://3:-1", "vsock://3:any"),
        OK("vsock://3:4294967295", "vsock://3:any"),
        OK("vsock://any:any", "vsock://any:any"),
        OK("vsock://0x3:0x400", "vsock://3:1024"),
        OK("vsock://03:010", "vsock://3:10"),
        OK("vsock://2:1024?to_host=1", "vsock://2:1024?to_host=1"),
        OK("vsock://2:1024?to_host", "vsock://2:1024?to_host=1"),
        OK("vsock://2:1024?to_host=false", "vsock://2:1024?to_host=0"),
        OK("vsock://2:1024?to_host=yes&connect_timeout=1.5",
           "vsock://2:1024?connect_timeout=1500ms&to_host=1"),
        ERR("vsock://x:1", E_URI),
        ERR("vsock://3x:1", E_URI),
        ERR("vsock://4294967296:1", E_URI),
        ERR("vsock://-2:1", E_URI),
        ERR("vsock://+3:1", E_URI),
        ERR("vsock://3", E_URI),
        ERR("vsock://3:", E_URI),
        ERR("vsock://3:x", E_URI),
        ERR("vsock://3:-2", E_URI),
        ERR("vsock://3:4294967296", E_URI),
        ERR("vsock://3:1#x", E_URI),
        ERR("vsock://3:1?nodelay=1", E_OPTION),
        ERR("vsock://3:1?mode=0600", E_OPTION),
        ERR("vsock://3:1?servername=x", E_OPTION),
        ERR("vsock://3:1?handshake=strict", E_OPTION),
        ERR("vsock://3:1?to_host=maybe", E_VALUE),
        ERR("vsock://3:1?to_host&to_host", E_URI),

        /* Hyper-V: well-known VM ids by name and by GUID, port services */
        OK("hyperv://wildcard/1", "hyperv://wildcard/" HVSVC("00000001")),
        OK("hyperv://children/2", "hyperv://children/" HVSVC("00000002")),
        OK("hyperv://loopback/3", "hyperv://loopback/" HVSVC("00000003")),
        OK("hyperv://parent/4", "hyperv://parent/" HVSVC("00000004")),
        OK("hyperv://silohost/5", "hyperv://silohost/" HVSVC("00000005")),
        OK("hyperv://00000000-0000-0000-0000-000000000000/1",
           "hyperv://wildcard/" HVSVC("00000001")),
        OK("hyperv://90DB8B89-0D35-4F79-8CE9-49EA0AC8B7CD/2",
           "hyperv://children/" HVSVC("00000002")),
        OK("hyperv://{e0e16197-dd56-4a10-9195-5ee7a155a838}/3",
           "hyperv://loopback/" HVSVC("00000003")),
        OK("hyperv://{A42E7CDA-D03F-480C-9CC2-A4DE20ABB878}/4",
           "hyperv://parent/" HVSVC("00000004")),
        OK("hyperv://36bd0c5c-7276-4223-88ba-7d03b654c568/5",
           "hyperv://silohost/" HVSVC("00000005")),
        OK("HYPERV://parent/1024", "hyperv://parent/" HVSVC("00000400")),
        OK("hyperv://parent/0x400", "hyperv://parent/" HVSVC("00000400")),
        OK("hyperv://parent/0", "hyperv://parent/" HVSVC("00000000")),
        OK("hyperv://parent/4294967295", "hyperv://parent/" HVSVC("ffffffff")),
        OK("hyperv://parent/00000400-FACB-11E6-BD58-64006A7986D3",
           "hyperv://parent/" HVSVC("00000400")),
        OK("hyperv://parent/{00000400-facb-11e6-bd58-64006a7986d3}",
           "hyperv://parent/" HVSVC("00000400")),
        OK("hyperv://{12345678-9ABC-DEF0-1234-56789ABCDEF0}/{3049197C-FACB-11E6-BD58-64006A7986D3}",
           "hyperv://12345678-9abc-def0-1234-56789abcdef0/" HVSVC("3049197c")),
        OK("hyperv://parent/12345678-1234-5678-9abc-def012345678",
           "hyperv://parent/12345678-1234-5678-9abc-def012345678"),
        OK("hyperv://parent/1?connect_timeout=5",
           "hyperv://parent/" HVSVC("00000001") "?connect_timeout=5s"),
        OK("hvsock://a42e7cda-d03f-480c-9cc2-a4de20abb878/00000400-facb-11e6-bd58-64006a7986d3",
           "hyperv://parent/" HVSVC("00000400")),
        OK("hvsock://12345678-9abc-def0-1234-56789abcdef0/00000400-facb-11e6-bd58-64006a7986d3",
           "hyperv://12345678-9abc-def0-1234-56789abcdef0/" HVSVC("00000400")),
        ERR("hyperv://nope/1", E_URI),
        ERR("hyperv://parent/4294967296", E_URI),
        ERR("hyperv://parent/-1", E_URI),
        ERR("hyperv://parent/abc", E_URI),
        ERR("hyperv://parent", E_URI),
        ERR("hyperv://parent/", E_URI),
        ERR("hyperv:///1", E_URI),
        ERR("hyperv://1234567-9abc-def0-1234-56789abcdef0/1", E_URI),
        ERR("hyperv://12345678-9abc-def0-1234-56789abcdef01/1", E_URI),
        ERR("hyperv://1234567g-9abc-def0-1234-56789abcdef0/1", E_URI),
        ERR("hyperv://123456789-abc-def0-1234-56789abcdef0/1", E_URI),
        ERR("hyperv://12345678-9abcdef0-1234-5678-9abcdef0/1", E_URI),
        ERR("hyperv://123456789abcdef0123456789abcdef0/1", E_URI),
        ERR("hyperv://12345678_9abc_def0_1234_56789abcdef0/1", E_URI),
        ERR("hyperv://{12345678-9abc-def0-1234-56789abcdef0/1", E_URI),
        ERR("hyperv://parent/00000400-facb-11e6-bd58-64006a7986d", E_URI),
        ERR("hyperv://parent/1?to_host=1", E_OPTION),
        ERR("hyperv://parent/1?nodelay=1", E_OPTION),

        /* hybrid vsock */
        OK("vsock-mux:///run/fc.sock:1024", "vsock-mux:///run/fc.sock:1024"),
        OK("VSOCK-MUX:///run/fc.sock:1024", "vsock-mux:///run/fc.sock:1024"),
        OK("vsock-mux:run/fc.sock:52", "vsock-mux:run/fc.sock:52"),
        OK("vsock-mux:///tmp/a:b:1024", "vsock-mux:///tmp/a:b:1024"),
        OK("vsock-mux:///run/fc.sock:0x400", "vsock-mux:///run/fc.sock:1024"),
        OK("vsock-mux:///run/fc.sock:1024?handshake=strict",
           "vsock-mux:///run/fc.sock:1024?handshake=strict"),
        OK("vsock-mux:///run/fc.sock:1024?handshake=lenient&connect-timeout=500ms",
           "vsock-mux:///run/fc.sock:1024?connect_timeout=500ms&handshake=lenient"),
        OK("hvsock:///run/vc/hvsock:1024", "vsock-mux:///run/vc/hvsock:1024"),
        ERR("vsock-mux:///run/fc.sock", E_URI),
        ERR("vsock-mux:///run/fc.sock:", E_URI),
        ERR("vsock-mux:///run/fc.sock:x", E_URI),
        ERR("vsock-mux:///run/fc.sock:4294967296", E_URI),
        ERR("vsock-mux:///run/a%00b:1", E_URI),
        ERR("vsock-mux:///run/fc.sock:1?handshake=maybe", E_VALUE),
        ERR("vsock-mux:///run/fc.sock:1?to_host=1", E_OPTION),
        /* the listener's "<path>_<port>" socket takes the Unix file options */
        OK("vsock-mux:///run/fc.sock:1?mode=0600&unlink=1",
           "vsock-mux:///run/fc.sock:1?mode=0600&unlink=1"),
        ERR("vsock-mux:///run/fc.sock:1?nodelay=1", E_OPTION),
        OK("vsock://3:1024?retry=30s&max_io=65536", "vsock://3:1024?retry=30s&max_io=65536"),
        OK("vsock://3:1024?message_size=4096", "vsock://3:1024?max_io=4096"),
        OK("unix:///run/a.sock?retry=1500ms", "unix:///run/a.sock?retry=1500ms"),
        ERR("vsock://3:1024?max_io=0", E_VALUE),
        ERR("fd:3?retry=1s", E_OPTION),

        /* fd */
        OK("fd:3", "fd:3"),
        OK("fd:0", "fd:0"),
        OK("FD:3", "fd:3"),
        OK("fd:0x10", "fd:16"),
        OK("fd:010", "fd:10"),
        ERR("fd:-1", E_URI),
        ERR("fd:", E_URI),
        ERR("fd:x", E_URI),
        ERR("fd: 3", E_URI),
        ERR("fd:99999999999", E_URI),
        ERR("fd:3?nodelay=1", E_OPTION),
        ERR("fd:3?connect_timeout=1", E_OPTION),

        /* Xen vchan */
        OK("vchan://1/data", "vchan://1/data"),
        OK("VCHAN://0x10/data", "vchan://16/data"),
        OK("vchan://0/d%41ta", "vchan://0/dAta"),
        ERR("vchan://x/data", E_URI),
        ERR("vchan://-1/data", E_URI),
        ERR("vchan://1/%zz", E_URI),

        /* TLS over every transport */
        OK("tls+tcp://example.com:443", "tls+tcp://example.com:443"),
        OK("TLS+TCP://Example.com:443", "tls+tcp://example.com:443"),
        OK("tls+tcp4://example.com:443", "tls+tcp4://example.com:443"),
        OK("tls+tcp6://example.com:443", "tls+tcp6://example.com:443"),
        OK("tls+tcp://[::1]:443", "tls+tcp://[::1]:443"),
        OK("tls+tcp://[fe80::1%25eth0]:443", "tls+tcp://[fe80::1%eth0]:443"),
        OK("tls+tcp://:443?cert=/c.pem&key=/k.pem", "tls+tcp://:443?cert=/c.pem&key=/k.pem"),
        OK("tls+tcp://:443?key=/k.pem&cert=/c.pem", "tls+tcp://:443?cert=/c.pem&key=/k.pem"),
        OK("tls+unix:///run/a.sock?servername=agent", "tls+unix:///run/a.sock?servername=agent"),
        OK("tls+unix:rel.sock?verify=0", "tls+unix:rel.sock?verify=0"),
        OK("tls+unix:///run/a.sock?servername=agent&mode=600",
           "tls+unix:///run/a.sock?mode=0600&servername=agent"),
        OK("tls+unix-abstract:agent?pin=" PIN2_B64, "tls+unix-abstract:agent?pin=" PIN2_B64),
        OK("tls+vsock://2:1024?servername=host.local", "tls+vsock://2:1024?servername=host.local"),
        OK("tls+vsock://-1:1024?verify=0&to_host", "tls+vsock://any:1024?to_host=1&verify=0"),
        OK("tls+hyperv://parent/1?verify=0", "tls+hyperv://parent/" HVSVC("00000001") "?verify=0"),
        OK("tls+vsock-mux:///run/fc.sock:1024?servername=x&handshake=lenient",
           "tls+vsock-mux:///run/fc.sock:1024?handshake=lenient&servername=x"),
        OK("tls+fd:3?verify=0", "tls+fd:3?verify=0"),
        OK("tls+vchan://1/data?verify=0", "tls+vchan://1/data?verify=0"),
        OK("tls+tls+tcp://h:443", "tls+tls+tcp://h:443"),
        OK("tls+tls+tcp://h:443?servername=outer", "tls+tls+tcp://h:443?servername=outer"),
        OK("tls+tls+tcp://h:443?inner.servername=Inner",
           "tls+tls+tcp://h:443?inner.servername=inner"),
        OK("tls+tls+tls+unix:///a?inner.inner.verify=0",
           "tls+tls+tls+unix:///a?inner.inner.verify=0"),

        /* TLS options */
        OK("tls+tcp://h:443?servername=Example.COM", "tls+tcp://h:443?servername=example.com"),
        OK("tls+tcp://h:443?sni=a.example", "tls+tcp://h:443?servername=a.example"),
        OK("tls+tcp://h:443?SNIHOST=a.example", "tls+tcp://h:443?servername=a.example"),
        OK("tls+tcp://h:443?verify=0", "tls+tcp://h:443?verify=0"),
        OK("tls+tcp://h:443?verify=no", "tls+tcp://h:443?verify=0"),
        OK("tls+tcp://h:443?verify", "tls+tcp://h:443?verify=1"),
        OK("tls+tcp://h:443?cafile=%2Fca.pem", "tls+tcp://h:443?cafile=/ca.pem"),
        OK("tls+tcp://h:443?capath=/etc/ssl/certs", "tls+tcp://h:443?capath=/etc/ssl/certs"),
        OK("tls+tcp://h:443?alpn=h2,http/1.1", "tls+tcp://h:443?alpn=h2,http/1.1"),
        OK(uri_alpn_255, uri_alpn_255),
        OK("tls+tcp://h:443?min_version=1.2", "tls+tcp://h:443?min_version=1.2"),
        OK("tls+tcp://h:443?min_version=1.3", "tls+tcp://h:443?min_version=1.3"),
        OK("tls+tcp://h:443?min_version=tls1.2", "tls+tcp://h:443?min_version=1.2"),
        OK("tls+tcp://h:443?min_version=TLSv1.3", "tls+tcp://h:443?min_version=1.3"),
        OK("tls+tcp://h:443?min-version=1.3", "tls+tcp://h:443?min_version=1.3"),
        OK("tls+tcp://h:443?pin=" PIN0_B64, "tls+tcp://h:443?pin=" PIN0_B64),
        OK("tls+tcp://h:443?pin=" PIN0_HEX, "tls+tcp://h:443?pin=" PIN0_B64),
        OK("tls+tcp://h:443?pin=" PIN0_HEXC, "tls+tcp://h:443?pin=" PIN0_B64),
        OK("tls+tcp://h:443?pin=" PIN1_HEXC_UPPER, "tls+tcp://h:443?pin=" PIN1_B64),
        OK("tls+tcp://h:443?pin=" PIN0_B64 "," PIN1_HEX,
           "tls+tcp://h:443?pin=" PIN0_B64 "," PIN1_B64),
        OK("tls+tcp://h:443?pin=" PIN2_B64 "&min_version=TLSv1.3&alpn=h2&key=/k.pem&cert=/c.pem"
           "&capath=/cap&cafile=/ca.pem&verify=0&sni=H.example",
           "tls+tcp://h:443?servername=h.example&verify=0&cafile=/ca.pem&capath=/cap"
           "&cert=/c.pem&key=/k.pem&alpn=h2&min_version=1.3&pin=" PIN2_B64),
        OK("tls+tcp://h:443?session_cache=0", "tls+tcp://h:443?session_cache=0"),
        OK("tls+tcp://h:443?session_cache=off", "tls+tcp://h:443?session_cache=0"),
        OK("tls+tcp://h:443?session-cache=yes", "tls+tcp://h:443?session_cache=1"),
        OK("tls+tcp://h:443?session_cache", "tls+tcp://h:443?session_cache=1"),
        OK("tls+tcp://h:443?session_cache=0&pin=" PIN0_B64 "&verify=1",
           "tls+tcp://h:443?verify=1&pin=" PIN0_B64 "&session_cache=0"),
        OK("tls+unix:///s?session_cache=false&servername=agent",
           "tls+unix:///s?servername=agent&session_cache=0"),
        OK("tls+tls+tcp://h:443?inner.session_cache=0",
           "tls+tls+tcp://h:443?inner.session_cache=0"),
        OK("tls+tcp://h:443?ciphersuites=TLS_CHACHA20_POLY1305_SHA256",
           "tls+tcp://h:443?ciphersuites=TLS_CHACHA20_POLY1305_SHA256"),
        OK("tls+tcp://h:443?ciphersuites=tls_aes_256_gcm_sha384,TLS_AES_128_GCM_SHA256",
           "tls+tcp://h:443?ciphersuites=TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256"),
        OK("tls+tcp://h:443?ciphersuites=TLS_AES_128_CCM_SHA256:TLS_AES_128_GCM_SHA256",
           "tls+tcp://h:443?ciphersuites=TLS_AES_128_CCM_SHA256,TLS_AES_128_GCM_SHA256"),
        OK("tls+tcp://h:443?ciphersuites=TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,"
           "TLS_CHACHA20_POLY1305_SHA256,TLS_AES_128_CCM_SHA256&session_cache=0",
           "tls+tcp://h:443?session_cache=0&ciphersuites=TLS_AES_128_GCM_SHA256,"
           "TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,TLS_AES_128_CCM_SHA256"),
        OK("tls+tls+tcp://h:443?inner.ciphersuites=TLS_AES_128_GCM_SHA256",
           "tls+tls+tcp://h:443?inner.ciphersuites=TLS_AES_128_GCM_SHA256"),
        ERR("tls+tcp://h:443?ciphersuites=TLS_AES_128_CCM_8_SHA256", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=TLS_AES_128_GCM_SHA256,TLS_AES_128_CCM_8_SHA256",
            E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=ECDHE-RSA-AES128-GCM-SHA256", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=TLS_AES_128_GCM", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=TLS_AES_128_GCM_SHA256,", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=TLS_AES_128_GCM_SHA256,,TLS_AES_256_GCM_SHA384", E_VALUE),
        ERR("tls+tcp://h:443?ciphersuites=TLS_AES_128_GCM_SHA256,tls_aes_128_gcm_sha256", E_VALUE),
        ERR("tcp://h:443?ciphersuites=TLS_AES_128_GCM_SHA256", E_OPTION),
        OK("tls+tcp://h:443?verify=0&nodelay=1", "tls+tcp://h:443?nodelay=1&verify=0"),
        OK("tls+tcp://h:443?servername=x&connect_timeout=2&keepalive=60,10,5",
           "tls+tcp://h:443?connect_timeout=2s&keepalive=60,10,5&servername=x"),
        ERR("tls+tcp://h:443?inner.verify=0", E_OPTION),
        ERR("tls+tls+tcp://h:443?inner.inner.verify=0", E_OPTION),
        ERR("tls+tcp://h:443?to_host=1", E_OPTION),
        ERR("tls+tcp://h:443?bogus=1", E_OPTION),
        ERR("tls+unix-abstract:agent?mode=0600", E_OPTION),
        ERR("tls+tcp://h:443?verify=maybe", E_VALUE),
        ERR("tls+tcp://h:443?session_cache=2", E_VALUE),
        ERR("tls+tcp://h:443?session_cache=", E_VALUE),
        ERR("tcp://h:443?session_cache=0", E_OPTION),
        ERR("tls+tcp://h:443?min_version=1.1", E_VALUE),
        ERR("tls+tcp://h:443?min_version=1.4", E_VALUE),
        ERR("tls+tcp://h:443?servername=", E_VALUE),
        ERR("tls+tcp://h:443?cafile=", E_VALUE),
        ERR("tls+tcp://h:443?cafile", E_VALUE),
        ERR("tls+tcp://h:443?alpn=", E_VALUE),
        ERR("tls+tcp://h:443?alpn=h2,,http/1.1", E_VALUE),
        ERR(uri_alpn_256, E_VALUE),
        ERR("tls+tcp://h:443?pin=sha256//short", E_VALUE),
        ERR("tls+tcp://h:443?pin=md5//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", E_VALUE),
        ERR("tls+tcp://h:443?pin=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
            E_VALUE),
        ERR("tls+tcp://h:443?pin=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
            E_VALUE),
        ERR("tls+tcp://h:443?sni=a&servername=a", E_URI),
        ERR("tls+tcp://h:443?cafile=%zz", E_URI),
        ERR("tls+tcp://h:443#x", E_URI),
        ERR("tls+tcp://h", E_URI),
        ERR("tls+", E_URI),
        ERR("tls+foo://h", E_SCHEME),

        /* service schemes: the whole built-in table */
        OK("http://example.com", "tcp://example.com:80"),
        OK("http://example.com/", "tcp://example.com:80"),
        OK("http://example.com:8080", "tcp://example.com:8080"),
        OK("HTTP://Example.com", "tcp://example.com:80"),
        OK("http://192.0.2.1:8080/", "tcp://192.0.2.1:8080"),
        OK("https://example.com", "tls+tcp://example.com:443"),
        OK("https://example.com:8443/", "tls+tcp://example.com:8443"),
        OK("https://[::1]", "tls+tcp://[::1]:443"),
        OK("ws://h", "tcp://h:80"),
        OK("wss://h", "tls+tcp://h:443"),
        OK("ftp://h", "tcp://h:21"),
        OK("ssh://h", "tcp://h:22"),
        OK("ssh://h:2222", "tcp://h:2222"),
        OK("telnet://h", "tcp://h:23"),
        OK("smtp://h", "tcp://h:25"),
        OK("submission://h", "tcp://h:587"),
        OK("smtps://h", "tls+tcp://h:465"),
        OK("dns://h", "tcp://h:53"),
        OK("dot://h", "tls+tcp://h:853"),
        OK("pop3://h", "tcp://h:110"),
        OK("pop3s://h", "tls+tcp://h:995"),
        OK("nntp://h", "tcp://h:119"),
        OK("nntps://h", "tls+tcp://h:563"),
        OK("imap://h", "tcp://h:143"),
        OK("imaps://h", "tls+tcp://h:993"),
        OK("ldap://h", "tcp://h:389"),
        OK("ldaps://h", "tls+tcp://h:636"),
        OK("irc://h", "tcp://h:6667"),
        OK("ircs://h", "tls+tcp://h:6697"),
        OK("xmpp://h", "tcp://h:5222"),
        OK("mysql://h", "tcp://h:3306"),
        OK("postgres://h", "tcp://h:5432"),
        OK("postgresql://h", "tcp://h:5432"),
        OK("redis://h", "tcp://h:6379"),
        OK("redis://h:6380", "tcp://h:6380"),
        OK("rediss://h", "tls+tcp://h:6379"),
        OK("mqtt://h", "tcp://h:1883"),
        OK("mqtts://h", "tls+tcp://h:8883"),
        OK("amqp://h", "tcp://h:5672"),
        OK("amqps://h", "tls+tcp://h:5671"),
        OK("memcache://h", "tcp://h:11211"),
        OK("git://h", "tcp://h:9418"),
        ERR("http://example.com/index.html", E_URI),
        ERR("http://u@example.com", E_URI),
        ERR("http://example.com#top", E_URI),
        ERR("http://example.com:x", E_URI),
        ERR("https://example.com:65536", E_URI),

        /* socat */
        OK("TCP:example.com:80", "tcp://example.com:80"),
        OK("tcp:example.com:80", "tcp://example.com:80"),
        OK("TCP4:example.com:80", "tcp4://example.com:80"),
        OK("TCP6:example.com:80", "tcp6://example.com:80"),
        OK("TCP6:[::1]:80", "tcp://[::1]:80"),
        OK("TCP:[fe80::1%eth0]:80", "tcp://[fe80::1%eth0]:80"),
        OK("TCP:192.0.2.1:80", "tcp://192.0.2.1:80"),
        OK("TCP:h:https", "tcp://h:443"),
        OK("TCP:h:redis", "tcp://h:6379"),
        OK("TCP:h:80,nodelay", "tcp://h:80?nodelay=1"),
        OK("TCP:h:80,connect-timeout=5,nodelay=0", "tcp://h:80?connect_timeout=5s&nodelay=0"),
        OK("TCP-LISTEN:8080", "tcp://:8080"),
        OK("tcp-listen:8080", "tcp://:8080"),
        OK("Tcp-Listen:8080,nodelay", "tcp://:8080?nodelay=1"),
        OK("TCP4-LISTEN:80", "tcp4://:80"),
        OK("TCP6-LISTEN:80", "tcp6://:80"),
        OK("UNIX-CONNECT:/tmp/s", "unix:///tmp/s"),
        OK("unix-connect:rel/s", "unix:rel/s"),
        OK("UNIX-LISTEN:/tmp/s,mode=600,unlink", "unix:///tmp/s?mode=0600&unlink=1"),
        OK("UNIX:/tmp/s", "unix:///tmp/s"),
        OK("ABSTRACT-CONNECT:agent", "unix-abstract:agent"),
        OK("abstract-connect:agent", "unix-abstract:agent"),
        OK("ABSTRACT-LISTEN:agent", "unix-abstract:agent"),
        OK("ABSTRACT:agent", "unix-abstract:agent"),
        OK("VSOCK-CONNECT:2:1024", "vsock://2:1024"),
        OK("vsock-connect:3:1024", "vsock://3:1024"),
        OK("VSOCK-LISTEN:1024", "vsock://any:1024"),
        OK("OPENSSL:example.com:443", "tls+tcp://example.com:443"),
        OK("SSL:example.com:443", "tls+tcp://example.com:443"),
        OK("openssl:example.com:https", "tls+tcp://example.com:443"),
        OK("OPENSSL:h:443,cafile=/ca.pem,verify=0", "tls+tcp://h:443?verify=0&cafile=/ca.pem"),
        OK("OPENSSL:h:443,sni=Example.COM", "tls+tcp://h:443?servername=example.com"),
        OK("OPENSSL:h:443,ciphersuites=TLS_CHACHA20_POLY1305_SHA256,verify=0",
           "tls+tcp://h:443?verify=0&ciphersuites=TLS_CHACHA20_POLY1305_SHA256"),
        OK("OPENSSL:h:443,ciphersuites=TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
           "tls+tcp://h:443?ciphersuites=TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256"),
        ERR("OPENSSL:h:443,ciphersuites=TLS_AES_128_CCM_8_SHA256", E_VALUE),
        /* ',' separates socat options: the second name is taken for one */
        ERR("OPENSSL:h:443,ciphersuites=TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256", E_OPTION),
        ERR("TCP:h:80?nodelay=1", E_URI),
        ERR("TCP:h", E_URI),
        ERR("TCP:h:65536", E_URI),
        ERR("TCP:h:80,bogus", E_OPTION),
        ERR("TCP:h:80,verify=0", E_OPTION),
        ERR("TCP-LISTEN:80,fork", E_OPTION),
        ERR("TCP:h:80,nodelay,nodelay", E_URI),

        /* gRPC */
        OK("unix:path/to/s", "unix:path/to/s"),
        OK("unix:/abs/path", "unix:///abs/path"),
        OK("vsock:3:1024", "vsock://3:1024"),
        OK("vsock:host:1024", "vsock://2:1024"),
        OK("ipv4:192.0.2.1:80", "tcp://192.0.2.1:80"),
        OK("IPV4:192.0.2.1:80", "tcp://192.0.2.1:80"),
        OK("ipv6:[::1]:80", "tcp://[::1]:80"),
        OK("ipv6:[fe80::1%25eth0]:443", "tcp://[fe80::1%eth0]:443"),
        ERR("ipv4:example.com:80", E_URI),
        ERR("ipv4:[::1]:80", E_URI),
        ERR("ipv6:192.0.2.1:80", E_URI),
        ERR("ipv6:[::1]", E_URI),

        /* systemd, Kata, linuxkit */
        OK("@agent", "unix-abstract:agent"),
        OK("/run/foo.sock", "unix:///run/foo.sock"),
        OK("vsock:2:1024", "vsock://2:1024"),
        OK("unix://@agent", "unix-abstract:agent"),
        OK("vsock://-1:1024", "vsock://any:1024"),

        /* unknown */
        OK("unknown:nxdomain", "unknown:nxdomain"),
        OK("UNKNOWN:nxdomain", "unknown:nxdomain"),
        OKX("unknown:no%20address"),

        /* schemes and general syntax */
        ERR("foo://h", E_SCHEME),
        ERR("localhost:80", E_SCHEME),
        ERR("example.com:443", E_SCHEME),
        ERR("notascheme:x", E_SCHEME),
        ERR("", E_URI),
        ERR(NULL, -EINVAL),
};

#define N_CASES ((int)(sizeof(cases) / sizeof(cases[0])))

/* Indexes of the rows expected to parse, for the round-trip loop. */
static int ok_rows[N_CASES];
static int n_ok_rows;

/* Table construction runs before the runner, outside any test. */
static void must(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "test-uri: cannot build %s\n", what);
                abort();
        }
}

static void fill_path(char *dst, size_t n, bool absolute)
{
        for (size_t i = 0; i < n; i++)
                dst[i] = (i % 32 == 0) ? '/' : (char)('a' + i % 26);
        if (!absolute)
                dst[0] = 'r';
        dst[n - 1] = 'z';
        dst[n] = '\0';
}

static void make_uri(char *dst, size_t size, const char *prefix, size_t n, bool absolute)
{
        size_t p = strlen(prefix);

        must(p + n < size, prefix);
        memcpy(dst, prefix, p);
        fill_path(dst + p, n, absolute);
}

static void make_repeat(char *dst, size_t size, const char *prefix, const char *unit, size_t n)
{
        size_t p = strlen(prefix), u = strlen(unit);

        must(p + n * u < size, prefix);
        memcpy(dst, prefix, p);
        for (size_t i = 0; i < n; i++)
                memcpy(dst + p + i * u, unit, u);
        dst[p + n * u] = '\0';
}

static void build_long_inputs(void)
{
        make_uri(uri_unix_200, sizeof(uri_unix_200), "unix://", 200, true);
        make_uri(uri_unix_rel_200, sizeof(uri_unix_rel_200), "unix:", 200, false);
        make_uri(uri_unix_4095, sizeof(uri_unix_4095), "unix://", 4095, true);
        make_uri(uri_unix_4096, sizeof(uri_unix_4096), "unix://", 4096, true);
        make_uri(uri_unix_rel_4096, sizeof(uri_unix_rel_4096), "unix:", 4096, false);
        make_uri(uri_unix_connect_4096, sizeof(uri_unix_connect_4096), "UNIX-CONNECT:", 4096, true);
        make_uri(uri_bare_4096, sizeof(uri_bare_4096), "", 4096, true);
        make_uri(uri_tls_unix_4096, sizeof(uri_tls_unix_4096), "tls+unix://", 4096, true);
        /* Limits count decoded bytes: "/" + 4094 x "%41" is a 4095-byte path. */
        make_repeat(uri_unix_enc_4095, sizeof(uri_unix_enc_4095), "unix:///", "%41", 4094);
        make_repeat(canon_unix_enc_4095, sizeof(canon_unix_enc_4095), "unix:///", "A", 4094);
        make_repeat(uri_unix_enc_4096, sizeof(uri_unix_enc_4096), "unix:///", "%41", 4095);
        make_repeat(uri_abs_107, sizeof(uri_abs_107), "unix-abstract:", "n", 107);
        make_repeat(uri_abs_108, sizeof(uri_abs_108), "unix-abstract:", "n", 108);
        make_repeat(uri_at_107, sizeof(uri_at_107), "@", "n", 107);
        make_repeat(canon_at_107, sizeof(canon_at_107), "unix-abstract:", "n", 107);
        make_repeat(uri_at_108, sizeof(uri_at_108), "@", "n", 108);
        make_repeat(uri_unix_at_108, sizeof(uri_unix_at_108), "unix://@", "n", 108);
        make_repeat(uri_abstract_connect_108, sizeof(uri_abstract_connect_108),
                    "ABSTRACT-CONNECT:", "n", 108);
        /* 105 + 2 NUL bytes = 107, 106 + 2 = 108 */
        make_repeat(uri_abs_nul_107, sizeof(uri_abs_nul_107), "unix-abstract:", "n", 105);
        must(strlen(uri_abs_nul_107) + 7 <= sizeof(uri_abs_nul_107), "abstract name");
        strcat(uri_abs_nul_107, "%00%00");
        make_repeat(uri_abs_nul_108, sizeof(uri_abs_nul_108), "unix-abstract:", "n", 106);
        must(strlen(uri_abs_nul_108) + 7 <= sizeof(uri_abs_nul_108), "abstract name");
        strcat(uri_abs_nul_108, "%00%00");
        make_repeat(uri_alpn_255, sizeof(uri_alpn_255), "tls+tcp://h:443?alpn=h2,", "p", 255);
        make_repeat(uri_alpn_256, sizeof(uri_alpn_256), "tls+tcp://h:443?alpn=h2,", "p", 256);

        n_ok_rows = 0;
        for (int i = 0; i < N_CASES; i++)
                if (cases[i].rc == 0)
                        ok_rows[n_ok_rows++] = i;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Long URIs are shortened in failure messages. */
static const char *show(const char *s, char *buf, size_t size)
{
        size_t n;

        if (!s)
                return "(NULL)";
        n = strlen(s);
        if (n <= 100)
                return s;
        snprintf(buf, size, "%.60s...(%zu bytes)", s, n);
        return buf;
}

/* Offset of the first byte where a and b differ. */
static size_t diff_at(const char *a, const char *b)
{
        size_t i = 0;

        while (a[i] && a[i] == b[i])
                i++;
        return i;
}

static const char *detail(void)
{
        const char *m = conduit_ctx_error_message(NULL);

        return m ? m : "(NULL)";
}

/* Parses uri, which must succeed. */
static conduit_endp *parse_ok(const char *uri)
{
        conduit_endp *e = NULL;
        char b[128];
        int r = conduit_endp_parse(uri, &e);

        ck_assert_msg(r == 0, "parse(\"%s\") = %d (%s), expected success; detail: %s",
                      show(uri, b, sizeof(b)), r, conduit_strerror(r), detail());
        ck_assert_ptr_nonnull(e);
        return e;
}

/* Formats e, which must succeed, and checks the returned length. */
static char *format_ok(const conduit_endp *e)
{
        char *s = NULL;
        int r = conduit_endp_format(e, &s);

        ck_assert_msg(r >= 0, "format() = %d (%s)", r, conduit_strerror(r));
        ck_assert_ptr_nonnull(s);
        ck_assert_msg((size_t)r == strlen(s), "format() returned %d for a %zu-byte string \"%s\"",
                      r, strlen(s), s);
        return s;
}

static void assert_format(const conduit_endp *e, const char *expected)
{
        char *s = format_ok(e);

        ck_assert_msg(strcmp(s, expected) == 0, "format() = \"%s\", expected \"%s\"", s, expected);
        free(s);
}

/* parse(format(e)) == e, format idempotent, copy equal and printed alike. */
static void check_roundtrip(const conduit_endp *e, const char *what)
{
        conduit_endp *e2 = NULL, *c = NULL;
        char *s1, *s2, *s3;
        char b1[128], b2[128];
        int r;

        s1 = format_ok(e);
        r = conduit_endp_parse(s1, &e2);
        ck_assert_msg(r == 0, "%s: canonical \"%s\" does not parse back: %d (%s); detail: %s",
                      show(what, b1, sizeof(b1)), show(s1, b2, sizeof(b2)), r, conduit_strerror(r),
                      detail());
        ck_assert_msg(conduit_endp_equal(e, e2) && conduit_endp_equal(e2, e),
                      "%s: parse(format(e)) is not equal to e (canonical \"%s\")",
                      show(what, b1, sizeof(b1)), show(s1, b2, sizeof(b2)));
        s2 = format_ok(e2);
        ck_assert_msg(strcmp(s1, s2) == 0, "%s: format not idempotent: \"%s\" then \"%s\"",
                      show(what, b1, sizeof(b1)), s1, s2);

        r = conduit_endp_copy(e, &c);
        ck_assert_msg(r == 0, "%s: copy = %d (%s)", show(what, b1, sizeof(b1)), r,
                      conduit_strerror(r));
        ck_assert_msg(c != e, "copy returned the same object");
        ck_assert_msg(conduit_endp_equal(c, e) && conduit_endp_equal(e, c),
                      "%s: copy is not equal to the original", show(what, b1, sizeof(b1)));
        s3 = format_ok(c);
        ck_assert_msg(strcmp(s1, s3) == 0, "%s: copy prints \"%s\", original \"%s\"",
                      show(what, b1, sizeof(b1)), s3, s1);

        free(s1);
        free(s2);
        free(s3);
        conduit_endp_free(e2);
        conduit_endp_free(c);
}

/* ---- 1. the table -------------------------------------------------------------- */

START_TEST(test_table)
{
        static char sentinel_byte; /* an address no endp can have */
        conduit_endp *const sentinel = (conduit_endp *)&sentinel_byte;
        const struct uri_case *c = &cases[_i];
        conduit_endp *e = sentinel;
        char b1[128], b2[128], b3[128];
        int r;

        r = conduit_endp_parse(c->uri, &e);
        if (c->rc != 0) {
                ck_assert_msg(r == c->rc,
                              "row %d: parse(\"%s\") = %d (%s), expected %d (%s); detail: %s", _i,
                              show(c->uri, b1, sizeof(b1)), r, conduit_strerror(r), c->rc,
                              conduit_strerror(c->rc), detail());
                ck_assert_msg(e == sentinel,
                              "row %d: parse(\"%s\") failed but changed its output argument", _i,
                              show(c->uri, b1, sizeof(b1)));
                if (c->rc != -EINVAL)
                        ck_assert_msg(detail()[0] != '\0',
                                      "row %d: parse(\"%s\") failed (%s) without a detail message",
                                      _i, show(c->uri, b1, sizeof(b1)), conduit_strerror(r));
                return;
        }

        ck_assert_msg(r == 0, "row %d: parse(\"%s\") = %d (%s), expected success; detail: %s", _i,
                      show(c->uri, b1, sizeof(b1)), r, conduit_strerror(r), detail());
        ck_assert_msg(e != NULL && e != sentinel, "row %d: parse succeeded without an endp", _i);
        if (c->canon) {
                char *s = NULL;

                r = conduit_endp_format(e, &s);
                ck_assert_msg(r >= 0, "row %d: format(parse(\"%s\")) = %d (%s)", _i,
                              show(c->uri, b1, sizeof(b1)), r, conduit_strerror(r));
                ck_assert_msg(strcmp(s, c->canon) == 0,
                              "row %d: parse(\"%s\") prints \"%s\", expected \"%s\" (from byte "
                              "%zu: got \"%.40s\", expected \"%.40s\")",
                              _i, show(c->uri, b1, sizeof(b1)), show(s, b2, sizeof(b2)),
                              show(c->canon, b3, sizeof(b3)), diff_at(s, c->canon),
                              s + diff_at(s, c->canon), c->canon + diff_at(s, c->canon));
                free(s);
        }
        conduit_endp_free(e);
}
END_TEST

/* ---- 2. round trips ------------------------------------------------------------- */

START_TEST(test_table_roundtrip)
{
        const struct uri_case *c = &cases[ok_rows[_i]];
        conduit_endp *e = NULL, *ec = NULL;
        char b1[128], b2[128];
        int r;

        r = conduit_endp_parse(c->uri, &e);
        ck_assert_msg(r == 0, "row %d: parse(\"%s\") = %d (%s); detail: %s", ok_rows[_i],
                      show(c->uri, b1, sizeof(b1)), r, conduit_strerror(r), detail());
        check_roundtrip(e, c->uri);

        /* An alias parses to the same endp as its canonical form, and the
         * canonical form is a fixed point of parse+format. */
        if (c->canon) {
                char *s;

                r = conduit_endp_parse(c->canon, &ec);
                ck_assert_msg(r == 0, "row %d: canonical \"%s\" = %d (%s); detail: %s", ok_rows[_i],
                              show(c->canon, b1, sizeof(b1)), r, conduit_strerror(r), detail());
                ck_assert_msg(conduit_endp_equal(e, ec) && conduit_endp_equal(ec, e),
                              "row %d: \"%s\" is not equal to its canonical form \"%s\"",
                              ok_rows[_i], show(c->uri, b1, sizeof(b1)),
                              show(c->canon, b2, sizeof(b2)));
                s = format_ok(ec);
                ck_assert_msg(strcmp(s, c->canon) == 0,
                              "row %d: canonical \"%s\" prints \"%s\" (from byte %zu: \"%.40s\")",
                              ok_rows[_i], show(c->canon, b1, sizeof(b1)), show(s, b2, sizeof(b2)),
                              diff_at(s, c->canon), s + diff_at(s, c->canon));
                free(s);
                conduit_endp_free(ec);
        }
        conduit_endp_free(e);
}
END_TEST

START_TEST(test_sockaddr_inet)
{
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(443) };
        struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
        struct sockaddr_in6 zoned = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
        struct sockaddr_storage ss;
        socklen_t len;
        conduit_endp *e4 = NULL, *e6 = NULL, *ez = NULL, *nozone = NULL;
        char *s;

        ck_assert_int_eq(inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr), 1);
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), &e4), 0);
        ck_assert_int_eq(conduit_endp_get_kind(e4), CONDUIT_ENDP_TCP);
        ck_assert_int_eq(conduit_endp_get_port(e4), 443);
        assert_format(e4, "tcp://192.0.2.7:443");
        check_roundtrip(e4, "AF_INET 192.0.2.7:443");
        memset(&ss, 0xa5, sizeof(ss));
        ck_assert_int_eq(conduit_endp_to_sockaddr(e4, &ss, &len), 0);
        ck_assert_int_eq(len, sizeof(struct sockaddr_in));
        ck_assert_int_eq(ss.ss_family, AF_INET);
        ck_assert(((struct sockaddr_in *)&ss)->sin_port == sin.sin_port);
        ck_assert(((struct sockaddr_in *)&ss)->sin_addr.s_addr == sin.sin_addr.s_addr);

        ck_assert_int_eq(inet_pton(AF_INET6, "::1", &sin6.sin6_addr), 1);
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), &e6),
                         0);
        assert_format(e6, "tcp://[::1]:80");
        check_roundtrip(e6, "AF_INET6 [::1]:80");

        /* A scope id that names no interface here: it can only print as a
         * number, and must survive parse and to_sockaddr. */
        ck_assert_int_eq(inet_pton(AF_INET6, "fe80::1", &zoned.sin6_addr), 1);
        zoned.sin6_scope_id = 77;
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&zoned, sizeof(zoned), &ez),
                         0);
        s = format_ok(ez);
        ck_assert_msg(strncmp(s, "tcp://[fe80::1%", 15) == 0 && strstr(s, "]:80") != NULL,
                      "AF_INET6 fe80::1 scope 77 prints \"%s\"", s);
        free(s);
        check_roundtrip(ez, "AF_INET6 [fe80::1%77]:80");
        nozone = parse_ok("tcp://[fe80::1]:80");
        ck_assert_msg(!conduit_endp_equal(ez, nozone), "a zone is part of the identity");
        memset(&ss, 0, sizeof(ss));
        ck_assert_int_eq(conduit_endp_to_sockaddr(ez, &ss, &len), 0);
        ck_assert_int_eq(len, sizeof(struct sockaddr_in6));
        ck_assert_int_eq(ss.ss_family, AF_INET6);
        ck_assert_uint_eq(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 77);
        ck_assert(memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &zoned.sin6_addr, 16) == 0);

        conduit_endp_free(e4);
        conduit_endp_free(e6);
        conduit_endp_free(ez);
        conduit_endp_free(nozone);
}
END_TEST

START_TEST(test_sockaddr_unix)
{
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        static const char path[] = "/tmp/conduit-test.sock";
        conduit_endp *e1 = NULL, *e2 = NULL, *ea = NULL, *eu = NULL;
        const char *p;
        size_t plen = 0;

        memcpy(sun.sun_path, path, sizeof(path));
        ck_assert_int_eq(conduit_endp_from_sockaddr(
                                 (struct sockaddr *)&sun,
                                 offsetof(struct sockaddr_un, sun_path) + sizeof(path), &e1),
                         0);
        assert_format(e1, "unix:///tmp/conduit-test.sock");
        check_roundtrip(e1, "AF_UNIX path");
        /* the same address given without its terminating NUL */
        ck_assert_int_eq(conduit_endp_from_sockaddr(
                                 (struct sockaddr *)&sun,
                                 offsetof(struct sockaddr_un, sun_path) + sizeof(path) - 1, &e2),
                         0);
        ck_assert(conduit_endp_equal(e1, e2));
        ck_assert(!conduit_endp_is_abstract(e1));

        /* a path that fills sun_path: the kernel reports its length one
         * byte past struct sockaddr_un (it counts the NUL it appends) */
        struct sockaddr_storage full;
        struct sockaddr_un *fu = (struct sockaddr_un *)&full;
        conduit_endp *ef = NULL;
        memset(&full, 0, sizeof(full));
        fu->sun_family = AF_UNIX;
        memset(fu->sun_path, 'f', sizeof(fu->sun_path));
        fu->sun_path[0] = '/';
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&full,
                                                    sizeof(struct sockaddr_un) + 1, &ef),
                         0);
        p = conduit_endp_get_path(ef, &plen);
        ck_assert_uint_eq(plen, sizeof(fu->sun_path));
        ck_assert(memcmp(p, fu->sun_path, plen) == 0);
        conduit_endp_free(ef);
        /* an abstract name cannot be longer than sun_path */
        fu->sun_path[0] = '\0';
        ef = (conduit_endp *)&full;
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&full,
                                                    sizeof(struct sockaddr_un) + 1, &ef),
                         -EINVAL);
        ck_assert_ptr_eq(ef, (conduit_endp *)&full);

        /* abstract "\0a\0b": three name bytes, one of them NUL */
        memset(sun.sun_path, 0, sizeof(sun.sun_path));
        memcpy(sun.sun_path, "\0a\0b", 4);
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&sun,
                                                    offsetof(struct sockaddr_un, sun_path) + 4,
                                                    &ea),
                         0);
        ck_assert(conduit_endp_is_abstract(ea));
        p = conduit_endp_get_path(ea, &plen);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(plen, 3);
        ck_assert(memcmp(p, "a\0b", 3) == 0);
        assert_format(ea, "unix-abstract:a%00b");
        check_roundtrip(ea, "AF_UNIX abstract a\\0b");

        /* unnamed */
        ck_assert_int_eq(
                conduit_endp_from_sockaddr((struct sockaddr *)&sun, sizeof(sa_family_t), &eu), 0);
        ck_assert_int_eq(conduit_endp_get_kind(eu), CONDUIT_ENDP_UNIX);
        assert_format(eu, "unix:");
        check_roundtrip(eu, "AF_UNIX unnamed");
        ck_assert(!conduit_endp_equal(eu, e1));
        ck_assert(!conduit_endp_equal(ea, e1));

        conduit_endp_free(e1);
        conduit_endp_free(e2);
        conduit_endp_free(ea);
        conduit_endp_free(eu);
}
END_TEST

START_TEST(test_sockaddr_vsock)
{
        /* Only the address structure: no AF_VSOCK socket is ever created. */
        struct sockaddr_vm svm;
        struct sockaddr_storage ss;
        socklen_t len = 0;
        conduit_endp *e = NULL, *any = NULL;

        memset(&svm, 0, sizeof(svm));
        svm.svm_family = AF_VSOCK;
        svm.svm_cid = 3;
        svm.svm_port = 1024;
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&svm, sizeof(svm), &e), 0);
        ck_assert_int_eq(conduit_endp_get_kind(e), CONDUIT_ENDP_VSOCK);
        ck_assert_int_eq(conduit_endp_get_cid(e), 3);
        ck_assert_int_eq(conduit_endp_get_port(e), 1024);
        assert_format(e, "vsock://3:1024");
        check_roundtrip(e, "AF_VSOCK 3:1024");

        svm.svm_cid = VMADDR_CID_ANY;
        svm.svm_port = VMADDR_PORT_ANY;
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&svm, sizeof(svm), &any), 0);
        assert_format(any, "vsock://any:any");
        check_roundtrip(any, "AF_VSOCK any:any");

        memset(&ss, 0, sizeof(ss));
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), 0);
        ck_assert_int_eq(len, sizeof(struct sockaddr_vm));
        ck_assert_int_eq(((struct sockaddr_vm *)&ss)->svm_family, AF_VSOCK);
        ck_assert_uint_eq(((struct sockaddr_vm *)&ss)->svm_cid, 3);
        ck_assert_uint_eq(((struct sockaddr_vm *)&ss)->svm_port, 1024);

        conduit_endp_free(e);
        conduit_endp_free(any);
}
END_TEST

START_TEST(test_sockaddr_errors)
{
        struct sockaddr_in sin = { .sin_family = AF_INET };
        struct sockaddr_storage ss;
        conduit_endp *e = (conduit_endp *)&ss;

        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&sin, 4, &e), -EINVAL);
        ck_assert_ptr_eq(e, (conduit_endp *)&ss);
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = AF_APPLETALK;
        ck_assert_int_eq(conduit_endp_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), &e),
                         -EAFNOSUPPORT);
        ck_assert_ptr_eq(e, (conduit_endp *)&ss);
}
END_TEST

START_TEST(test_new_fd_tls)
{
        conduit_endp *fd = NULL, *fd0 = NULL, *inner = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL,
                     *t4 = NULL, *tu = NULL, *unix = NULL;
        conduit_endp *untouched = (conduit_endp *)&fd;

        ck_assert_int_eq(conduit_endp_new_fd(42, &fd), 0);
        ck_assert_int_eq(conduit_endp_get_kind(fd), CONDUIT_ENDP_FD);
        ck_assert_int_eq(conduit_endp_get_fd(fd), 42);
        assert_format(fd, "fd:42");
        check_roundtrip(fd, "new_fd(42)");
        ck_assert_int_eq(conduit_endp_new_fd(0, &fd0), 0);
        assert_format(fd0, "fd:0");
        ck_assert(!conduit_endp_equal(fd, fd0));
        ck_assert_int_eq(conduit_endp_new_fd(-1, &untouched), -EBADF);
        ck_assert_ptr_eq(untouched, (conduit_endp *)&fd);

        inner = parse_ok("tcp://192.0.2.7:443");
        ck_assert_int_eq(conduit_endp_new_tls(inner, "example.com", &t1), 0);
        ck_assert_int_eq(conduit_endp_get_kind(t1), CONDUIT_ENDP_TLS);
        ck_assert_ptr_nonnull(conduit_endp_get_inner(t1));
        ck_assert(conduit_endp_get_inner(t1) != inner); /* a copy */
        ck_assert(conduit_endp_equal(conduit_endp_get_inner(t1), inner));
        assert_format(t1, "tls+tcp://192.0.2.7:443?servername=example.com");
        ck_assert_str_eq(conduit_endp_get_option(t1, "servername"), "example.com");
        check_roundtrip(t1, "new_tls(tcp, example.com)");

        ck_assert_int_eq(conduit_endp_new_tls(inner, NULL, &t2), 0);
        assert_format(t2, "tls+tcp://192.0.2.7:443");
        check_roundtrip(t2, "new_tls(tcp, NULL)");
        ck_assert(!conduit_endp_equal(t1, t2));
        ck_assert(!conduit_endp_equal(t2, inner));

        ck_assert_int_eq(conduit_endp_new_tls(t2, "outer.example", &t3), 0);
        assert_format(t3, "tls+tls+tcp://192.0.2.7:443?servername=outer.example");
        check_roundtrip(t3, "new_tls(tls, outer.example)");
        ck_assert_int_eq(conduit_endp_new_tls(t1, NULL, &t4), 0);
        assert_format(t4, "tls+tls+tcp://192.0.2.7:443?inner.servername=example.com");
        check_roundtrip(t4, "new_tls(tls with servername, NULL)");

        unix = parse_ok("unix:///run/a.sock");
        ck_assert_int_eq(conduit_endp_new_tls(unix, "agent", &tu), 0);
        assert_format(tu, "tls+unix:///run/a.sock?servername=agent");
        check_roundtrip(tu, "new_tls(unix, agent)");

        untouched = (conduit_endp *)&fd;
        ck_assert_int_eq(conduit_endp_new_tls(NULL, "x", &untouched), -EINVAL);
        ck_assert_ptr_eq(untouched, (conduit_endp *)&fd);

        /* at most 16 TLS layers, as the parser allows: a 17th would print
         * to a URI that does not parse back */
        conduit_endp *deep = NULL;
        ck_assert_int_eq(conduit_endp_copy(t2, &deep), 0);
        for (int layers = 1; layers < 16; layers++) {
                conduit_endp *next = NULL;
                ck_assert_int_eq(conduit_endp_new_tls(deep, NULL, &next), 0);
                conduit_endp_free(deep);
                deep = next;
        }
        check_roundtrip(deep, "new_tls x16");
        ck_assert_int_eq(conduit_endp_new_tls(deep, NULL, &untouched), -EINVAL);
        ck_assert_ptr_eq(untouched, (conduit_endp *)&fd);
        conduit_endp_free(deep);

        conduit_endp_free(fd);
        conduit_endp_free(fd0);
        conduit_endp_free(inner);
        conduit_endp_free(t1);
        conduit_endp_free(t2);
        conduit_endp_free(t3);
        conduit_endp_free(t4);
        conduit_endp_free(tu);
        conduit_endp_free(unix);
}
END_TEST

START_TEST(test_null_arguments)
{
        conduit_endp *e = parse_ok("tcp://h:1");
        conduit_endp *out = e;
        char *s = (char *)"untouched";

        ck_assert_int_eq(conduit_endp_parse("tcp://h:1", NULL), -EINVAL);
        ck_assert_int_eq(conduit_endp_format(NULL, &s), -EINVAL);
        ck_assert_str_eq(s, "untouched");
        ck_assert_int_eq(conduit_endp_copy(NULL, &out), -EINVAL);
        ck_assert_ptr_eq(out, e);
        ck_assert(conduit_endp_equal(NULL, NULL));
        ck_assert(!conduit_endp_equal(NULL, e));
        ck_assert(!conduit_endp_equal(e, NULL));
        ck_assert_ptr_null(conduit_endp_free(NULL));
        ck_assert_ptr_null(conduit_endp_free(e));
}
END_TEST

/* ---- 3. accessors, equality, to_sockaddr --------------------------------------- */

START_TEST(test_accessors_tcp)
{
        conduit_endp *e = parse_ok("tcp://example.com:8080?nodelay=1&connect-timeout=1.5s");
        conduit_endp *w = parse_ok("tcp://:80");
        conduit_endp *z = parse_ok("tcp://[fe80::1%eth0]:81");

        ck_assert_int_eq(conduit_endp_get_kind(e), CONDUIT_ENDP_TCP);
        ck_assert_str_eq(conduit_endp_get_host(e), "example.com");
        ck_assert_int_eq(conduit_endp_get_port(e), 8080);
        ck_assert_int_eq(conduit_endp_get_cid(e), -1);
        ck_assert_int_eq(conduit_endp_get_fd(e), -1);
        ck_assert_ptr_null(conduit_endp_get_path(e, NULL));
        ck_assert_ptr_null(conduit_endp_get_inner(e));
        ck_assert(!conduit_endp_is_abstract(e));
        ck_assert_str_eq(conduit_endp_get_option(e, "nodelay"), "1");
        ck_assert_str_eq(conduit_endp_get_option(e, "connect_timeout"), "1500ms");
        ck_assert_ptr_null(conduit_endp_get_option(e, "keepalive"));
        ck_assert_ptr_null(conduit_endp_get_option(e, "bogus"));

        ck_assert_int_eq(conduit_endp_get_kind(w), CONDUIT_ENDP_TCP);
        ck_assert_ptr_null(conduit_endp_get_host(w));
        ck_assert_int_eq(conduit_endp_get_port(w), 80);
        ck_assert_int_eq(conduit_endp_get_port(z), 81);

        conduit_endp_free(e);
        conduit_endp_free(w);
        conduit_endp_free(z);
}
END_TEST

START_TEST(test_accessors_unix)
{
        conduit_endp *p = parse_ok("unix:///tmp/x.sock?mode=600");
        conduit_endp *sp = parse_ok("unix:///tmp/a%20b");
        conduit_endp *q = parse_ok("unix:///tmp/a%3Fb");
        conduit_endp *a = parse_ok("unix-abstract:a%00b%41");
        conduit_endp *hi = parse_ok("unix-abstract:%ff%fe");
        conduit_endp *empty = parse_ok("unix-abstract:");
        conduit_endp *l = parse_ok(uri_unix_200);
        const char *s;
        size_t n = 0;

        ck_assert_int_eq(conduit_endp_get_kind(p), CONDUIT_ENDP_UNIX);
        s = conduit_endp_get_path(p, &n);
        ck_assert_str_eq(s, "/tmp/x.sock");
        ck_assert_uint_eq(n, 11);
        ck_assert(!conduit_endp_is_abstract(p));
        ck_assert_str_eq(conduit_endp_get_option(p, "mode"), "0600");
        ck_assert_int_eq(conduit_endp_get_port(p), -1);
        ck_assert_ptr_null(conduit_endp_get_host(p));

        ck_assert_str_eq(conduit_endp_get_path(sp, NULL), "/tmp/a b");
        ck_assert_str_eq(conduit_endp_get_path(q, NULL), "/tmp/a?b");

        ck_assert(conduit_endp_is_abstract(a));
        s = conduit_endp_get_path(a, &n);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(n, 4);
        ck_assert(memcmp(s, "a\0bA", 4) == 0);

        s = conduit_endp_get_path(hi, &n);
        ck_assert_uint_eq(n, 2);
        ck_assert(memcmp(s, "\xff\xfe", 2) == 0);

        ck_assert(conduit_endp_is_abstract(empty));
        ck_assert_ptr_nonnull(conduit_endp_get_path(empty, &n));
        ck_assert_uint_eq(n, 0);

        /* a path longer than sun_path is kept whole */
        s = conduit_endp_get_path(l, &n);
        ck_assert_uint_eq(n, 200);
        ck_assert_str_eq(s, uri_unix_200 + strlen("unix://"));

        conduit_endp_free(p);
        conduit_endp_free(sp);
        conduit_endp_free(q);
        conduit_endp_free(a);
        conduit_endp_free(hi);
        conduit_endp_free(empty);
        conduit_endp_free(l);
}
END_TEST

START_TEST(test_accessors_vsock_hyperv)
{
        static const uint8_t parent[16] = { 0xa4, 0x2e, 0x7c, 0xda, 0xd0, 0x3f, 0x48, 0x0c,
                                            0x9c, 0xc2, 0xa4, 0xde, 0x20, 0xab, 0xb8, 0x78 };
        static const uint8_t svc1024[16] = { 0x00, 0x00, 0x04, 0x00, 0xfa, 0xcb, 0x11, 0xe6,
                                             0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3 };
        conduit_endp *v = parse_ok("vsock://host:1024?to_host");
        conduit_endp *any = parse_ok("vsock://-1:-1");
        conduit_endp *h = parse_ok("hyperv://{A42E7CDA-D03F-480C-9CC2-A4DE20ABB878}/1024");
        conduit_endp *hx = parse_ok("hyperv://parent/12345678-1234-5678-9abc-def012345678");
        conduit_endp *m = parse_ok("vsock-mux:///tmp/a:b:1024?handshake=strict");
        conduit_endp *t = parse_ok("tcp://h:1");
        uint8_t vmid[16], svc[16];
        size_t n = 0;

        ck_assert_int_eq(conduit_endp_get_kind(v), CONDUIT_ENDP_VSOCK);
        ck_assert_int_eq(conduit_endp_get_cid(v), 2);
        ck_assert_int_eq(conduit_endp_get_port(v), 1024);
        ck_assert_str_eq(conduit_endp_get_option(v, "to_host"), "1");
        ck_assert_int_eq(conduit_endp_get_cid(any), 4294967295LL);
        ck_assert_int_eq(conduit_endp_get_port(any), 4294967295LL);

        ck_assert_int_eq(conduit_endp_get_kind(h), CONDUIT_ENDP_HYPERV);
        ck_assert_int_eq(conduit_endp_get_hyperv(h, vmid, svc), 0);
        ck_assert(memcmp(vmid, parent, 16) == 0);
        ck_assert(memcmp(svc, svc1024, 16) == 0);
        ck_assert_int_eq(conduit_endp_get_port(h), 1024);
        ck_assert_int_eq(conduit_endp_get_port(hx), -1);
        ck_assert_int_eq(conduit_endp_get_cid(h), -1);
        memset(vmid, 0x5a, sizeof(vmid));
        ck_assert_int_eq(conduit_endp_get_hyperv(t, vmid, svc), -EINVAL);

        ck_assert_int_eq(conduit_endp_get_kind(m), CONDUIT_ENDP_VSOCK_MUX);
        ck_assert_str_eq(conduit_endp_get_path(m, &n), "/tmp/a:b");
        ck_assert_uint_eq(n, 8);
        ck_assert_int_eq(conduit_endp_get_port(m), 1024);
        ck_assert_str_eq(conduit_endp_get_option(m, "handshake"), "strict");

        conduit_endp_free(v);
        conduit_endp_free(any);
        conduit_endp_free(h);
        conduit_endp_free(hx);
        conduit_endp_free(m);
        conduit_endp_free(t);
}
END_TEST

START_TEST(test_accessors_other)
{
        conduit_endp *f = parse_ok("fd:7");
        conduit_endp *x = parse_ok("vchan://3/data");
        conduit_endp *u = parse_ok("unknown:nxdomain");
        conduit_endp *t = parse_ok("tls+tcp://h:443?servername=X.example&nodelay=1&"
                                   "min_version=TLSv1.3&pin=" PIN0_HEX "&keepalive=60,10,5");
        const conduit_endp *in;

        ck_assert_int_eq(conduit_endp_get_kind(f), CONDUIT_ENDP_FD);
        ck_assert_int_eq(conduit_endp_get_fd(f), 7);
        ck_assert_int_eq(conduit_endp_get_port(f), -1);

        ck_assert_int_eq(conduit_endp_get_kind(x), CONDUIT_ENDP_VCHAN);
        ck_assert_int_eq(conduit_endp_get_port(x), 3);
        ck_assert_str_eq(conduit_endp_get_path(x, NULL), "data");

        ck_assert_int_eq(conduit_endp_get_kind(u), CONDUIT_ENDP_UNKNOWN);
        ck_assert_str_eq(conduit_endp_get_host(u), "nxdomain");

        ck_assert_int_eq(conduit_endp_get_kind(t), CONDUIT_ENDP_TLS);
        ck_assert_str_eq(conduit_endp_get_host(t), "x.example");
        ck_assert_int_eq(conduit_endp_get_port(t), 443);
        ck_assert_int_eq(conduit_endp_get_fd(t), -1);
        ck_assert_str_eq(conduit_endp_get_option(t, "servername"), "x.example");
        ck_assert_str_eq(conduit_endp_get_option(t, "min_version"), "1.3");
        ck_assert_str_eq(conduit_endp_get_option(t, "pin"), PIN0_B64);
        /* transport options live on the inner endp */
        ck_assert_ptr_null(conduit_endp_get_option(t, "nodelay"));
        in = conduit_endp_get_inner(t);
        ck_assert_ptr_nonnull(in);
        ck_assert_int_eq(conduit_endp_get_kind(in), CONDUIT_ENDP_TCP);
        ck_assert_str_eq(conduit_endp_get_host(in), "h");
        ck_assert_str_eq(conduit_endp_get_option(in, "nodelay"), "1");
        ck_assert_str_eq(conduit_endp_get_option(in, "keepalive"), "60,10,5");
        ck_assert_ptr_null(conduit_endp_get_option(in, "servername"));
        ck_assert_ptr_null(conduit_endp_get_inner(in));

        conduit_endp_free(f);
        conduit_endp_free(x);
        conduit_endp_free(u);
        conduit_endp_free(t);
}
END_TEST

START_TEST(test_kind_name)
{
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_TCP), "tcp");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_UNIX), "unix");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_VSOCK), "vsock");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_HYPERV), "hyperv");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_VSOCK_MUX), "vsock-mux");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_FD), "fd");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_VCHAN), "vchan");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_TLS), "tls");
        ck_assert_str_eq(conduit_endp_kind_name(CONDUIT_ENDP_UNKNOWN), "unknown");
}
END_TEST

/* Pairs of URIs naming different endps. */
static const char *const unequal[][2] = {
        { "tcp://h:1", "tcp://h:2" },
        { "tcp://h:1", "tcp://g:1" },
        { "tcp://h:1?nodelay=1", "tcp://h:1" },
        { "tcp://h:1?nodelay=1", "tcp://h:1?nodelay=0" },
        { "tcp://h:1?connect_timeout=1", "tcp://h:1?connect_timeout=2" },
        { "tcp://h:1?keepalive=60,10,5", "tcp://h:1?keepalive=60,10,6" },
        { "tcp://[fe80::1%eth0]:1", "tcp://[fe80::1%eth1]:1" },
        { "tcp://[fe80::1%eth0]:1", "tcp://[fe80::1]:1" },
        { "tcp4://h:1", "tcp6://h:1" },
        { "tcp4://h:1", "tcp://h:1" },
        { "tcp6://h:1", "tcp://h:1" },
        { "tcp4://:80", "tcp6://:80" },
        { "tcp://:80", "tcp4://:80" },
        { "tcp://192.0.2.1:80", "tcp://192.0.2.2:80" },
        { "unix:///a", "unix-abstract:/a" },
        { "unix:a", "unix:///a" },
        { "unix:", "unix-abstract:" },
        { "unix-abstract:a", "unix-abstract:a%00" },
        { "unix:///a?mode=0600", "unix:///a?mode=0660" },
        { "vsock://2:1", "vsock://3:1" },
        { "vsock://2:1", "vsock://2:2" },
        { "vsock://2:1", "vsock://2:1?to_host=1" },
        { "hyperv://parent/1", "hyperv://children/1" },
        { "hyperv://parent/1", "hyperv://parent/2" },
        { "vsock-mux:///a:1", "vsock-mux:///a:2" },
        { "vsock-mux:///a:1", "vsock-mux:///a:1?handshake=strict" },
        { "vsock-mux:///a:1", "unix:///a" },
        { "fd:1", "fd:2" },
        { "vchan://1/a", "vchan://2/a" },
        { "vchan://1/a", "vchan://1/b" },
        { "tls+tcp://h:1", "tcp://h:1" },
        { "tls+tcp://h:1?servername=a", "tls+tcp://h:1?servername=b" },
        { "tls+tcp://h:1?verify=0", "tls+tcp://h:1" },
        { "tls+tcp://h:1?nodelay=1", "tls+tcp://h:1" },
        { "tls+tls+tcp://h:1", "tls+tcp://h:1" },
        { "tls+tls+tcp://h:1?servername=a", "tls+tls+tcp://h:1?inner.servername=a" },
        { "unknown:a", "unknown:b" },
};

/* Different spellings of one endp. */
static const char *const equal_pairs[][2] = {
        { "tcp://h:1?connect_timeout=1000ms", "tcp://h:1?connect_timeout=1s" },
        { "vsock://-1:5", "vsock://any:5" },
        { "tcp://[fe80::1%25eth0]:1", "tcp://[fe80::1%eth0]:1" },
        { "hyperv://parent/1024", "hvsock://a42e7cda-d03f-480c-9cc2-a4de20abb878/"
                                  "00000400-facb-11e6-bd58-64006a7986d3" },
        { "tls+tcp://h:1?sni=a", "tls+tcp://h:1?servername=A" },
};

START_TEST(test_equal)
{
        char b[128];

        for (size_t i = 0; i < sizeof(unequal) / sizeof(unequal[0]); i++) {
                conduit_endp *a = parse_ok(unequal[i][0]);
                conduit_endp *c = parse_ok(unequal[i][1]);

                ck_assert_msg(!conduit_endp_equal(a, c) && !conduit_endp_equal(c, a),
                              "\"%s\" and \"%s\" compare equal", unequal[i][0], unequal[i][1]);
                ck_assert(conduit_endp_equal(a, a));
                conduit_endp_free(a);
                conduit_endp_free(c);
        }
        for (size_t i = 0; i < sizeof(equal_pairs) / sizeof(equal_pairs[0]); i++) {
                conduit_endp *a = parse_ok(equal_pairs[i][0]);
                conduit_endp *c = parse_ok(equal_pairs[i][1]);

                ck_assert_msg(conduit_endp_equal(a, c) && conduit_endp_equal(c, a),
                              "\"%s\" and \"%s\" differ", show(equal_pairs[i][0], b, sizeof(b)),
                              equal_pairs[i][1]);
                conduit_endp_free(a);
                conduit_endp_free(c);
        }
}
END_TEST

START_TEST(test_to_sockaddr)
{
        struct sockaddr_storage ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        struct in6_addr want6;
        socklen_t len;
        conduit_endp *e;

        e = parse_ok("tcp://[2001:db8::1]:443");
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), 0);
        ck_assert_int_eq(len, sizeof(struct sockaddr_in6));
        ck_assert_int_eq(s6->sin6_family, AF_INET6);
        ck_assert_int_eq(ntohs(s6->sin6_port), 443);
        ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", &want6), 1);
        ck_assert(memcmp(&s6->sin6_addr, &want6, sizeof(want6)) == 0);
        conduit_endp_free(e);

        /* a host name not yet resolved; outputs untouched */
        e = parse_ok("tcp://example.com:80");
        len = 12345;
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), -EDESTADDRREQ);
        ck_assert_int_eq(len, 12345);
        conduit_endp_free(e);

        e = parse_ok("unix:///tmp/x.sock");
        memset(&ss, 0x5a, sizeof(ss));
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), 0);
        ck_assert_int_eq(su->sun_family, AF_UNIX);
        ck_assert_str_eq(su->sun_path, "/tmp/x.sock");
        ck_assert(len >= offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/x.sock"));
        ck_assert(len <= sizeof(struct sockaddr_un));
        conduit_endp_free(e);

        /* an abstract address's length is exact: NUL + name, nothing after */
        e = parse_ok("unix-abstract:a%00b");
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), 0);
        ck_assert_int_eq(su->sun_family, AF_UNIX);
        ck_assert_int_eq(len, offsetof(struct sockaddr_un, sun_path) + 4);
        ck_assert(memcmp(su->sun_path, "\0a\0b", 4) == 0);
        conduit_endp_free(e);

        e = parse_ok(uri_abs_107);
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), 0);
        ck_assert_int_eq(len, offsetof(struct sockaddr_un, sun_path) + 108);
        ck_assert_int_eq(su->sun_path[0], 0);
        ck_assert_int_eq(su->sun_path[107], 'n');
        conduit_endp_free(e);

        e = parse_ok(uri_unix_200);
        len = 12345;
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), -ENAMETOOLONG);
        ck_assert_int_eq(len, 12345);
        conduit_endp_free(e);

        e = parse_ok("vsock://any:any");
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), 0);
        ck_assert_int_eq(((struct sockaddr_vm *)&ss)->svm_family, AF_VSOCK);
        ck_assert_uint_eq(((struct sockaddr_vm *)&ss)->svm_cid, VMADDR_CID_ANY);
        ck_assert_uint_eq(((struct sockaddr_vm *)&ss)->svm_port, VMADDR_PORT_ANY);
        conduit_endp_free(e);

        e = parse_ok("fd:3");
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), -EAFNOSUPPORT);
        conduit_endp_free(e);
        e = parse_ok("tls+tcp://192.0.2.1:443");
        ck_assert_int_eq(conduit_endp_to_sockaddr(e, &ss, &len), -EAFNOSUPPORT);
        conduit_endp_free(e);
}
END_TEST

/* ---- 4. the context's service table -------------------------------------------- */

static conduit_ctx *new_ctx(void)
{
        conduit_ctx *ctx = NULL;

        ck_assert_int_eq(conduit_ctx_new(&ctx), 0);
        ck_assert_ptr_nonnull(ctx);
        return ctx;
}

static void assert_ctx_parse(conduit_ctx *ctx, const char *uri, int rc, const char *canon)
{
        conduit_endp *e = NULL;
        int r = conduit_ctx_parse(ctx, uri, &e);

        ck_assert_msg(r == rc, "ctx_parse(\"%s\") = %d (%s), expected %d (%s); detail: %s", uri, r,
                      conduit_strerror(r), rc, conduit_strerror(rc),
                      conduit_ctx_error_message(ctx));
        if (rc != 0) {
                ck_assert_ptr_null(e);
                ck_assert_msg(conduit_ctx_error_message(ctx)[0] != '\0',
                              "ctx_parse(\"%s\") failed without a detail message", uri);
                return;
        }
        if (canon) {
                char *s = format_ok(e);

                ck_assert_msg(strcmp(s, canon) == 0,
                              "ctx_parse(\"%s\") prints \"%s\", expected \"%s\"", uri, s, canon);
                free(s);
        }
        conduit_endp_free(e);
}

START_TEST(test_ctx_add_service)
{
        conduit_ctx *ctx = new_ctx();
        conduit_endp *e = NULL;
        uint16_t port = 1;
        bool tls = true;

        ck_assert_int_eq(conduit_ctx_add_service(ctx, "xyzzy-conduit", 7000, true), 0);
        assert_ctx_parse(ctx, "xyzzy-conduit://h", 0, "tls+tcp://h:7000");
        assert_ctx_parse(ctx, "xyzzy-conduit://h:7001/", 0, "tls+tcp://h:7001");
        assert_ctx_parse(ctx, "XYZZY-Conduit://H", 0, "tls+tcp://h:7000");
        /* the built-in grammar alone does not know it */
        ck_assert_int_eq(conduit_endp_parse("xyzzy-conduit://h", &e), CONDUIT_E_SCHEME);
        ck_assert_ptr_null(e);

        /* replacing an entry */
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "xyzzy-conduit", 7002, false), 0);
        assert_ctx_parse(ctx, "xyzzy-conduit://h", 0, "tcp://h:7002");

        /* a user entry wins over a built-in one, in this context only */
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "https", 8443, false), 0);
        assert_ctx_parse(ctx, "https://h", 0, "tcp://h:8443");
        e = parse_ok("https://h");
        assert_format(e, "tls+tcp://h:443");
        e = conduit_endp_free(e);

        /* the rest of the grammar is unchanged in a context */
        assert_ctx_parse(ctx, "imaps://h", 0, "tls+tcp://h:993");
        assert_ctx_parse(ctx, "TCP:h:https", 0, NULL);
        assert_ctx_parse(ctx, "tcp://h", CONDUIT_E_URI, NULL);
        assert_ctx_parse(ctx, "tcp://h:1?bogus=1", CONDUIT_E_OPTION, NULL);

        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "xyzzy-conduit", &port, &tls), 0);
        ck_assert_uint_eq(port, 7002);
        ck_assert(!tls);
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "https", &port, &tls), 0);
        ck_assert_uint_eq(port, 8443);
        ck_assert(!tls);
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "imaps", &port, &tls), 0);
        ck_assert_uint_eq(port, 993);
        ck_assert(tls);
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "redis", &port, &tls), 0);
        ck_assert_uint_eq(port, 6379);
        ck_assert(!tls);
        port = 1;
        tls = true;
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "no-such-scheme-conduit", &port, &tls),
                         CONDUIT_E_SCHEME);
        ck_assert_uint_eq(port, 1);
        ck_assert(tls);

        ck_assert_int_eq(conduit_ctx_add_service(ctx, "tcp", 1, false), -EEXIST);
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "unix", 1, false), -EEXIST);
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "vsock", 1, false), -EEXIST);
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "myproto", 0, false), -EINVAL);
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "", 80, false), -EINVAL);
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "bad scheme", 80, false), -EINVAL);
        /* tcp still means tcp */
        assert_ctx_parse(ctx, "tcp://h:5", 0, "tcp://h:5");

        conduit_ctx_free(ctx);
}
END_TEST

START_TEST(test_ctx_services_file)
{
        static const char contents[] = "# /etc/services format, written by test-uri\n"
                                       "\n"
                                       "myproto\t\t4242/tcp\tmyalias othername\t# a comment\n"
                                       "myproto\t\t4242/udp\tmyalias\n"
                                       "udponly\t\t5353/udp\t\t\t# TCP entries only\n"
                                       "http\t\t8080/tcp\t\t\t# the built-in entry wins\n"
                                       "#commented\t4444/tcp\n"
                                       "spaced 4545/tcp\n";
        char path[] = "/tmp/test-uri-services-XXXXXX";
        conduit_ctx *ctx = new_ctx();
        uint16_t port = 0;
        bool tls = true;
        FILE *f;
        int fd;

        fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        f = fdopen(fd, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(contents, 1, sizeof(contents) - 1, f), sizeof(contents) - 1);
        ck_assert_int_eq(fclose(f), 0);

        ck_assert_int_eq(conduit_ctx_set_services_file(ctx, path), 0);
        assert_ctx_parse(ctx, "myproto://h", 0, "tcp://h:4242");
        assert_ctx_parse(ctx, "myproto://h:1", 0, "tcp://h:1");
        assert_ctx_parse(ctx, "MyProto://H", 0, "tcp://h:4242");
        assert_ctx_parse(ctx, "myalias://h", 0, "tcp://h:4242");
        assert_ctx_parse(ctx, "othername://h", 0, "tcp://h:4242");
        assert_ctx_parse(ctx, "spaced://h", 0, "tcp://h:4545");
        assert_ctx_parse(ctx, "udponly://h", CONDUIT_E_SCHEME, NULL);
        assert_ctx_parse(ctx, "commented://h", CONDUIT_E_SCHEME, NULL);
        assert_ctx_parse(ctx, "comment://h", CONDUIT_E_SCHEME, NULL);
        assert_ctx_parse(ctx, "http://h", 0, "tcp://h:80");
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "myproto", &port, &tls), 0);
        ck_assert_uint_eq(port, 4242);
        ck_assert(!tls);
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "myalias", &port, &tls), 0);
        ck_assert_uint_eq(port, 4242);

        /* a user entry wins over the file */
        ck_assert_int_eq(conduit_ctx_add_service(ctx, "myproto", 5000, true), 0);
        assert_ctx_parse(ctx, "myproto://h", 0, "tls+tcp://h:5000");

        /* file disabled */
        ck_assert_int_eq(conduit_ctx_set_services_file(ctx, NULL), 0);
        assert_ctx_parse(ctx, "othername://h", CONDUIT_E_SCHEME, NULL);
        assert_ctx_parse(ctx, "myalias://h", CONDUIT_E_SCHEME, NULL);
        assert_ctx_parse(ctx, "myproto://h", 0, "tls+tcp://h:5000");
        assert_ctx_parse(ctx, "https://h", 0, "tls+tcp://h:443");
        port = 7;
        ck_assert_int_eq(conduit_ctx_lookup_service(ctx, "othername", &port, &tls),
                         CONDUIT_E_SCHEME);
        ck_assert_uint_eq(port, 7);

        unlink(path);
        conduit_ctx_free(ctx);
}
END_TEST

/* ---- 5. conduit_strerror ---------------------------------------------------------- */

START_TEST(test_strerror)
{
        static const int codes[] = {
                CONDUIT_E_URI,          CONDUIT_E_SCHEME,     CONDUIT_E_OPTION,
                CONDUIT_E_OPTION_VALUE, CONDUIT_E_NOT_FOUND,  CONDUIT_E_UNSUPPORTED,
                CONDUIT_E_TLS,          CONDUIT_E_TLS_VERIFY, CONDUIT_E_TLS_TRUNCATED,
                CONDUIT_E_PROTOCOL,
        };
        const size_t n = sizeof(codes) / sizeof(codes[0]);
        const char *unknown = conduit_strerror(-4999);
        const char *m;

        ck_assert_ptr_nonnull(unknown);
        for (size_t i = 0; i < n; i++) {
                m = conduit_strerror(codes[i]);
                ck_assert_msg(m != NULL && m[0] != '\0', "conduit_strerror(%d) is empty", codes[i]);
                ck_assert_msg(strcmp(m, unknown) != 0,
                              "conduit_strerror(%d) = \"%s\", the text of an unknown code",
                              codes[i], m);
                for (size_t j = 0; j < i; j++)
                        ck_assert_msg(strcmp(m, conduit_strerror(codes[j])) != 0,
                                      "conduit_strerror(%d) == conduit_strerror(%d) = \"%s\"",
                                      codes[i], codes[j], m);
        }

        m = conduit_strerror(-ECONNREFUSED);
        ck_assert_msg(m && strcasestr(m, "refused"), "-ECONNREFUSED: \"%s\"", m ? m : "(NULL)");
        m = conduit_strerror(-ETIMEDOUT);
        ck_assert_msg(m && strcasestr(m, "timed out"), "-ETIMEDOUT: \"%s\"", m ? m : "(NULL)");
        m = conduit_strerror(-ENAMETOOLONG);
        ck_assert_msg(m && strcasestr(m, "too long"), "-ENAMETOOLONG: \"%s\"", m ? m : "(NULL)");
        ck_assert_str_eq(conduit_strerror(ECONNRESET), conduit_strerror(-ECONNRESET));
        ck_assert_str_ne(conduit_strerror(-EPIPE), conduit_strerror(-ECONNRESET));

        ck_assert_ptr_nonnull(conduit_strerror(0));
        ck_assert_ptr_nonnull(conduit_strerror(-4000));
        ck_assert_ptr_nonnull(conduit_strerror(-4011));
        ck_assert_ptr_nonnull(conduit_strerror(-99999));
        ck_assert_ptr_nonnull(conduit_strerror(INT_MIN));
        ck_assert_ptr_nonnull(conduit_strerror(INT_MAX));
}
END_TEST

/* ---- runner ---------------------------------------------------------------------- */

static Suite *uri_suite(void)
{
        Suite *s = suite_create("uri");
        TCase *tc;

        tc = tcase_create("table");
        tcase_add_loop_test(tc, test_table, 0, N_CASES);
        suite_add_tcase(s, tc);

        tc = tcase_create("roundtrip");
        tcase_add_loop_test(tc, test_table_roundtrip, 0, n_ok_rows);
        tcase_add_test(tc, test_sockaddr_inet);
        tcase_add_test(tc, test_sockaddr_unix);
        tcase_add_test(tc, test_sockaddr_vsock);
        tcase_add_test(tc, test_sockaddr_errors);
        tcase_add_test(tc, test_new_fd_tls);
        tcase_add_test(tc, test_null_arguments);
        suite_add_tcase(s, tc);

        tc = tcase_create("accessors");
        tcase_add_test(tc, test_accessors_tcp);
        tcase_add_test(tc, test_accessors_unix);
        tcase_add_test(tc, test_accessors_vsock_hyperv);
        tcase_add_test(tc, test_accessors_other);
        tcase_add_test(tc, test_kind_name);
        tcase_add_test(tc, test_equal);
        tcase_add_test(tc, test_to_sockaddr);
        suite_add_tcase(s, tc);

        tc = tcase_create("services");
        tcase_add_test(tc, test_ctx_add_service);
        tcase_add_test(tc, test_ctx_services_file);
        suite_add_tcase(s, tc);

        tc = tcase_create("strerror");
        tcase_add_test(tc, test_strerror);
        suite_add_tcase(s, tc);

        return s;
}

int main(int argc, char **argv)
{
        tc_init(argc, argv);
        build_long_inputs();
        return tc_run(uri_suite());
}
