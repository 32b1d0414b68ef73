#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every libFuzzer target of tests/fuzz/ for SECONDS each (default 60)
# on a copy of its seed corpus (the committed corpus/NAME/ is never
# written). Builds nothing: configure BUILDDIR with clang first, e.g.
#   CC=clang meson setup BUILDDIR -Db_sanitize=address,undefined -Db_lundef=false
#   ninja -C BUILDDIR fuzz
# Usage: tests/fuzz/run.sh [SECONDS] [BUILDDIR]   (BUILDDIR default: build)
# Environment: FUZZ_TARGETS="uri resolver ..." runs a subset; FUZZ_OUT is
# where the work directory goes (default /tmp). Prints TAP: one line per
# target with its executions count; exits non-zero if any target failed
# (crash, leak, timeout, OOM), naming the reproducer, which is kept with
# the logs.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}
build=${2:-$root/build}
targets=${FUZZ_TARGETS:-uri resolver vsock-mux tls-chaos}

case $secs in
'' | *[!0-9]*) echo "run.sh: SECONDS must be a number, not '$secs'" >&2; exit 2 ;;
esac
for t in $targets; do
        if [ ! -x "$build/tests/fuzz/fuzz-$t" ]; then
                echo "run.sh: $build/tests/fuzz/fuzz-$t not built (configure $build with CC=clang and run: ninja -C $build fuzz)" >&2
                exit 2
        fi
done

work=$(mktemp -d "${FUZZ_OUT:-/tmp}/conduit-fuzz.XXXXXX") || exit 2
failed=0
n=0
set -- $targets
echo "1..$#"
for t in $targets; do
        n=$((n + 1))
        dir=$work/$t
        mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
        cp -R "$here/corpus/$t/." "$dir/corpus/"
        args=(-max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$dir/artifacts/")
        [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
        # TMPDIR: the TLS target's throwaway certificates and the vsock-mux
        # target's socket directory (left behind when a target crashes).
        TMPDIR=$dir/tmp CONDUIT_FORBID_VSOCK=1 \
                "$build/tests/fuzz/fuzz-$t" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
        corpus=$(find "$dir/corpus" -type f | wc -l)
        repro=$(find "$dir/artifacts" -type f | head -n 1)
        if [ $rc -eq 0 ] && [ -z "$repro" ]; then
                printf 'ok %d - fuzz-%s: %s executions in %ss, corpus %s inputs\n' "$n" "$t" \
                        "${execs:-?}" "$secs" "$corpus"
        else
                failed=1
                printf 'not ok %d - fuzz-%s: exit %s after %s executions: reproducer %s, log %s\n' \
                        "$n" "$t" "$rc" "${execs:-?}" "${repro:-none}" "$dir/log"
                grep -v '^#[0-9]' "$dir/log" | tail -n 40 | sed 's/^/# /'
        fi
done
if [ $failed -eq 0 ]; then
        rm -rf "$work"
else
        echo "# run.sh: replay with: $build/tests/fuzz/fuzz-NAME REPRODUCER (work directory $work kept)"
fi
exit $failed
