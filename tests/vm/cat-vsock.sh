#!/bin/bash
# SPDX-License-Identifier: MIT
# conduit-cat over AF_VSOCK with socat as the independent peer (TAP). Runs
# only inside the QEMU guest of tests/vm/ (guest-tests.sh), whose one vsock
# transport is the loopback: CID 1 is the guest itself.
#
# As in tests/test-cat.sh, half-close is proven by ordering, never by
# timing: a reply that can only exist after the peer saw conduit-cat's EOF,
# and data that conduit-cat's stdin produces only after conduit-cat has
# passed the peer's EOF on to its stdout. Every wait is bounded.
#
# Waiting for socat's listener without using up its one connection: the
# conduit-cat client connects with retry= (refused until socat listens).
set -u

if [ "${CONDUIT_VM_GUEST:-0}" != 1 ] || [ ! -e /sys/module/vsock_loopback ]; then
        echo "1..0 # SKIP runs only inside the QEMU guest of tests/vm/"
        exit 0
fi

# tap-lib.sh: tests/tap-lib.sh, which run-vm-tests.sh puts next to this
# script in the guest.
# shellcheck source=tests/tap-lib.sh
. "$(dirname "$0")/tap-lib.sh" || exit 1

CAT=${CONDUIT_CAT:-conduit-cat}
TO=120 # seconds any one step may take before it counts as hung (TCG is slow)
tap_tmpdir /tmp/cat-vsock.XXXXXX
tap_plan 12
make_test_data

PORT=20000
next_port() { PORT=$((PORT + 1)); }

# ---- data, reply and late exchanges (as in tests/test-cat.sh) ------------------

# The two sides of each kind of exchange and its check: cat_side, socat_side
# and check_result of tap-lib.sh.

# conduit-cat connects to URI $3 (retrying until socat listens); socat
# listens on VSOCK-LISTEN.
cat_client() { # kind, uri-format (%d: the port)
        local kind=$1 uri rc pid
        cp "$TMP/f1" "$TMP/f2" "$D/"
        next_port
        # shellcheck disable=SC2059
        uri=$(printf "$2" "$PORT")
        timeout "$TO" socat -d -d -t 30 "VSOCK-LISTEN:$PORT" "$(socat_side "$kind")" \
                2>"$D/socat.err" &
        pid=$!
        BG+=("$pid")
        # socat's own address forms take options after a comma
        case $uri in
        VSOCK-*) uri+=",retry=60s" ;;
        *) uri+="?retry=60s" ;;
        esac
        timeout "$TO" bash -c "$(cat_side "$kind")" _ "$CAT" -v "$uri"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        wait_pid "$pid" || { why "socat exited with $?"; return 1; }
        check_result "$kind" || return 1
        grep -q "^conduit-cat: connected to " "$D/cat.err" || { why "no 'connected to' line"; return 1; }
}

# conduit-cat listens on vsock://any:PORT; socat connects to CID 1.
cat_listener() { # kind
        local kind=$1 rc pid uri
        cp "$TMP/f1" "$TMP/f2" "$D/"
        next_port
        timeout "$TO" bash -c "$(cat_side "$kind")" _ "$CAT" -v -l "vsock://any:$PORT" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        [ "$uri" = "vsock://any:$PORT" ] || { why "listening on '$uri'"; return 1; }
        timeout "$TO" socat -d -d -t 30 "VSOCK-CONNECT:1:$PORT" "$(socat_side "$kind")" \
                2>"$D/socat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "socat exited with $rc"; return 1; }
        wait_pid "$pid"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        check_result "$kind"
}

describe() {
        case $1 in
        data) echo "1 MiB both ways" ;;
        reply) echo "half-close: its stdin EOF reaches socat, the reply still arrives" ;;
        late) echo "half-close: socat's EOF closes its stdout, its stdin still flows" ;;
        esac
}

for kind in data reply late; do
        t "client over vsock (socat VSOCK-LISTEN): $(describe $kind)" cat_client "$kind" "vsock://1:%d"
done
for kind in data reply late; do
        t "listener on vsock://any:PORT (socat VSOCK-CONNECT): $(describe $kind)" cat_listener "$kind"
done
t "client over hyperv://loopback/PORT-GUID (socat VSOCK-LISTEN): $(describe data)" \
        cat_client data "hyperv://loopback/%08x-facb-11e6-bd58-64006a7986d3"
t "client with socat's own address form VSOCK-CONNECT:1:PORT: $(describe reply)" \
        cat_client reply "VSOCK-CONNECT:1:%d"

# ---- peer CID and port in -v ------------------------------------------------------

# The port socat's side of the connection has, as socat logs it
# ("... local address AF=40 cid:1 port:N" or "VSOCK:1:N"), or nothing.
socat_local_port() {
        sed -n 's/.*successfully connected from local address .*port:\([0-9][0-9]*\).*/\1/p;
                s/.*successfully connected from local address VSOCK:[0-9]*:\([0-9][0-9]*\).*/\1/p' \
                "$1" | head -n 1
}

verbose_peer() {
        local pid uri rc port
        next_port
        timeout "$TO" "$CAT" -v -l "vsock://any:$PORT" </dev/null >"$D/out" 2>"$D/cat.err" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        echo hello | timeout "$TO" socat -d -d -t 30 - "VSOCK-CONNECT:1:$PORT" >/dev/null 2>"$D/socat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "socat exited with $rc"; return 1; }
        wait_pid "$pid" || { why "conduit-cat exited with $?"; return 1; }
        [ "$(cat "$D/out")" = hello ] || { why "conduit-cat printed '$(cat "$D/out")'"; return 1; }
        port=$(socat_local_port "$D/socat.err")
        [ -n "$port" ] || { why "socat did not log its local port"; return 1; }
        grep -qx "conduit-cat: accepted from vsock://1:$port" "$D/cat.err" ||
                { why "no 'accepted from vsock://1:$port' line (socat's CID and port)"; return 1; }
}
t "-v names the peer's CID and port (vsock://1:PORT, as socat reports its port)" verbose_peer

# -l vsock://any:any: the kernel picks the port, -v prints it, socat reaches it.
any_port() {
        local pid uri rc
        timeout "$TO" "$CAT" -v -l "vsock://any:any" </dev/null >"$D/out" 2>"$D/cat.err" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        [[ $uri =~ ^vsock://any:[0-9]+$ ]] || { why "listening on '$uri'"; return 1; }
        echo hello | timeout "$TO" socat -t 30 - "VSOCK-CONNECT:1:${uri##*:}" 2>"$D/socat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "socat exited with $rc"; return 1; }
        wait_pid "$pid" || { why "conduit-cat exited with $?"; return 1; }
        [ "$(cat "$D/out")" = hello ] || { why "conduit-cat printed '$(cat "$D/out")'"; return 1; }
}
t "-l vsock://any:any prints the port the kernel picked, and socat reaches it there" any_port

# ---- exit statuses ------------------------------------------------------------------

refused() {
        local rc
        next_port
        timeout "$TO" "$CAT" "vsock://1:$PORT" </dev/null >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 4 ] || { why "exit status $rc, expected 4"; return 1; }
        grep -q "vsock://1:$PORT" "$D/cat.err" || { why "the message does not name the address"; return 1; }
        grep -qi "refused" "$D/cat.err" || { why "the message does not say refused"; return 1; }
}
t "a port nobody listens on: exit status 4, the message names it" refused

retry_gives_up() {
        local rc
        next_port
        timeout "$TO" "$CAT" "vsock://1:$PORT?retry=500ms" </dev/null >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 5 ] || { why "exit status $rc, expected 5 (timeout)"; return 1; }
}
t "retry=500ms to a port that never comes up: exit status 5 (timeout)" retry_gives_up

tap_finish lenient
