#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's demonstration: conduit-cat moving data over TCP, a Unix socket
# file and an abstract Unix socket. For each transport a conduit-cat listener
# and a conduit-cat client exchange data both ways: the client sends 1 MiB of
# random bytes, the listener answers with a line of text. It prints what it
# runs and what arrived, and exits 0 only if every transfer arrived intact.
#
# On a fresh Debian 12 machine, as root: installs the missing build
# dependencies (scripts/deps.sh) and builds into build/ when needed.
set -u
cd "$(dirname "$0")/.." || exit 1

scripts/deps.sh build || exit 1
if [ ! -f build/build.ninja ]; then
        echo "+ meson setup build"
        meson setup build >/dev/null || exit 1
fi
echo "+ meson compile -C build conduit-cat"
meson compile -C build conduit-cat >/dev/null || exit 1
CAT=$PWD/build/src/cli/conduit-cat

WAIT=30 # seconds any step may take
TMP=$(mktemp -d "${TMPDIR:-/tmp}/conduit-cat-demo.XXXXXX") || exit 1
PIDS=()
cleanup() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

indent() { sed 's/^/        /' "$@"; }

# The bound URI from the listener's "conduit-cat: listening on URI" line.
listen_uri() { # stderr-file pid
        local i uri
        for ((i = 0; i < WAIT * 10; i++)); do
                uri=$(sed -n 's/^conduit-cat: listening on //p' "$1" 2>/dev/null | head -n 1)
                [ -n "$uri" ] && { echo "$uri"; return 0; }
                kill -0 "$2" 2>/dev/null || return 1
                sleep 0.1
        done
        return 1
}

wait_pid() { # pid: its exit status, 124 if it had to be stopped
        local i
        for ((i = 0; i < WAIT * 10; i++)); do
                kill -0 "$1" 2>/dev/null || break
                sleep 0.1
        done
        if kill -0 "$1" 2>/dev/null; then
                kill "$1" 2>/dev/null
                wait "$1" 2>/dev/null
                return 124
        fi
        wait "$1"
}

failures=0
demo() { # name listen-uri
        local name=$1 luri=$2 d=$TMP/$1 uri pid rc ok=true
        mkdir -p "$d"
        head -c 1048576 /dev/urandom >"$d/payload"
        echo "hello from the $name listener" >"$d/reply"
        echo
        echo "== $name"
        echo "\$ conduit-cat --stats -v -l $luri < reply > received-by-listener &"
        timeout "$WAIT" "$CAT" --stats -v -l "$luri" <"$d/reply" >"$d/at-listener" 2>"$d/listener.err" &
        pid=$!
        PIDS+=("$pid")
        if ! uri=$(listen_uri "$d/listener.err" "$pid"); then
                echo "   the listener did not start:"
                indent "$d/listener.err"
                failures=$((failures + 1))
                return
        fi
        echo "\$ conduit-cat --stats $uri < payload > received-by-client   # payload: 1 MiB of random bytes"
        timeout "$WAIT" "$CAT" --stats "$uri" <"$d/payload" >"$d/at-client" 2>"$d/client.err"
        rc=$?
        wait_pid "$pid"
        local lrc=$?
        echo "   listener (stderr):"
        indent "$d/listener.err"
        echo "   client (stderr):"
        indent "$d/client.err"
        [ "$rc" = 0 ] || { echo "   the client exited with status $rc"; ok=false; }
        [ "$lrc" = 0 ] || { echo "   the listener exited with status $lrc"; ok=false; }
        local sent got
        sent=$(sha256sum <"$d/payload" | cut -c1-16)
        got=$(sha256sum <"$d/at-listener" | cut -c1-16)
        if cmp -s "$d/payload" "$d/at-listener"; then
                echo "   listener received $(wc -c <"$d/at-listener") bytes, sha256 $got...: intact"
        else
                echo "   listener received $(wc -c <"$d/at-listener") bytes, sha256 $got..., expected $sent...: DAMAGED"
                ok=false
        fi
        if cmp -s "$d/reply" "$d/at-client"; then
                echo "   client received: \"$(cat "$d/at-client")\": intact"
        else
                echo "   client received: \"$(head -c 200 "$d/at-client")\": DAMAGED"
                ok=false
        fi
        $ok || failures=$((failures + 1))
}

echo "conduit-cat $("$CAT" --version | sed 's/.* //'): a listener and a client per transport;"
echo "each side sends its standard input and shuts down its write side at EOF,"
echo "and exits once the other side has done the same."
demo tcp tcp://127.0.0.1:0
demo unix "unix://$TMP/demo.sock"
demo abstract "unix-abstract:conduit-cat-demo-$$"

echo
if [ "$failures" = 0 ]; then
        echo "every transfer arrived intact"
        exit 0
fi
echo "$failures transport(s) failed"
exit 1
