#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs the README's
# C example against the installed libconduit.pc, like a new user would.
set -u
echo "1..6"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/# /'; }

if out=$(meson install -C "$CONDUIT_BUILDDIR" --no-rebuild --destdir "$tmp/root" 2>&1); then
  ok "meson install into a scratch destdir"
else
  nok "meson install into a scratch destdir" "$out"; exit 0
fi
pc=$(find "$tmp/root" -name libconduit.pc | head -n1)
root=$tmp/root
prefix=$(sed -n 's/^prefix=//p' "$pc")
if [ -n "$pc" ] && [ -f "$root$prefix/include/conduit/conduit.h" ] && ls "$root$prefix"/lib*/libconduit.so.0 >/dev/null 2>&1 ||
   ls "$root$prefix"/lib/*/libconduit.so.0 >/dev/null 2>&1; then
  ok "installs libconduit.pc, include/conduit/conduit.h and libconduit.so.0"
else
  nok "installs libconduit.pc, include/conduit/conduit.h and libconduit.so.0" "$(find "$tmp/root")"
fi
if [ -x "$root$prefix/bin/conduit-cat" ] && [ -f "$root$prefix/share/man/man1/conduit-cat.1" ] &&
   grep -q '^Requires.private:.*libssl' "$pc" && grep -q '^Requires.private:.*libevent' "$pc"; then
  ok "installs conduit-cat and its man page; .pc has OpenSSL and libevent as private requirements"
else
  nok "installs conduit-cat and its man page; .pc has OpenSSL and libevent as private requirements" "$(cat "$pc")"
fi

# The example in README.md between the markers, exactly as a user copies it.
sed -n '/<!-- example-begin -->/,/<!-- example-end -->/p' "$CONDUIT_SRCDIR/README.md" |
  sed '1,/^```c$/d;/^```$/,$d' > "$tmp/example.c"
pcdir=$(dirname "$pc")
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$root$prefix" --cflags --libs libconduit)
if [ -s "$tmp/example.c" ] &&
   out=$(cc -std=c11 -Wall -Wextra -Werror "$tmp/example.c" -o "$tmp/example" $flags 2>&1); then
  ok "README example ($(wc -l < "$tmp/example.c") lines) compiles with pkg-config --cflags --libs libconduit"
else
  nok "README example compiles with pkg-config --cflags --libs libconduit" "$out"
fi

# Run it against socat as an upper-casing echo peer over a Unix socket.
libdir=$(dirname "$(find "$root" -name libconduit.so.0 | head -n1)")
if ! command -v socat >/dev/null; then
  n=$((n + 1)); echo "ok $n - example talks to a peer # SKIP socat missing"
else
  socat -t 30 UNIX-LISTEN:"$tmp/echo.sock" SYSTEM:'tr a-z A-Z' & pids+=($!)
  for _ in $(seq 100); do [ -S "$tmp/echo.sock" ] && break; sleep 0.05; done
  out=$(LD_LIBRARY_PATH=$libdir timeout 30 "$tmp/example" "unix://$tmp/echo.sock" 2>&1)
  if [ "$out" = "HELLO, CONDUIT" ]; then ok "README example talks to a peer (got '$out')"; else
    nok "README example talks to a peer" "got: $out"; fi
fi
# The uninstalled-free build also works from C++.
printf '#include <conduit/conduit.h>\nint main() { return conduit_version()[0] == 0; }\n' > "$tmp/cxx.cc"
if command -v c++ >/dev/null && c++ "$tmp/cxx.cc" -o "$tmp/cxx" $flags 2>/dev/null && LD_LIBRARY_PATH=$libdir "$tmp/cxx"; then
  ok "a C++ program links and runs against the installed library"
else
  nok "a C++ program links and runs against the installed library"
fi
