#!/usr/bin/env bash
# Installs the packages libconduit needs to build and test, if missing.
# Usage: scripts/deps.sh [build|test]   (test adds valgrind, clang, socat, ...)
set -eu
want=(meson ninja-build pkg-config gcc libc6-dev libssl-dev libevent-dev check socat openssl)
if [ "${1:-build}" = test ]; then
  want+=(g++ valgrind clang clang-format libclang-rt-14-dev python3 git groff-base iproute2)
  # tests/vm/: a QEMU guest (TCG) with a busybox initramfs
  want+=(qemu-system-x86 busybox-static cpio)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
