#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The soak (not part of the test suite or CI): builds conduit-soak and runs
# it, by default one million connections round-robin over TCP, Unix, TLS
# over TCP and TLS over Unix, each connect / handshake / transfer / close,
# every byte checked; it exits 1 on any error or if descriptors or RSS grew
# between the warm-up and the end (tests/soak/soak.c). Arguments go to
# conduit-soak:
#
#   scripts/soak.sh                                  # the full run (several minutes)
#   scripts/soak.sh --connections 20000              # a short one
#   scripts/soak.sh --kinds tcp --connections 200000
#
# BUILDDIR (default build/) is the meson build directory to use.
set -u
cd "$(dirname "$0")/.." || exit 1

BUILDDIR=${BUILDDIR:-build}
scripts/deps.sh build || exit 1
# quiet unless it fails
run() {
        local out
        echo "+ $*"
        out=$("$@" 2>&1) || { printf '%s\n' "$out"; exit 1; }
}
[ -f "$BUILDDIR/build.ninja" ] || run meson setup "$BUILDDIR"
run ninja -C "$BUILDDIR" tests/conduit-soak
echo "+ $BUILDDIR/tests/conduit-soak $*"
exec "$BUILDDIR/tests/conduit-soak" "$@"
