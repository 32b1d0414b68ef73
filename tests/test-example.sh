#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# examples/echo-server.c for real (TAP): over TCP, a Unix socket and TLS
# over TCP, socat and conduit-cat send 1 MiB each, shut down their write
# side and must read exactly those bytes back before the echo server's EOF,
# one client alone and four at once; a client that never reads must stop
# being read (and still get everything back); SIGTERM and SIGINT end the
# server with exit status 0, even with a client connected; bad usage exits
# 2. docs/event.md must show the example exactly as it is.
#
# Environment (set by tests/meson.build): CONDUIT_ECHO_SERVER, the example;
# CONDUIT_CAT; CONDUIT_SRCDIR; CONDUIT_TESTDIR. CONDUIT_TEST_VALGRIND=1 runs
# the echo server under valgrind memcheck (definite and indirect leaks are
# errors, and possible ones too, exit status 99), so a connection it fails
# to free on SIGTERM fails the test.
#
# Completion is proven by EOF, never by timing: a client's output is
# complete once it read the server's EOF, which the server sends only after
# echoing everything that came before the client's own EOF. Every wait is
# bounded, every background process is killed on exit and everything lives
# in one temporary directory.
set -u

EXAMPLE=${CONDUIT_ECHO_SERVER:?CONDUIT_ECHO_SERVER must name the echo-server example}
CAT_BIN=${CONDUIT_CAT:?CONDUIT_CAT must name the conduit-cat binary}
SRCDIR=${CONDUIT_SRCDIR:-$(dirname "$0")/..}
TESTDIR=${CONDUIT_TESTDIR:-$(dirname "$0")}
# shellcheck source=tests/tap-lib.sh
. "$(dirname "$0")/tap-lib.sh" || exit 1

# SERVER: the echo server's command, under valgrind if asked (TO follows),
# where "possibly lost" counts too: a connection left unfreed at exit is
# still pointed into from freed memory. The clients run without it.
conduit_cat_command "$EXAMPLE" 60
SERVER=("${CAT[@]/#--errors-for-leak-kinds=definite,indirect/--errors-for-leak-kinds=definite,indirect,possible}")
CAT=("$CAT_BIN")
tap_tmpdir "${TMPDIR:-/tmp}/conduit-example-test.XXXXXX"
tap_plan 13
make_test_data

have_openssl=false
command -v openssl >/dev/null && have_openssl=true
if $have_openssl; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
                -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
                -keyout "$TMP/k.pem" -out "$TMP/c.pem" >"$TMP/openssl.log" 2>&1 || have_openssl=false
fi

# ---- the server ---------------------------------------------------------------------

# Starts the echo server on $1; sets SERVER_PID and BOUND, the URI it
# printed on stdout.
start_server() {
        "${SERVER[@]}" "$1" >"$D/server.out" 2>"$D/server.err" &
        SERVER_PID=$!
        BG+=("$SERVER_PID")
        local i
        for ((i = 0; i < TO * 10; i++)); do
                BOUND=$(head -n 1 "$D/server.out" 2>/dev/null)
                [ -n "$BOUND" ] && return 0
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.1
        done
        why "the echo server printed no URI for $1"
        return 1
}

# Sends signal $1 to the server: it must exit with status 0.
stop_server() {
        local rc
        kill "-$1" "$SERVER_PID"
        wait_pid "$SERVER_PID"
        rc=$?
        [ "$rc" = 0 ] || { why "after SIG$1 the echo server exited with $rc (99: valgrind errors)"; return 1; }
}

# What a client of kind $1 (socat or conduit-cat) uses to reach BOUND over
# transport $2.
client_addr() {
        local port=${BOUND##*:}
        case $1:$2 in
        socat:tcp) echo "TCP4:127.0.0.1:$port" ;;
        socat:unix) echo "UNIX-CONNECT:${BOUND#unix://}" ;;
        socat:tls) echo "OPENSSL:127.0.0.1:$port,cafile=$TMP/c.pem" ;;
        conduit-cat:tls) echo "tls+tcp://127.0.0.1:$port?cafile=$TMP/c.pem" ;;
        conduit-cat:*) echo "$BOUND" ;;
        esac
}

# Client $3 of kind $1 over transport $2: sends file $4, shuts down its
# write side at its end, writes what comes back until EOF to out$3.
client() {
        case $1 in
        socat) timeout "$TO" socat -t "$TO" - "$(client_addr socat "$2")" \
                <"$4" >"$D/out$3" 2>"$D/client$3.err" ;;
        conduit-cat) timeout "$TO" "${CAT[@]}" "$(client_addr conduit-cat "$2")" \
                <"$4" >"$D/out$3" 2>"$D/client$3.err" ;;
        esac
}

listen_uri_for() { # transport
        case $1 in
        tcp) echo "tcp://127.0.0.1:0" ;;
        unix) echo "unix://$D/e.sock" ;;
        tls) echo "tls+tcp://127.0.0.1:0?cert=$TMP/c.pem&key=$TMP/k.pem" ;;
        esac
}

# ---- echoes ----------------------------------------------------------------------------

# One client, 1 MiB.
echo_one() { # transport client-kind
        start_server "$(listen_uri_for "$1")" || return 1
        client "$2" "$1" 1 "$TMP/f1"
        local rc=$?
        [ "$rc" = 0 ] || { why "$2 exited with $rc"; return 1; }
        cmp -s "$D/out1" "$TMP/f1" ||
                { why "$2 got $(wc -c <"$D/out1") bytes back, not the 1 MiB it sent"; return 1; }
        stop_server TERM
}

# Four clients at once, socat and conduit-cat, with different data; then
# SIGTERM.
echo_many() { # transport
        local k pids=() kind in rc bad=0
        start_server "$(listen_uri_for "$1")" || return 1
        for k in 1 2 3 4; do
                kind=socat in=$TMP/f1
                ((k % 2 == 0)) && kind=conduit-cat in=$TMP/f2
                client "$kind" "$1" "$k" "$in" &
                pids+=($!)
                BG+=($!)
        done
        for k in 1 2 3 4; do
                wait_pid "${pids[k - 1]}"
                rc=$?
                [ "$rc" = 0 ] || { why "client $k exited with $rc"; bad=1; }
                in=$TMP/f1
                ((k % 2 == 0)) && in=$TMP/f2
                cmp -s "$D/out$k" "$in" ||
                        { why "client $k got $(wc -c <"$D/out$k") bytes back, not its 1 MiB"; bad=1; }
        done
        stop_server TERM || bad=1
        return "$bad"
}

for tr in tcp unix tls; do
        one=socat
        [ "$tr" = tls ] && one=conduit-cat
        name_one="$tr: one client ($one): 1 MiB back byte for byte before EOF, after its half-close"
        name_many="$tr: four clients at once (socat, conduit-cat), 1 MiB each; then SIGTERM: exit 0"
        if ! $have_socat; then
                skip "$name_one" "socat not installed"
                skip "$name_many" "socat not installed"
        elif [ "$tr" = tls ] && ! $have_openssl; then
                skip "$name_one" "openssl not installed"
                skip "$name_many" "openssl not installed"
        else
                t "$name_one" echo_one "$tr" "$one"
                t "$name_many" echo_many "$tr"
        fi
done

# ---- backpressure ------------------------------------------------------------------------

# A client that sends and never reads: once the server's write side is
# blocked it must stop reading, so the client's sends stall (a server that
# kept reading would take the whole 64 MiB). The client then shuts down
# its write side and must get back exactly what it sent.
backpressure() {
        start_server "unix://$D/e.sock" || return 1
        timeout "$TO" python3 - "${BOUND#unix://}" "$TO" >"$D/py.out" 2>"$D/py.err" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
chunk = os.urandom(65536)
sent = bytearray()
s.settimeout(2)  # how long a stalled send waits: not a bound on the server
while len(sent) < 64 << 20:
    try:
        n = s.send(chunk)
    except socket.timeout:
        break
    sent += chunk[:n]
else:
    print("the server read all 64 MiB without ever stopping")
    sys.exit(1)
s.settimeout(float(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
if got != sent:
    print("sent %d bytes, got %d back%s" % (len(sent), len(got), "" if len(got) != len(sent) else " (different)"))
    sys.exit(1)
print("stalled after %d bytes; all came back" % len(sent))
PY
        local rc=$?
        [ "$rc" = 0 ] || { why "the client exited with $rc: $(cat "$D/py.out")"; return 1; }
        stop_server TERM
}
NAME_BP="backpressure: a client that never reads stops being read, and still gets all of it back"
if $have_python; then
        t "$NAME_BP" backpressure
else
        skip "$NAME_BP" "python3 not installed"
fi

# ---- signals with a client connected -------------------------------------------------------

# A client connected and idle (its first line echoed, its stdin still
# open) when SIGINT comes: the server frees the connection and exits 0.
signal_with_client() {
        local i
        start_server "unix://$D/e.sock" || return 1
        mkfifo "$D/in"
        # exec: the pid killed at the end is the sleep itself
        { printf 'hello\n'; exec sleep "$TO"; } >"$D/in" 2>/dev/null &
        BG+=($!)
        timeout "$TO" socat -t "$TO" - "UNIX-CONNECT:${BOUND#unix://}" <"$D/in" >"$D/out" \
                2>>"$D/socat.err" &
        BG+=($!)
        for ((i = 0; i < TO * 10; i++)); do
                grep -q '^hello$' "$D/out" 2>/dev/null && break
                sleep 0.1
        done
        grep -q '^hello$' "$D/out" || { why "the first line was not echoed"; return 1; }
        stop_server INT
}
NAME_SIG="SIGINT with a client connected mid-stream: exit 0, the connection freed"
if $have_socat; then
        t "$NAME_SIG" signal_with_client
else
        skip "$NAME_SIG" "socat not installed"
fi

# ---- usage ---------------------------------------------------------------------------------

exits() { # expected-status args...
        local want=$1 rc
        shift
        timeout "$TO" "${SERVER[@]}" "$@" </dev/null >"$D/out" 2>"$D/server.err"
        rc=$?
        [ "$rc" = "$want" ] || { why "exit status $rc, expected $want"; return 1; }
        [ -s "$D/server.err" ] || { why "no message on stderr"; return 1; }
        [ ! -s "$D/out" ] || { why "stdout not empty: $(head -c 200 "$D/out")"; return 1; }
}
t "usage: no URI exits 2" exits 2
t "usage: two URIs exit 2" exits 2 tcp://127.0.0.1:0 tcp://127.0.0.1:0
t "usage: an option (--help) exits 2" exits 2 --help
t "a URI it cannot listen on (malformed) exits 1 with the reason" exits 1 tcp://127.0.0.1

# ---- the guide shows the example as it is ---------------------------------------------------

doc_copy() {
        local doc=$SRCDIR/docs/event.md
        [ -f "$doc" ] || { why "no $doc"; return 1; }
        # the fenced block between the markers, without the fences
        awk '/^<!-- echo-server-end -->$/ { f = 0 } f { print } /^<!-- echo-server-begin -->$/ { f = 1 }' \
                "$doc" | sed '1{/^```c$/d}' | sed '${/^```$/d}' >"$D/doc.c"
        [ -s "$D/doc.c" ] || { why "no echo-server block between the markers in docs/event.md"; return 1; }
        diff -u "$SRCDIR/examples/echo-server.c" "$D/doc.c" >"$D/diff.err" ||
                { why "docs/event.md differs from examples/echo-server.c"; return 1; }
}
t "docs/event.md shows examples/echo-server.c exactly" doc_copy

tap_finish
