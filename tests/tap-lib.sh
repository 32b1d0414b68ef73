# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the bash TAP tests share, sourced by tests/test-cat.sh,
# tests/test-tls-interop.sh and tests/vm/cat-vsock.sh. The last one runs
# inside the QEMU guest of tests/vm/: run-vm-tests.sh copies this file next
# to it into the initramfs, so everything here must work with the guest's
# bash and busybox tools.
#
# A script sources it, then:
#   conduit_cat_command BINARY SECONDS  CAT and TO (valgrind if asked)
#   tap_tmpdir TEMPLATE                 TMP, removed on exit
#   tap_plan COUNT
#   make_test_data                      f1, f2 (1 MiB each), f1.sha256 in TMP
#   t NAME FUNCTION ARGS... / skip NAME REASON, as often as planned
#   tap_finish                          the last line: the exit status
#
# Globals: TO, the seconds any one step may take before it counts as hung
# (the script sets it, or conduit_cat_command does); TMP; D, the current
# test's directory; BG, the background processes of the current test (add
# every one started); CLEANUP_DIRS, more directories to remove on exit;
# N, PLAN, FAILED. D and TO are exported for the bash -c pipelines.
#
# Every wait is bounded, every background process is killed at the end of
# its test and on exit, and everything lives in TMP. A test is over once
# $D/stop exists (t touches it, and on exit the cleanup touches it in every
# test's directory), so that helpers that wait for something can give up.

BG=()
CLEANUP_DIRS=()
N=0
PLAN=0
FAILED=0
D=
export D TO
MIB=1048576

have_socat=false
command -v socat >/dev/null && have_socat=true
have_python=false
command -v python3 >/dev/null && have_python=true
have_ipv6=false
grep -qi '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null && have_ipv6=true

# ---- conduit-cat, TMP, TAP ------------------------------------------------------

# CAT: the command that runs the conduit-cat binary $1; TO: $2 seconds.
# CONDUIT_TEST_VALGRIND=1 runs it under valgrind memcheck (definite and
# indirect leaks are errors, exit status 99; with $TESTDIR/valgrind.supp if
# there is one), and then every step may take 180 s.
conduit_cat_command() {
        CAT=("$1")
        TO=$2
        if [ "${CONDUIT_TEST_VALGRIND:-0}" = 1 ]; then
                CAT=(valgrind --quiet --error-exitcode=99 --leak-check=full
                        "--errors-for-leak-kinds=definite,indirect")
                [ -f "$TESTDIR/valgrind.supp" ] && CAT+=(--suppressions="$TESTDIR/valgrind.supp")
                CAT+=("$1")
                TO=180
        fi
}

# TMP: a new directory (mktemp template $1), removed on exit with
# CLEANUP_DIRS, once every background process is gone.
tap_tmpdir() {
        TMP=$(mktemp -d "$1") || exit 1
        trap tap_cleanup EXIT
        trap 'exit 1' INT TERM HUP
}

tap_cleanup() {
        local p
        # helpers waiting for something give up once their test is over
        for p in "$TMP"/[0-9]*; do [ -d "$p" ] && touch "$p/stop"; done
        for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$TMP" "${CLEANUP_DIRS[@]}"
}

tap_plan() { # count
        PLAN=$1
        echo "1..$PLAN"
}

# Two files of 1 MiB of random bytes, f1 and f2, and the sha256sum line of
# f1, in TMP.
make_test_data() {
        head -c $MIB /dev/urandom >"$TMP/f1"
        head -c $MIB /dev/urandom >"$TMP/f2"
        sha256sum <"$TMP/f1" >"$TMP/f1.sha256"
}

diag() { sed 's/^/#   /' "$@" 2>/dev/null | head -n 40; }

# Runs test function $2... as test number N+1 named $1, in a fresh directory.
# On failure the diagnostics are what the test said with why and the
# *.err files it left in $D.
t() {
        local name=$1
        shift
        N=$((N + 1))
        D=$TMP/$N
        mkdir -p "$D"
        : >"$D/why"
        if "$@"; then
                echo "ok $N - $name"
        else
                echo "not ok $N - $name"
                FAILED=$((FAILED + 1))
                diag "$D/why"
                local f
                for f in "$D"/*.err; do
                        [ -s "$f" ] || continue
                        echo "#   --- ${f##*/}"
                        diag "$f"
                done
        fi
        touch "$D/stop"
        kill_bg
}

skip() { # name, reason
        N=$((N + 1))
        echo "ok $N - $1 # SKIP $2"
}

why() { echo "$*" >>"$D/why"; }

# The end of the script: exit status 0 if every test ran and passed. With
# $1 "lenient", running more or fewer tests than planned is only reported
# (tests/vm/run-vm-tests.sh counts a guest test's subtests against its plan
# itself).
tap_finish() {
        if [ "$N" != "$PLAN" ]; then
                echo "# planned $PLAN tests, ran $N"
                [ "${1:-}" = lenient ] || exit 1
        fi
        [ "$FAILED" = 0 ] && exit 0
        exit 1
}

# ---- processes, waits, ports ------------------------------------------------------

kill_bg() {
        local p
        for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
        for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
        BG=()
}

# Waits (bounded) for background process $1 and returns its exit status;
# 124 if it had to be killed.
wait_pid() {
        local pid=$1 i
        for ((i = 0; i < TO * 10; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                return 124
        fi
        wait "$pid"
}

# Waits (bounded: $2 seconds, default 60) until file $1 exists.
wait_file() {
        local i
        for ((i = 0; i < ${2:-60} * 10; i++)); do
                [ -e "$1" ] && return 0
                sleep 0.1
        done
        return 1
}
export -f wait_file

# The bound URI from conduit-cat's "conduit-cat: listening on URI" line in
# file $1, printed once background process $2 wrote it.
listen_uri() {
        local i uri
        for ((i = 0; i < TO * 10; i++)); do
                uri=$(sed -n "s/^conduit-cat: listening on //p" "$1" 2>/dev/null | head -n 1)
                if [ -n "$uri" ]; then
                        echo "$uri"
                        return 0
                fi
                kill -0 "$2" 2>/dev/null || return 1
                sleep 0.1
        done
        return 1
}

# A TCP port nothing uses right now (4 or 6): one python3 binds to and
# lets go; without python3, a random one the kernel does not list.
free_port() {
        if ! $have_python; then
                local port hex i
                for ((i = 0; i < 1000; i++)); do
                        port=$((20000 + RANDOM % 40000))
                        hex=$(printf '%04X' "$port")
                        awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
                                /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$port"; return 0; }
                done
                return 1
        fi
        python3 -c '
import socket, sys
fam, host = (socket.AF_INET6, "::1") if sys.argv[1] == "6" else (socket.AF_INET, "127.0.0.1")
s = socket.socket(fam)
s.bind((host, 0))
print(s.getsockname()[1])' "$1"
}

# Waits (bounded) until something listens on TCP port $2 or Unix socket $2
# ("@name" for abstract ones; $1 tcp or unix), as the kernel reports it:
# connecting to find out would use up the only connection a peer such as a
# socat listener accepts.
wait_listening() {
        local i hex
        for ((i = 0; i < TO * 10; i++)); do
                case $1 in
                tcp)
                        hex=$(printf '%04X' "$2")
                        awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
                                END { exit !f }' /proc/net/tcp /proc/net/tcp6 && return 0
                        ;;
                unix)
                        awk -v n="$2" '$NF == n && $4 == "00010000" { f = 1 } END { exit !f }' \
                                /proc/net/unix && return 0
                        ;;
                esac
                sleep 0.1
        done
        return 1
}

# ---- plain exchanges with socat (test-cat.sh, cat-vsock.sh) ---------------------

# The test copies f1 and f2 into $D first. Kinds of exchange:
# data, reply: conduit-cat's stdin is f1, its stdout goes to out.
# late: its stdin produces f1 only once conduit-cat has closed its stdout
#   (the consumer touches "marker" after it read EOF), so the transfer can
#   only finish if conduit-cat passed the peer's EOF on while its own stdin
#   was still open, and then still carried data the other way.
# shellcheck disable=SC2016 # expanded by the bash -c that runs them
CAT_SIDE_SIMPLE='"$@" <"$D/f1" >"$D/out" 2>"$D/cat.err"'
# shellcheck disable=SC2016
CAT_SIDE_LATE='{ wait_file "$D/marker" "$TO" && cat "$D/f1"; } | "$@" 2>"$D/cat.err" |
        { cat >"$D/out"; touch "$D/marker"; }; exit "${PIPESTATUS[1]}"'

cat_side() { # kind -> the shell text of the conduit-cat side, for bash -c
        case $1 in
        late) echo "$CAT_SIDE_LATE" ;;
        *) echo "$CAT_SIDE_SIMPLE" ;;
        esac
}

# What socat runs on its side: data and late send f2 and record what comes
# back in "recv"; reply answers with the sha256 of everything it received,
# which it can only compute after conduit-cat's EOF.
socat_side() { # kind
        case $1 in
        reply) echo "SYSTEM:sha256sum" ;;
        *) echo "OPEN:$D/f2,rdonly!!CREATE:$D/recv" ;;
        esac
}

check_result() { # kind
        case $1 in
        reply)
                cmp -s "$D/out" "$TMP/f1.sha256" || {
                        why "conduit-cat printed '$(head -c 100 "$D/out")', expected the sha256 of what it sent"
                        return 1
                }
                ;;
        *)
                cmp -s "$D/out" "$TMP/f2" || {
                        why "conduit-cat's stdout ($(wc -c <"$D/out") bytes) differs from what socat sent"
                        return 1
                }
                cmp -s "$D/recv" "$TMP/f1" || {
                        why "socat received $(wc -c <"$D/recv" 2>/dev/null || echo 0) bytes, not the 1 MiB conduit-cat sent"
                        return 1
                }
                ;;
        esac
}
