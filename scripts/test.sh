#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then builds
# and tests five ways — gcc (all suites, the QEMU guest tests of tests/vm/
# included), gcc under valgrind memcheck, gcc with ASan+UBSan, a clang
# -Werror build, and every libFuzzer target for 60 seconds (FUZZ_SECONDS)
# under clang ASan+UBSan — and ends with "N passed, N failed".
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
# libFuzzer targets (tests/fuzz/), 60 seconds each under ASan+UBSan: only
# the fuzz targets are built there (a clang ASan build of libconduit.so
# does not link with -Wl,--no-undefined)
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang run meson setup build-fuzz -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
if run meson compile -C build-fuzz fuzz; then
  tests/fuzz/run.sh "${FUZZ_SECONDS:-60}" build-fuzz | tee build-fuzz/fuzz.tap
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "not ok 1 - the fuzz targets did not build" > build-fuzz/fuzz.tap
fi
logs+=(build-fuzz/fuzz.tap)

python3 scripts/tap-summary.py "${logs[@]}" || status=1
exit $status
