#!/usr/bin/env bash
# Every public header compiles on its own as strict C99 and as C++.
set -u
inc=$CONDUIT_SRCDIR/include
headers=$(cd "$inc" && ls conduit/*.h)
cc=${CC:-cc}
cxx=${CXX:-}
[ -n "$cxx" ] || cxx=$(command -v c++ || command -v g++ || command -v clang++ || true)
count=$(echo "$headers" | wc -w)
echo "1..$((count * 2))"
n=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for h in $headers; do
  n=$((n + 1))
  printf '#include <%s>\nint conduit_header_test_anchor;\n' "$h" > "$tmp/t.c"
  if out=$($cc -std=c99 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o" 2>&1); then
    echo "ok $n - $h compiles alone with -std=c99 -pedantic -Werror"
  else
    echo "not ok $n - $h compiles alone with -std=c99 -pedantic -Werror"; echo "$out" | sed 's/^/# /'
  fi
  n=$((n + 1))
  if [ -z "$cxx" ]; then echo "ok $n - $h from C++ # SKIP no C++ compiler"; continue; fi
  cp "$tmp/t.c" "$tmp/t.cc"
  if out=$($cxx -std=c++11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.cc" -o "$tmp/t.o" 2>&1); then
    echo "ok $n - $h compiles from C++"
  else
    echo "not ok $n - $h compiles from C++"; echo "$out" | sed 's/^/# /'
  fi
done
