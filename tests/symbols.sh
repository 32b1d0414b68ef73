#!/usr/bin/env bash
# Only conduit_* may be exported, all under the LIBCONDUIT_0.1 version node,
# and the SONAME is libconduit.so.0.
set -u
lib=$1
echo "1..4"
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
bad=$(printf '%s\n' "$syms" | grep -v '^conduit_[a-z]' | grep -v '^LIBCONDUIT_' | grep -v '^$')
[ -z "$bad" ] || { echo "# unexpected exports:"; printf '#   %s\n' $bad; }
check "exports nothing but conduit_*" '[ -z "$bad" ]'
check "exports the public API (conduit_connect, conduit_flow_read, conduit_strerror)" \
  'printf "%s\n" "$syms" | grep -qx conduit_connect && printf "%s\n" "$syms" | grep -qx conduit_flow_read && printf "%s\n" "$syms" | grep -qx conduit_strerror'
check "every export is versioned LIBCONDUIT_0.1" \
  '[ -z "$(nm -D --defined-only "$lib" | awk "{print \$3}" | grep "^conduit_" | grep -v "@@LIBCONDUIT_0.1$")" ]'
check "SONAME is libconduit.so.0" \
  'objdump -p "$lib" | grep -q "SONAME *libconduit.so.0$"'
