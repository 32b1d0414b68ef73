#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# conduit-cat end to end, with socat as the independent peer (TAP).
#
# Environment (set by tests/meson.build): CONDUIT_CAT, the binary;
# CONDUIT_SRCDIR, CONDUIT_BUILDDIR, CONDUIT_TESTDIR. CONDUIT_TEST_VALGRIND=1
# runs every conduit-cat under valgrind memcheck (definite and indirect
# leaks are errors, exit status 99).
#
# Half-close is proven by ordering, never by timing: a reply that can only
# exist after the peer saw conduit-cat's EOF, and data that conduit-cat's
# stdin produces only after conduit-cat has passed the peer's EOF on to its
# stdout. Every wait is bounded, every background process is killed on exit
# and everything lives in one temporary directory.
set -u

CAT_BIN=${CONDUIT_CAT:?CONDUIT_CAT must name the conduit-cat binary}
TESTDIR=${CONDUIT_TESTDIR:-$(dirname "$0")}
# shellcheck source=tests/tap-lib.sh
. "$(dirname "$0")/tap-lib.sh" || exit 1

conduit_cat_command "$CAT_BIN" 60 # TO: seconds any one step may take
tap_tmpdir "${TMPDIR:-/tmp}/conduit-cat-test.XXXXXX"
tap_plan 52
make_test_data

# ---- transports -------------------------------------------------------------------

# LISTEN_URI: what a conduit-cat listener binds for transport $1.
transport() {
        local tr=$1
        case $tr in
        tcp4)
                LISTEN_URI=tcp://127.0.0.1:0
                ;;
        tcp6)
                LISTEN_URI='tcp://[::1]:0'
                ;;
        unix)
                LISTEN_URI=unix://$D/l.sock
                ;;
        abstract)
                LISTEN_URI=unix-abstract:conduit-cat-test-$$-$N-l
                ;;
        esac
}

socat_to() { # transport, bound URI -> socat address connecting to it
        case $1 in
        tcp4) echo "TCP4:127.0.0.1:${2##*:}" ;;
        tcp6) echo "TCP6:[::1]:${2##*:}" ;;
        unix) echo "UNIX-CONNECT:${2#unix://}" ;;
        abstract) echo "ABSTRACT-CONNECT:${2#unix-abstract:}" ;;
        esac
}

# Starts a socat listener for transport $1 running socat address $2 on
# each connection (options $3 added to the listening address: ",fork"
# serves many); sets CAT_TO (the conduit-cat URI reaching it).
start_socat_listener() {
        local tr=$1 peer=$2 opts=${3:-} port name laddr wait_kind wait_what
        case $tr in
        tcp4)
                port=$(free_port 4) || return 1
                laddr=TCP4-LISTEN:$port,bind=127.0.0.1,reuseaddr
                CAT_TO=tcp://127.0.0.1:$port
                wait_kind=tcp wait_what=$port
                ;;
        tcp6)
                port=$(free_port 6) || return 1
                laddr="TCP6-LISTEN:$port,bind=[::1],reuseaddr,ipv6only"
                CAT_TO="tcp://[::1]:$port"
                wait_kind=tcp wait_what=$port
                ;;
        unix)
                laddr=UNIX-LISTEN:$D/s-$RANDOM.sock
                CAT_TO=unix://${laddr#UNIX-LISTEN:}
                wait_kind=unix wait_what=${laddr#UNIX-LISTEN:}
                ;;
        abstract)
                name=conduit-cat-test-$$-$N-$RANDOM
                laddr=ABSTRACT-LISTEN:$name
                CAT_TO=unix-abstract:$name
                wait_kind=unix wait_what=@$name
                ;;
        esac
        timeout "$TO" socat -t 30 "$laddr$opts" "$peer" 2>>"$D/socat.err" &
        BG+=("$!")
        SOCAT_PID=$!
        wait_listening "$wait_kind" "$wait_what" || {
                why "socat did not start listening on $laddr"
                return 1
        }
}

# ---- data, reply and late exchanges (cat_side, socat_side, check_result: tap-lib.sh)

# conduit-cat connects; socat listens.
cat_client() { # transport kind
        local tr=$1 kind=$2 rc
        cp "$TMP/f1" "$TMP/f2" "$D/"
        start_socat_listener "$tr" "$(socat_side "$kind")" || return 1
        timeout "$TO" bash -c "$(cat_side "$kind")" _ "${CAT[@]}" -v "$CAT_TO"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        wait_pid "$SOCAT_PID" || { why "socat exited with $?"; return 1; }
        check_result "$kind"
}

# conduit-cat listens; socat connects.
cat_listener() { # transport kind
        local tr=$1 kind=$2 rc uri pid
        cp "$TMP/f1" "$TMP/f2" "$D/"
        transport "$tr"
        timeout "$TO" bash -c "$(cat_side "$kind")" _ "${CAT[@]}" -v -l "$LISTEN_URI" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        timeout "$TO" socat -t 30 "$(socat_to "$tr" "$uri")" "$(socat_side "$kind")" 2>>"$D/socat.err"
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
        reply) echo "half-close: its stdin EOF reaches the peer, the reply still arrives" ;;
        late) echo "half-close: the peer's EOF closes its stdout, its stdin still flows" ;;
        esac
}

for tr in tcp4 tcp6 unix abstract; do
        for role in client listener; do
                for kind in data reply late; do
                        name="$role over $tr: $(describe $kind)"
                        if ! $have_socat; then
                                skip "$name" "socat not installed"
                        elif [ "$tr" = tcp6 ] && ! $have_ipv6; then
                                skip "$name" "no IPv6 loopback"
                        elif [ "${tr#tcp}" != "$tr" ] && [ "$role" = client ] && ! $have_python; then
                                skip "$name" "python3 not installed"
                        else
                                t "$name" "cat_$role" "$tr" "$kind"
                        fi
                done
        done
done

# ---- relays ------------------------------------------------------------------------------

# conduit-cat URI1 URI2 between two socat listeners, over two transports:
# the second answers with the sha256 of what the first sent, which it can
# only do once the first one's EOF was relayed as a write shutdown.
relay_connect() {
        local a b rc
        start_socat_listener unix "OPEN:$TMP/f1,rdonly!!CREATE:$D/recv1" || return 1
        a=$CAT_TO
        start_socat_listener tcp4 "SYSTEM:sha256sum" || return 1
        b=$CAT_TO
        timeout "$TO" "${CAT[@]}" -v "$a" "$b" </dev/null >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        kill_bg_wait || return 1
        cmp -s "$D/recv1" "$TMP/f1.sha256" ||
                { why "the first peer got '$(head -c 100 "$D/recv1")', not the sha256 of its data"; return 1; }
}

kill_bg_wait() { # every background socat must finish by itself
        local p rc
        for p in "${BG[@]}"; do
                wait_pid "$p"
                rc=$?
                [ "$rc" = 0 ] || { why "socat exited with $rc"; return 1; }
        done
        BG=()
}

# conduit-cat -l URI1 URI2: a socat client on an abstract socket relayed to
# a socat listener over TCP.
relay_listen() {
        local rc uri pid
        start_socat_listener tcp4 "OPEN:$TMP/f2,rdonly!!CREATE:$D/recv2" || return 1
        local socat_pid=$SOCAT_PID
        timeout "$TO" "${CAT[@]}" -v -l "unix-abstract:conduit-cat-test-$$-$N-relay" "$CAT_TO" \
                </dev/null >"$D/out" 2>"$D/cat.err" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        timeout "$TO" socat -t 30 "$(socat_to abstract "$uri")" "OPEN:$TMP/f1,rdonly!!CREATE:$D/recv1" \
                2>>"$D/socat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "the socat client exited with $rc"; return 1; }
        wait_pid "$pid"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        wait_pid "$socat_pid" || { why "the socat listener exited with $?"; return 1; }
        cmp -s "$D/recv1" "$TMP/f2" || { why "the client did not get the listener's data"; return 1; }
        cmp -s "$D/recv2" "$TMP/f1" || { why "the listener did not get the client's data"; return 1; }
        # two plain sockets: both directions move by splice(2)
        [ "$(grep -c ': splice(2)$' "$D/cat.err")" = 2 ] ||
                { why "expected both directions to splice"; return 1; }
}

# Starts a TCP peer on 127.0.0.1 that accepts one connection, receives up
# to $1 bytes (after sending EOF first if $2 is "shutdown") and then resets
# it; sets PORT.
resetting_peer() {
        python3 - "$1" "${2:-}" >"$D/port" 2>"$D/py.err" <<'PY' &
import socket, struct, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
if sys.argv[2] == "shutdown":
    c.shutdown(socket.SHUT_WR)
c.recv(int(sys.argv[1]))  # the relay is under way; now reset
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
PY
        BG+=($!)
        wait_file "$D/port" 10
        local port i
        for ((i = 0; i < 100; i++)); do
                port=$(cat "$D/port")
                [ -n "$port" ] && break
                sleep 0.1
        done
        [ -n "$port" ] || { why "the resetting peer did not start"; return 1; }
        PORT=$port
}

# Zero copy from a regular file on stdin and into a pipe on stdout: an
# echoing peer sends back the file, which must arrive whole, and -v says
# that both directions spliced.
splice_stdio() {
        local rc
        start_socat_listener tcp4 PIPE || return 1
        timeout "$TO" bash -c 'f=$1; shift; "$@" <"$f" | cat >"$D/out"' _ "$TMP/f1" "${CAT[@]}" \
                -v "$CAT_TO" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        wait_pid "$SOCAT_PID" || { why "socat exited with $?"; return 1; }
        cmp -s "$D/out" "$TMP/f1" || { why "the echo is not the file ($(wc -c <"$D/out") bytes)"; return 1; }
        grep -q "^conduit-cat: stdin -> .*: splice(2)$" "$D/cat.err" ||
                { why "stdin (a regular file) was not spliced"; return 1; }
        grep -q "^conduit-cat: .* -> stdout: splice(2)$" "$D/cat.err" ||
                { why "stdout (a pipe) was not spliced"; return 1; }
}

# A peer that resets while conduit-cat splices a large file into it: the
# relay fails with a reported error and exit status 1, never by SIGPIPE
# (a splice into a reset socket raises it, a flow's write would not). The
# peer sends EOF first, so that it is the write that meets the reset, not
# a read.
splice_reset() {
        local rc port
        resetting_peer 65536 shutdown || return 1
        port=$PORT
        head -c $((256 * MIB)) /dev/zero >"$D/big"
        timeout "$TO" "${CAT[@]}" -v "tcp://127.0.0.1:$port" <"$D/big" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 1 ] || { why "exit status $rc, want 1 (141: killed by SIGPIPE)"; return 1; }
        grep -q "^conduit-cat: stdin -> .*: splice(2)$" "$D/cat.err" ||
                { why "stdin was not spliced"; return 1; }
        grep -Eq "^conduit-cat: write to tcp://.*: (Broken pipe|Connection reset)" "$D/cat.err" ||
                { why "no failed write reported"; return 1; }
        rm -f "$D/big"
}

# -k: three clients one after another, all served by one conduit-cat.
keep_open() {
        local pid uri i rc
        timeout "$TO" "${CAT[@]}" -v -l -k tcp://127.0.0.1:0 </dev/null >"$D/out" 2>"$D/cat.err" &
        pid=$!
        BG+=("$pid")
        uri=$(listen_uri "$D/cat.err" "$pid") || { why "no 'listening on' line"; return 1; }
        for i in 1 2 3; do
                echo "client $i" | timeout "$TO" socat -t 30 - "$(socat_to tcp4 "$uri")" \
                        >"$D/reply$i" 2>>"$D/socat.err"
                rc=$?
                [ "$rc" = 0 ] || { why "client $i: socat exited with $rc"; return 1; }
        done
        kill -0 "$pid" 2>/dev/null || { why "conduit-cat -k did not keep running"; return 1; }
        printf 'client %s\n' 1 2 3 >"$D/expected"
        cmp -s "$D/out" "$D/expected" || { why "stdout: '$(cat "$D/out")'"; return 1; }
        [ "$(grep -c '^conduit-cat: accepted from ' "$D/cat.err")" = 3 ] ||
                { why "expected three 'accepted from' lines"; return 1; }
}

NAME_RELAY_CONNECT="relay: conduit-cat URI1 URI2 (unix, tcp) carries the half-close across"
NAME_RELAY_LISTEN="relay: conduit-cat -l URI1 URI2 (abstract to tcp), 1 MiB both ways"
NAME_KEEP="-k serves three clients one after another"
NAME_SPLICE_STDIO="zero copy: a file on stdin and a pipe on stdout are spliced, the echo arrives whole"
NAME_SPLICE_RESET="zero copy: a peer reset while splicing into it is a reported error (status 1), no SIGPIPE"
if $have_socat && $have_python; then
        t "$NAME_RELAY_CONNECT" relay_connect
        t "$NAME_RELAY_LISTEN" relay_listen
        t "$NAME_KEEP" keep_open
        t "$NAME_SPLICE_STDIO" splice_stdio
        t "$NAME_SPLICE_RESET" splice_reset
else
        for name in "$NAME_RELAY_CONNECT" "$NAME_RELAY_LISTEN" "$NAME_KEEP" "$NAME_SPLICE_STDIO" \
                "$NAME_SPLICE_RESET"; do
                skip "$name" "socat or python3 not installed"
        done
fi

# -l without -k: one client. The listening socket is closed as soon as it
# is accepted (its socket file removed), so a second client is refused,
# while the first is relayed to the end.
listen_one_client() {
        local pid cpid rc i
        timeout "$TO" "${CAT[@]}" -v -l "unix://$D/one.sock" </dev/null >"$D/out" 2>"$D/cat.err" &
        pid=$!
        BG+=("$pid")
        listen_uri "$D/cat.err" "$pid" >/dev/null || { why "no 'listening on' line"; return 1; }
        python3 - "$D/one.sock" "$D" "$TO" <<'PY' 2>"$D/py.err" &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"first\n")
deadline = time.monotonic() + float(sys.argv[3])
while not os.path.exists(sys.argv[2] + "/second-tried") and time.monotonic() < deadline:
    time.sleep(0.05)
s.close()
PY
        cpid=$!
        BG+=("$cpid")
        for ((i = 0; i < TO * 20; i++)); do
                [ -e "$D/one.sock" ] || break
                sleep 0.05
        done
        [ ! -e "$D/one.sock" ] || { why "the socket file is still there after the accept"; return 1; }
        if python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' \
                "$D/one.sock" 2>/dev/null; then
                why "a second client got in"
                return 1
        fi
        touch "$D/second-tried"
        wait_pid "$cpid" || { why "the first client failed: $(cat "$D/py.err")"; return 1; }
        wait_pid "$pid"
        rc=$?
        [ "$rc" = 0 ] || { why "conduit-cat exited with $rc"; return 1; }
        [ "$(cat "$D/out")" = first ] || { why "stdout: '$(cat "$D/out")'"; return 1; }
        [ "$(grep -c '^conduit-cat: accepted from ' "$D/cat.err")" = 1 ] ||
                { why "expected one 'accepted from' line"; return 1; }
}
NAME_ONE_CLIENT="-l without -k: one client; the socket file goes at once and a second client is refused"
if $have_python; then
        t "$NAME_ONE_CLIENT" listen_one_client
else
        skip "$NAME_ONE_CLIENT" "python3 not installed"
fi

# ---- -k: every client at once -------------------------------------------------------------

# Waits (bounded) until file $1 exists; gives up once the test is over, so
# that a helper feeding some stdin does not outlive its test for long.
until_file() {
        local i
        for ((i = 0; i < TO * 10; i++)); do
                [ -e "$1" ] && return 0
                [ -e "$D/stop" ] || [ ! -d "$D" ] && return 1
                sleep 0.1
        done
        return 1
}
export -f until_file

# The -l -k conduit-cat under test logs to k.err (-v).
accepted() { grep -c '^conduit-cat: accepted from ' "$D/k.err" 2>/dev/null; }

# Waits (bounded) until conduit-cat (CAT_PID) has accepted $1 clients.
wait_accepted() {
        local i
        for ((i = 0; i < TO * 10; i++)); do
                [ "$(accepted)" -ge "$1" ] && return 0
                kill -0 "$CAT_PID" 2>/dev/null || return 1
                sleep 0.1
        done
        return 1
}

# conduit-cat -v -l -k ARGS... in the background, stdin from /dev/null;
# sets CAT_PID and BOUND (the bound URI).
start_cat_k() {
        timeout "$TO" "${CAT[@]}" -v -l -k "$@" </dev/null >"$D/k.out" 2>"$D/k.err" &
        CAT_PID=$!
        BG+=("$CAT_PID")
        BOUND=$(listen_uri "$D/k.err" "$CAT_PID") || { why "no 'listening on' line"; return 1; }
}

# -l -k URI1 URI2 in front of an echo server, over transport $1: 20 socat
# clients connect, and only once conduit-cat has accepted every one (so
# all are connected at the same time) does each send 256 KiB of its own
# random bytes; each must get exactly its own bytes back.
relay_k_many() { # transport
        local tr=$1 n=20 i rc to pids=()
        start_socat_listener "$tr" "EXEC:cat" ",fork" || return 1
        transport "$tr"
        start_cat_k "$LISTEN_URI" "$CAT_TO" || return 1
        to=$(socat_to "$tr" "$BOUND")
        for ((i = 0; i < n; i++)); do
                head -c 262144 /dev/urandom >"$D/data$i"
                { until_file "$D/go" && cat "$D/data$i"; } |
                        timeout "$TO" socat -t 30 - "$to" >"$D/echo$i" 2>>"$D/socat.err" &
                pids+=("$!")
                BG+=("$!")
        done
        wait_accepted "$n" || { why "only $(accepted) of $n clients accepted at once"; return 1; }
        touch "$D/go"
        for ((i = 0; i < n; i++)); do
                wait_pid "${pids[$i]}"
                rc=$?
                [ "$rc" = 0 ] || { why "client $i: socat exited with $rc"; return 1; }
                cmp -s "$D/echo$i" "$D/data$i" || {
                        why "client $i got back $(wc -c <"$D/echo$i") bytes that differ from the 262144 it sent"
                        return 1
                }
        done
        kill -0 "$CAT_PID" 2>/dev/null || { why "conduit-cat -k did not keep running"; return 1; }
}

# A client that connects and sends nothing (its stdin stays open) does not
# keep the next client from being served, and stays connected meanwhile.
relay_k_idle() {
        local to rc idle
        start_socat_listener tcp4 "EXEC:cat" ",fork" || return 1
        start_cat_k tcp://127.0.0.1:0 "$CAT_TO" || return 1
        to=$(socat_to tcp4 "$BOUND")
        mkfifo "$D/idle-in"
        { exec sleep 600; } >"$D/idle-in" 2>/dev/null &
        BG+=("$!")
        timeout "$TO" socat -t 30 - "$to" <"$D/idle-in" >"$D/idle-out" 2>>"$D/socat.err" &
        idle=$!
        BG+=("$idle")
        wait_accepted 1 || { why "the idle client was not accepted"; return 1; }
        head -c 262144 /dev/urandom >"$D/data"
        timeout "$TO" socat -t 30 - "$to" <"$D/data" >"$D/echo" 2>>"$D/socat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "the second client: socat exited with $rc"; return 1; }
        cmp -s "$D/echo" "$D/data" ||
                { why "the second client got back $(wc -c <"$D/echo") bytes, not its 262144"; return 1; }
        kill -0 "$idle" 2>/dev/null || { why "the idle client is no longer connected"; return 1; }
        [ "$(accepted)" = 2 ] || { why "expected two 'accepted from' lines"; return 1; }
}

# Half-close through the concurrent relay: three clients on a Unix socket,
# all connected at once, each relayed to a TCP peer that answers with the
# sha256 of what it received, which it can only do once that client's EOF
# was carried across as a write shutdown.
relay_k_reply() {
        local n=3 i rc to pids=()
        start_socat_listener tcp4 "SYSTEM:sha256sum" ",fork" || return 1
        transport unix
        start_cat_k "$LISTEN_URI" "$CAT_TO" || return 1
        to=$(socat_to unix "$BOUND")
        for ((i = 0; i < n; i++)); do
                head -c 262144 /dev/urandom >"$D/data$i"
                sha256sum <"$D/data$i" >"$D/sum$i"
                { until_file "$D/go" && cat "$D/data$i"; } |
                        timeout "$TO" socat -t 30 - "$to" >"$D/reply$i" 2>>"$D/socat.err" &
                pids+=("$!")
                BG+=("$!")
        done
        wait_accepted "$n" || { why "only $(accepted) of $n clients accepted at once"; return 1; }
        touch "$D/go"
        for ((i = 0; i < n; i++)); do
                wait_pid "${pids[$i]}"
                rc=$?
                [ "$rc" = 0 ] || { why "client $i: socat exited with $rc"; return 1; }
                cmp -s "$D/reply$i" "$D/sum$i" ||
                        { why "client $i got '$(head -c 100 "$D/reply$i")', not the sha256 of its data"; return 1; }
        done
}

# Half-close the other way through the -k relay: the peer (socat) sends f2
# and its EOF; the client (a conduit-cat: socat does not pass an EOF on to
# its stdout while its stdin is open) produces f1 only once that EOF has
# closed its stdout, and the peer must still receive all of it.
relay_k_late() {
        local rc
        cp "$TMP/f1" "$TMP/f2" "$D/"
        start_socat_listener tcp4 "$(socat_side late)" || return 1
        local peer=$SOCAT_PID
        start_cat_k tcp://127.0.0.1:0 "$CAT_TO" || return 1
        timeout "$TO" bash -c "$(cat_side late)" _ "${CAT[@]}" -v "$BOUND"
        rc=$?
        [ "$rc" = 0 ] || { why "the client (conduit-cat) exited with $rc"; return 1; }
        wait_pid "$peer" || { why "the peer: socat exited with $?"; return 1; }
        check_result late
}

# -l -k URI with two clients at once (ncat's way): what either sends goes
# to stdout, and stdin (1 MiB, sent once both are connected) goes to both.
stdio_k_two() {
        local i rc to pids=()
        mkfifo "$D/in"
        { until_file "$D/go" && cat "$TMP/f1"; } >"$D/in" 2>/dev/null &
        BG+=("$!")
        timeout "$TO" "${CAT[@]}" -v -l -k tcp://127.0.0.1:0 <"$D/in" >"$D/k.out" 2>"$D/k.err" &
        CAT_PID=$!
        BG+=("$CAT_PID")
        BOUND=$(listen_uri "$D/k.err" "$CAT_PID") || { why "no 'listening on' line"; return 1; }
        to=$(socat_to tcp4 "$BOUND")
        for i in 1 2; do
                printf 'client %s\n' "$i" |
                        timeout "$TO" socat -t 30 - "$to" >"$D/recv$i" 2>>"$D/socat.err" &
                pids+=("$!")
                BG+=("$!")
        done
        wait_accepted 2 || { why "only $(accepted) of 2 clients accepted at once"; return 1; }
        touch "$D/go"
        for i in 1 2; do
                wait_pid "${pids[$((i - 1))]}"
                rc=$?
                [ "$rc" = 0 ] || { why "client $i: socat exited with $rc"; return 1; }
                cmp -s "$D/recv$i" "$TMP/f1" ||
                        { why "client $i got $(wc -c <"$D/recv$i") bytes, not the 1 MiB of stdin"; return 1; }
        done
        printf 'client %s\n' 1 2 >"$D/expected"
        sort "$D/k.out" | cmp -s - "$D/expected" || { why "stdout: '$(head -c 100 "$D/k.out")'"; return 1; }
        kill -0 "$CAT_PID" 2>/dev/null || { why "conduit-cat -k did not keep running"; return 1; }
}

NAME_K_TCP="-k relay: 20 clients at once over TCP, 256 KiB each echoed byte for byte"
NAME_K_UNIX="-k relay: 20 clients at once over a Unix socket, 256 KiB each echoed"
NAME_K_IDLE="-k relay: a client that sends nothing does not hold up the next one"
NAME_K_REPLY="-k relay: half-close, three clients at once each get the sha256 of their data"
NAME_K_LATE="-k relay: half-close, the peer's EOF closes the client's stdout, its data still flows"
NAME_K_STDIO="-k stdio: two clients at once both get stdin, stdout gets what both sent"
if $have_socat && $have_python; then
        t "$NAME_K_TCP" relay_k_many tcp4
        t "$NAME_K_UNIX" relay_k_many unix
        t "$NAME_K_IDLE" relay_k_idle
        t "$NAME_K_REPLY" relay_k_reply
        t "$NAME_K_LATE" relay_k_late
        t "$NAME_K_STDIO" stdio_k_two
else
        for name in "$NAME_K_TCP" "$NAME_K_UNIX" "$NAME_K_IDLE" "$NAME_K_REPLY" "$NAME_K_LATE" \
                "$NAME_K_STDIO"; do
                skip "$name" "socat or python3 not installed"
        done
fi

# ---- --resolve, --stats, --help ---------------------------------------------------------

resolve_has() { # uri expected-line
        local rc
        timeout "$TO" "${CAT[@]}" --resolve "$1" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "exit status $rc"; return 1; }
        grep -qxF -- "$2" "$D/out" || { why "output: $(cat "$D/out")"; return 1; }
}

t "--resolve tcp://localhost:80 lists tcp://127.0.0.1:80" resolve_has tcp://localhost:80 tcp://127.0.0.1:80
t "--resolve UNIX-CONNECT:/run/x.sock prints unix:///run/x.sock" \
        resolve_has UNIX-CONNECT:/run/x.sock unix:///run/x.sock
t "--resolve @name prints unix-abstract:name" resolve_has @name unix-abstract:name

stats() {
        local rc
        cp "$TMP/f2" "$D/"
        start_socat_listener tcp4 "OPEN:$D/f2,rdonly!!CREATE:$D/recv" || return 1
        timeout "$TO" "${CAT[@]}" --stats "$CAT_TO" <"$TMP/f1" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 0 ] || { why "exit status $rc"; return 1; }
        wait_pid "$SOCAT_PID" || { why "socat exited with $?"; return 1; }
        grep -q "^conduit-cat: stdin -> $CAT_TO: 1048576 bytes in [0-9.]* m\?s (.*/s)\$" "$D/cat.err" ||
                { why "no stdin -> peer line"; return 1; }
        grep -q "^conduit-cat: $CAT_TO -> stdout: 1048576 bytes in [0-9.]* m\?s (.*/s)\$" "$D/cat.err" ||
                { why "no peer -> stdout line"; return 1; }
}
NAME_STATS="--stats prints bytes and throughput per direction"
if $have_socat && $have_python; then
        t "$NAME_STATS" stats
else
        skip "$NAME_STATS" "socat or python3 not installed"
fi

help_version() {
        timeout "$TO" "${CAT[@]}" --help >"$D/out" 2>"$D/cat.err" || { why "--help failed"; return 1; }
        grep -q '^Exit status:' "$D/out" || { why "--help does not list exit statuses"; return 1; }
        timeout "$TO" "${CAT[@]}" -V >"$D/out" 2>"$D/cat.err" || { why "-V failed"; return 1; }
        grep -q '^conduit-cat (libconduit) [0-9]' "$D/out" || { why "-V: $(cat "$D/out")"; return 1; }
}
t "--help and --version exit 0" help_version

# ---- exit statuses -------------------------------------------------------------------------

exits() { # expected-status args...
        local want=$1 rc
        shift
        timeout "$TO" "${CAT[@]}" "$@" </dev/null >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = "$want" ] || { why "exit status $rc, expected $want"; return 1; }
        [ -s "$D/cat.err" ] || { why "no message on stderr"; return 1; }
}

t "usage error: unknown option exits 2" exits 2 --no-such-option tcp://127.0.0.1:1
t "usage error: no URI exits 2" exits 2
t "usage error: -k without -l exits 2" exits 2 -k tcp://127.0.0.1:1
t "resolve failure: malformed URI exits 3" exits 3 tcp://127.0.0.1
t "resolve failure: unknown scheme exits 3" exits 3 no-such-scheme://host
t "resolve failure: a .invalid name exits 3" exits 3 tcp://no-such-host.invalid:80

refused_tcp() {
        local port
        port=$(free_port 4) || return 1
        exits 4 "tcp://127.0.0.1:$port" || return 1
        grep -q "^conduit-cat: connect tcp://127.0.0.1:$port: " "$D/cat.err" ||
                { why "message not in the form 'conduit-cat: connect URI: ...'"; return 1; }
}
NAME_REFUSED="refused: a closed TCP port exits 4"
if $have_python; then
        t "$NAME_REFUSED" refused_tcp
else
        skip "$NAME_REFUSED" "python3 not installed"
fi
t "refused: a missing Unix socket exits 4" exits 4 "unix://$TMP/no-such.sock"

# A listener whose accept queue is full: the kernel drops further SYNs, so a
# connect neither succeeds nor fails until the timeout.
timeout_full_backlog() {
        local port start end rc
        timeout "$TO" python3 -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
held = []
for _ in range(3):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(s.getsockname())
    except BlockingIOError:
        pass
    held.append(c)
time.sleep(0.5)
print(s.getsockname()[1], flush=True)
time.sleep(120)' >"$D/port" 2>"$D/python.err" &
        BG+=("$!")
        wait_file "$D/port" 10
        for ((i = 0; i < 100; i++)); do
                port=$(cat "$D/port")
                [ -n "$port" ] && break
                sleep 0.1
        done
        [ -n "$port" ] || { why "the backlog helper did not start"; return 1; }
        exits 5 -w 300ms "tcp://127.0.0.1:$port" || return 1
}
NAME_TIMEOUT="timeout: -w 300ms against a full accept queue exits 5"
if $have_python; then
        t "$NAME_TIMEOUT" timeout_full_backlog
else
        skip "$NAME_TIMEOUT" "python3 not installed"
fi

# A peer that resets the connection ends both directions, even while stdin
# stays open and idle: nothing read from it could be delivered any more.
reset_with_idle_stdin() {
        local rc port
        resetting_peer 1 || return 1
        port=$PORT
        mkfifo "$D/in"
        # one byte, then stdin stays open (and idle) until the test ends
        # (exec: the pid killed at the end is the sleep itself, which would
        # otherwise hold the test's stderr open)
        { printf x; exec sleep 600; } >"$D/in" 2>/dev/null &
        BG+=($!)
        timeout "$TO" "${CAT[@]}" "tcp://127.0.0.1:$port" <"$D/in" >"$D/out" 2>"$D/cat.err"
        rc=$?
        [ "$rc" = 1 ] || { why "exit status $rc, want 1 (124: still waiting on stdin)"; return 1; }
        grep -q "reset" "$D/cat.err" || { why "no reset reported"; return 1; }
}
NAME_RESET="reset by the peer ends the relay while stdin is open and idle"
if $have_python; then
        t "$NAME_RESET" reset_with_idle_stdin
else
        skip "$NAME_RESET" "python3 not installed"
fi

# (vsock is never tried here: the build host must not make AF_VSOCK
# connections; tests/vm/ runs conduit-cat over vsock inside a guest.)
t "unsupported transport: vchan://3/x exits 7" exits 7 vchan://3/x

tap_finish
