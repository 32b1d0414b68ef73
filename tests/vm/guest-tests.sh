#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs inside the QEMU guest that tests/vm/run-vm-tests.sh boots (started by
# its /init): sets the guest up, runs each guest test and prints its output
# on the console as lines tagged "@@cvm|", which the harness turns into TAP:
#
#   @@cvm|begin NAME          a test starts
#   @@cvm|out NAME LINE       a line of its stdout (TAP)
#   @@cvm|err NAME LINE       a line of its stderr (the last ones, on failure)
#   @@cvm|end NAME STATUS     it ended: exit status, or "timeout"
#   @@cvm|time NAME SECONDS
#   @@cvm|note TEXT           a remark (set-up problems)
#   @@cvm|done                every test ran
#
# `guest-tests.sh --list` prints the test names (the harness runs that on
# the host: it touches nothing).
#
# This is the only place where AF_VSOCK sockets are made. The guest has no
# vsock device: its one transport is vsock_loopback, CID 1 is the guest
# itself.
set -u

TESTS=(conformance-vsock conformance-hyperv conformance-tls-vsock vsock vsock-event cat-vsock)
if [ "${1:-}" = --list ]; then
        printf '%s\n' "${TESTS[@]}"
        exit 0
fi

HERE=/opt/conduit/tests
BIN=/opt/conduit/bin
LIMIT=600 # seconds one test may take
CONDUIT_VM_TESTS=
# shellcheck source=/dev/null
[ -f "$HERE/settings" ] && . "$HERE/settings"

tag() { printf '@@cvm|%s\n' "$*"; }

setup() {
        [ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        mount -t tmpfs tmpfs /run
        mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm
        local m
        for m in vsock vmw_vsock_virtio_transport_common vsock_loopback; do
                insmod "/lib/modules/conduit/$m.ko" || echo "insmod $m failed"
        done
        ip link set lo up
        hostname conduit-vm
}

# Runs test $1: the command after it, its output captured, then reported.
run() {
        local name=$1 dir=/tmp/results/$1 start status
        shift
        mkdir -p "$dir"
        tag "begin $name"
        start=$(date +%s)
        timeout -k 10 "$LIMIT" "$@" >"$dir/out" 2>"$dir/err" </dev/null
        status=$?
        local took=$(($(date +%s) - start))
        [ "$took" -ge "$LIMIT" ] && status=timeout
        local line
        while IFS= read -r line || [ -n "$line" ]; do
                tag "out $name $line"
        done <"$dir/out"
        if [ "$status" != 0 ]; then
                tail -n 60 "$dir/err" | while IFS= read -r line || [ -n "$line" ]; do
                        tag "err $name $line"
                done
        fi
        tag "end $name $status"
        tag "time $name $took"
}

wanted() {
        [ -z "$CONDUIT_VM_TESTS" ] && return 0
        [[ " $CONDUIT_VM_TESTS " == *" $1 "* ]]
}

setup >/setup.log 2>&1 # not in /tmp: setup mounts a tmpfs there
while IFS= read -r line; do tag "note setup: $line"; done </setup.log
[ -e /dev/vsock ] || tag "note setup: no /dev/vsock: the vsock modules did not load"
tag "note guest: kernel $(uname -r), $(nproc) CPUs"

# The guard of the vsock tests: they run only here. The host's test setups
# forbid vsock sockets (CONDUIT_FORBID_VSOCK), the guest allows them.
unset CONDUIT_FORBID_VSOCK
export CONDUIT_VM_GUEST=1
export LD_LIBRARY_PATH=/opt/conduit/lib
export TMPDIR=/tmp
export PATH=$BIN:/bin
# The guest is emulated (TCG), slower than the host: Check's per-case
# timeouts get some room (the conformance suite's are 120 s).
export CK_TIMEOUT_MULTIPLIER=2

for t in "${TESTS[@]}"; do
        wanted "$t" || continue
        case $t in
        conformance-*) run "$t" "$BIN/test-conformance" "${t#conformance-}" ;;
        vsock) run "$t" "$BIN/test-vsock" ;;
        vsock-event) run "$t" "$BIN/test-vsock-event" ;;
        cat-vsock) run "$t" /bin/bash "$HERE/cat-vsock.sh" ;;
        esac
done
tag "done"
