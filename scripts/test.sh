#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then builds
# and tests four ways — gcc (all suites, the QEMU guest tests of tests/vm/
# included), gcc under valgrind memcheck, gcc with ASan+UBSan, and a clang
# -Werror build — and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

status=0
run() { echo "+ $*"; "$@" || status=1; }

setup() { # dir, extra meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then run meson setup "$dir" "$@" >/dev/null || return 1; fi
  run meson compile -C "$dir" || return 1
}

logs=()
if setup build; then
  run meson test -C build --print-errorlogs --num-processes 2
  logs+=(build/meson-logs/testlog.json)
  # the QEMU guest tests (suite vm) run in the default build only: the
  # guest runs its own copies of the binaries, without valgrind or ASan;
  # so does the scale suite (10,000 flows: far too slow under either)
  run meson test -C build --setup valgrind --no-suite lint --no-suite vm --no-suite scale --no-suite bench \
    --print-errorlogs --num-processes 2
  logs+=(build/meson-logs/testlog-valgrind.json)
fi
if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run meson test -C build-asan --no-suite lint --no-suite vm --no-suite scale --print-errorlogs \
      --num-processes 2
  logs+=(build-asan/meson-logs/testlog.json)
fi
CC=clang setup build-clang || status=1

python3 scripts/tap-summary.py "${logs[@]}" || status=1
exit $status
