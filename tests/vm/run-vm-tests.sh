#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The QEMU guest harness: runs the AF_VSOCK / Hyper-V tests inside a guest
# and reports them as one TAP stream (meson test 'vm', suite 'vm').
#
# Never connect an AF_VSOCK socket on the machine that runs this script: on a
# VM its vsock transport leads to the hypervisor running it. Everything that
# touches vsock runs inside the guest, which has only the loopback transport
# (vsock_loopback: CID 1 is the guest itself) and no vhost-vsock device.
#
# What it does:
#  1. checks for qemu-system-x86_64, a static busybox, cpio, gzip and socat;
#     without them it skips ("1..0 # SKIP ...", exit status 77, or
#     $CONDUIT_VM_SKIP_STATUS) unless CONDUIT_REQUIRE_VM=1 (then: failure);
#  2. fetches Debian's kernel (the package linux-image-amd64 depends on) with
#     `apt-get download` into a cache outside the repository and unpacks it
#     with `dpkg -x` (never installed); reused on later runs;
#  3. builds an initramfs: busybox, the three vsock modules, the test
#     programs, libconduit, socat and bash with every shared library they
#     need (ldd's list: libevent and OpenSSL for test-vsock-event too), and
#     the guest scripts (tests/vm/guest-tests.sh runs them;
#     tests/tap-lib.sh goes next to tests/vm/cat-vsock.sh, which sources it);
#  4. boots it under TCG (KVM is not used: it hangs on the machine this was
#     written on) with a bounded run time, capturing the serial console;
#  5. turns what the guest printed on the console (lines tagged "@@cvm|")
#     into TAP: one line per guest subtest, named "GUESTTEST: subtest", a
#     failing line for a guest test that crashed, timed out or printed
#     nothing, and one for a guest that never reported back.
#
# Environment: CONDUIT_BUILDDIR (required: the meson build directory),
# CONDUIT_SRCDIR (the source tree; default: two levels above this script),
# CONDUIT_REQUIRE_VM=1 (missing tools are a failure, as in CI),
# CONDUIT_VM_CACHE (kernel cache; default ${XDG_CACHE_HOME:-~/.cache}/conduit-vm),
# CONDUIT_VM_TIMEOUT (seconds for the whole guest run; default 1200),
# CONDUIT_VM_TESTS (space-separated guest test names: run only those),
# CONDUIT_VM_VERBOSE=1 (copy the guest console to stderr as it runs),
# CONDUIT_VM_SKIP_STATUS (exit status of a skip; default 77),
# CONDUIT_VM_REPLAY (a console log to report on instead of booting a guest).
set -u
set -o pipefail

SRCDIR=${CONDUIT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILDDIR=${CONDUIT_BUILDDIR:-}
REQUIRE=${CONDUIT_REQUIRE_VM:-0}
SKIP_STATUS=${CONDUIT_VM_SKIP_STATUS:-77}
VM_TIMEOUT=${CONDUIT_VM_TIMEOUT:-1200}
CACHE=${CONDUIT_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/conduit-vm}
VMDIR=$SRCDIR/tests/vm

diag() { sed 's/^/# /'; }
note() { echo "# $*"; }

# Missing prerequisites: a skip, or with CONDUIT_REQUIRE_VM=1 a failure.
unavailable() {
        if [ "$REQUIRE" = 1 ]; then
                echo "1..1"
                echo "not ok 1 - vm: cannot run the guest tests: $* (CONDUIT_REQUIRE_VM=1)"
                echo "vm: $* (CONDUIT_REQUIRE_VM=1 makes this a failure)" >&2
                exit 1
        fi
        echo "1..0 # SKIP cannot run the guest tests: $*"
        echo "vm: skipped: $*" >&2
        exit "$SKIP_STATUS"
}

# A harness failure after the prerequisites were found: one failing line.
broken() {
        echo "1..1"
        echo "not ok 1 - vm: $*"
        [ -n "${WORK:-}" ] && [ -s "$WORK/log" ] && tail -n 40 "$WORK/log" | diag
        exit 1
}

# ---- prerequisites -----------------------------------------------------------------

[ -n "$BUILDDIR" ] || broken "CONDUIT_BUILDDIR is not set"
QEMU=$(command -v qemu-system-x86_64) || unavailable "qemu-system-x86_64 is not installed (package qemu-system-x86)"
command -v cpio >/dev/null || unavailable "cpio is not installed"
command -v gzip >/dev/null || unavailable "gzip is not installed"
command -v ldd >/dev/null || unavailable "ldd is not installed"
SOCAT=$(command -v socat) || unavailable "socat is not installed"
BASH_BIN=$(command -v bash) || unavailable "bash is not in PATH"
BUSYBOX=
for b in /bin/busybox /usr/bin/busybox "$(command -v busybox)"; do
        [ -n "$b" ] && [ -x "$b" ] || continue
        # static: ldd says so (file(1) may not be installed)
        if LC_ALL=C ldd "$b" 2>&1 | grep -q 'not a dynamic executable' ||
                { command -v file >/dev/null && file -L "$b" | grep -q 'statically linked'; }; then
                BUSYBOX=$b
                break
        fi
done
[ -n "$BUSYBOX" ] || unavailable "no static busybox (package busybox-static)"

BINS=("$BUILDDIR/tests/test-conformance" "$BUILDDIR/tests/test-vsock"
        "$BUILDDIR/tests/test-vsock-event" "$BUILDDIR/src/cli/conduit-cat")
LIBCONDUIT=$BUILDDIR/libconduit.so.0
for f in "${BINS[@]}" "$LIBCONDUIT"; do
        [ -e "$f" ] || broken "$f is missing: build the project first (meson compile -C $BUILDDIR)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/conduit-vm.XXXXXX") || broken "mktemp failed"
QEMU_PID=
TAIL_PID=
cleanup() {
        [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
        [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null
        rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
: >"$WORK/log" # the harness's own log, shown when something breaks

# ---- the kernel ----------------------------------------------------------------------

# The kernel package linux-image-amd64 depends on ("linux-image-6.1.0-NN-amd64").
kernel_package() {
        LC_ALL=C apt-cache depends linux-image-amd64 2>>"$WORK/log" |
                sed -n 's/^ *|\{0,1\}Depends: \(linux-image-[^ <>]*\)$/\1/p' | head -n 1
}

# The newest complete kernel in the cache, or nothing.
cached_kernel() {
        local k
        k=$(ls -d "$CACHE"/linux-image-*/.complete 2>/dev/null | sort -V | tail -n 1)
        [ -n "$k" ] && echo "${k%/.complete}"
}

# Downloads and unpacks kernel package $1 into the cache; sets KDIR.
download_kernel() {
        local pkg=$1 tmp deb old
        command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
                echo "apt-get and dpkg are needed to fetch $pkg" >>"$WORK/log"
                return 1
        }
        note "fetching $pkg into $CACHE"
        tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX") || return 1
        # apt's warning that the _apt user cannot write here is harmless.
        # A mirror can fail for a moment: three tries, the package lists
        # refreshed before the last (as root), a pause between them.
        local try
        for try in 1 2 3; do
                (cd "$tmp" && apt-get download -q "$pkg") >>"$WORK/log" 2>&1 && break
                rm -f "$tmp"/*.deb
                if [ "$try" = 3 ]; then
                        rm -rf "$tmp"
                        return 1
                fi
                note "fetching $pkg failed (try $try of 3): trying again"
                sleep $((10 * try))
                if [ "$try" = 2 ] && [ "$(id -u)" = 0 ]; then
                        apt-get update -qq >>"$WORK/log" 2>&1
                fi
        done
        deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
        if [ -z "$deb" ] || ! dpkg -x "$deb" "$tmp/root" >>"$WORK/log" 2>&1; then
                rm -rf "$tmp"
                return 1
        fi
        touch "$tmp/root/.complete"
        rm -rf "${CACHE:?}/$pkg"
        mv "$tmp/root" "$CACHE/$pkg" && rm -rf "$tmp" || return 1
        KDIR=$CACHE/$pkg
        for old in "$CACHE"/linux-image-*; do # the kernels this one replaces
                [ "$old" = "$KDIR" ] || rm -rf "$old"
        done
}

# Sets KDIR to an unpacked kernel package in the cache: the one apt names,
# fetched if it is not there yet; else (no apt, no network) the newest one
# cached.
fetch_kernel() {
        local pkg
        pkg=$(kernel_package)
        if [ -n "$pkg" ] && [ -e "$CACHE/$pkg/.complete" ]; then
                KDIR=$CACHE/$pkg
                return 0
        fi
        if [ -n "$pkg" ] && download_kernel "$pkg"; then
                return 0
        fi
        [ -n "$pkg" ] || echo "apt-cache knows no linux-image-amd64 (apt-get update?)" >>"$WORK/log"
        KDIR=$(cached_kernel)
        [ -n "$KDIR" ] && note "using the cached ${KDIR##*/}${pkg:+ (cannot fetch $pkg)}"
        [ -n "$KDIR" ]
}

KDIR=
mkdir -p "$CACHE" 2>/dev/null || broken "cannot create the kernel cache $CACHE"
(
        # one fetch at a time per cache
        if command -v flock >/dev/null; then
                exec 9>"$CACHE/.lock"
                flock -w 900 9 || exit 1
        fi
        fetch_kernel && echo "$KDIR" >"$WORK/kdir"
) || unavailable "cannot fetch Debian's kernel into $CACHE: $(tail -n 3 "$WORK/log" | tr '\n' ' ')"
KDIR=$(cat "$WORK/kdir")
VMLINUZ=$(ls "$KDIR"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$VMLINUZ" ] || broken "no vmlinuz in $KDIR/boot"
KVER=${VMLINUZ##*/vmlinuz-}
MODDIR=$KDIR/lib/modules/$KVER/kernel/net/vmw_vsock

# ---- the initramfs ---------------------------------------------------------------------

ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,dev,etc,proc,sys,tmp,run,lib/modules/conduit,opt/conduit/{bin,lib,tests}}

# busybox and its applets
cp "$BUSYBOX" "$ROOT/bin/busybox" || broken "cannot copy busybox"
for a in $("$ROOT/bin/busybox" --list); do
        [ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"
done

# the vsock modules, uncompressed (busybox insmod takes plain .ko files)
for m in vsock vmw_vsock_virtio_transport_common vsock_loopback; do
        out=$ROOT/lib/modules/conduit/$m.ko
        if [ -f "$MODDIR/$m.ko" ]; then
                cp "$MODDIR/$m.ko" "$out"
        elif [ -f "$MODDIR/$m.ko.xz" ]; then
                xz -dc "$MODDIR/$m.ko.xz" >"$out"
        elif [ -f "$MODDIR/$m.ko.zst" ]; then
                zstd -qdc "$MODDIR/$m.ko.zst" >"$out"
        elif [ -f "$MODDIR/$m.ko.gz" ]; then
                gzip -dc "$MODDIR/$m.ko.gz" >"$out"
        else
                broken "module $m not found in $MODDIR"
        fi || broken "cannot unpack module $m"
done

# Copies shared library $1 (a path ldd printed) into the guest: libraries of
# the build go to /opt/conduit/lib, the others keep their path.
copy_lib() {
        local l=$1 dest
        case $l in
        "$BUILDDIR"/*) dest=/opt/conduit/lib/${l##*/} ;;
        *) dest=$l ;;
        esac
        [ -e "$ROOT$dest" ] && return 0
        mkdir -p "$ROOT$(dirname "$dest")" && cp -L "$l" "$ROOT$dest"
}

# Copies every shared library program $1 needs (the dynamic loader too).
copy_needed() {
        local out l
        out=$(LC_ALL=C ldd "$1" 2>&1) || {
                echo "ldd $1: $out" >>"$WORK/log"
                return 1
        }
        if grep -q 'not found' <<<"$out"; then
                echo "ldd $1: $out" >>"$WORK/log"
                return 1
        fi
        while read -r l; do
                [ -n "$l" ] && { copy_lib "$l" || return 1; }
        done < <(sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' <<<"$out")
}

for b in "${BINS[@]}"; do
        cp "$b" "$ROOT/opt/conduit/bin/" && copy_needed "$b" ||
                broken "cannot copy $b and its libraries"
done
cp -L "$LIBCONDUIT" "$ROOT/opt/conduit/lib/libconduit.so.0" && copy_needed "$LIBCONDUIT" ||
        broken "cannot copy libconduit"
for b in "$SOCAT" "$BASH_BIN"; do
        rm -f "$ROOT/bin/${b##*/}" # a busybox applet of that name, if any
        cp -L "$b" "$ROOT/bin/${b##*/}" && copy_needed "$b" || broken "cannot copy $b"
done
# cat-vsock.sh sources tap-lib.sh from its own directory
cp "$VMDIR/guest-tests.sh" "$VMDIR/cat-vsock.sh" "$SRCDIR/tests/tap-lib.sh" "$ROOT/opt/conduit/tests/" ||
        broken "cannot copy the guest scripts"

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\n' >"$ROOT/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOT/etc/hosts"
{
        # settings for the guest script (sourced by it)
        printf 'CONDUIT_VM_TESTS=%q\n' "${CONDUIT_VM_TESTS:-}"
} >"$ROOT/opt/conduit/tests/settings"

# PID 1: without /dev/console in the archive the kernel gives it no stdio,
# so it mounts devtmpfs first and takes the console from there.
cat >"$ROOT/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
export PATH=/opt/conduit/bin:/bin HOME=/root TMPDIR=/tmp
/bin/busybox dmesg -n 1 # keep kernel messages off the console
echo "@@cvm|boot"
/bin/bash /opt/conduit/tests/guest-tests.sh
echo "@@cvm|exit $?"
/bin/busybox sync
/bin/busybox poweroff -f
EOF
chmod 755 "$ROOT/init"

(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd" ||
        broken "cannot build the initramfs"
note "initramfs: $(($(wc -c <"$WORK/initrd") / 1024)) KiB, kernel $KVER"

# ---- the guest ---------------------------------------------------------------------------

# The guest tests, in order (the guest script knows them).
mapfile -t TESTS < <(
        if [ -n "${CONDUIT_VM_TESTS:-}" ]; then
                tr ' ' '\n' <<<"$CONDUIT_VM_TESTS" | grep -v '^$'
        else
                "$BASH_BIN" "$VMDIR/guest-tests.sh" --list
        fi
)
[ ${#TESTS[@]} -gt 0 ] || broken "guest-tests.sh --list named no tests"

CONSOLE=$WORK/console.log
start=$(date +%s)
# No network device, no vhost-vsock device: the guest's only vsock transport
# is its own loopback.
qemu_cmd=(timeout -k 10 "$VM_TIMEOUT" "$QEMU" -accel tcg -m 1024 -smp 2 -nographic -no-reboot
        -nic none -kernel "$VMLINUZ" -initrd "$WORK/initrd"
        -append "console=ttyS0 panic=-1 quiet")
: >"$CONSOLE"
TAIL_PID=
if [ "${CONDUIT_VM_VERBOSE:-0}" = 1 ]; then
        tail -n +1 -f "$CONSOLE" >&2 &
        TAIL_PID=$!
fi
if [ -n "${CONDUIT_VM_REPLAY:-}" ]; then
        # parse a console log saved earlier instead of booting (to test
        # this script's reporting)
        cp "$CONDUIT_VM_REPLAY" "$CONSOLE"
        qemu_rc=${CONDUIT_VM_REPLAY_STATUS:-0}
else
        "${qemu_cmd[@]}" </dev/null >"$CONSOLE" 2>&1 &
        QEMU_PID=$!
        wait "$QEMU_PID"
        qemu_rc=$?
        QEMU_PID=
fi
if [ -n "$TAIL_PID" ]; then
        sleep 0.2
        kill "$TAIL_PID" 2>/dev/null
        wait "$TAIL_PID" 2>/dev/null
        TAIL_PID=
fi
elapsed=$(($(date +%s) - start))

# ---- results -----------------------------------------------------------------------------

# The guest's lines, without the console's carriage returns and whatever
# preceded the tag on the line (terminal resets, kernel messages).
RES=$WORK/results
mkdir -p "$RES"
tr -d '\r' <"$CONSOLE" | sed -n "s/.*@@cvm|//p" >"$WORK/tagged"
cur=
guest_done=false
booted=false
while IFS= read -r line; do
        case $line in
        boot) booted=true ;;
        "begin "*)
                cur=${line#begin }
                : >"$RES/$cur.out"
                : >"$RES/$cur.err"
                ;;
        "out "*)
                rest=${line#out }
                name=${rest%% *}
                [ "$rest" = "$name" ] && rest= || rest=${rest#* }
                echo "$rest" >>"$RES/$name.out"
                ;;
        "err "*)
                rest=${line#err }
                name=${rest%% *}
                [ "$rest" = "$name" ] && rest= || rest=${rest#* }
                echo "$rest" >>"$RES/$name.err"
                ;;
        "end "*)
                rest=${line#end }
                echo "${rest#* }" >"$RES/${rest%% *}.status"
                cur=
                ;;
        "time "*)
                rest=${line#time }
                echo "${rest#* }" >"$RES/${rest%% *}.time"
                ;;
        "note "*) note "${line#note }" ;;
        done) guest_done=true ;;
        esac
done <"$WORK/tagged"

N=0
FAILED=0
emit() { # ok|not ok, description
        N=$((N + 1))
        echo "$1 $N - $2"
        [ "$1" = ok ] || FAILED=$((FAILED + 1))
}

for t in "${TESTS[@]}"; do
        out=$RES/$t.out
        if [ ! -e "$out" ]; then
                if $guest_done; then
                        emit "not ok" "$t: never ran in the guest"
                else
                        emit "not ok" "$t: never ran (the guest stopped before it)"
                fi
                continue
        fi
        nlines=0 nfail=0 plan=
        while IFS= read -r l; do
                if [[ $l =~ ^(ok|not\ ok)([[:space:]]+[0-9]+)?([[:space:]]+-)?[[:space:]]*(.*)$ ]]; then
                        nlines=$((nlines + 1))
                        res=${BASH_REMATCH[1]} desc=${BASH_REMATCH[4]}
                        [ "$res" = ok ] || nfail=$((nfail + 1))
                        # Check names a case "path/test-x.c:tcase:test: Passed"
                        [[ $desc =~ ^[^[:space:]]*\.c:(.*)$ ]] && desc=${BASH_REMATCH[1]}
                        emit "$res" "$t: $desc"
                elif [[ $l =~ ^1\.\.([0-9]+) ]]; then
                        plan=${BASH_REMATCH[1]}
                        if [ "$plan" = 0 ]; then
                                reason=$(sed -n 's/^1\.\.0[[:space:]]*#[[:space:]]*[Ss][Kk][Ii][Pp][[:space:]]*//p' <<<"$l")
                                emit ok "$t: skipped # SKIP ${reason:-no reason given}"
                                nlines=$((nlines + 1))
                        fi
                elif [[ $l =~ ^Bail\ out! ]]; then
                        emit "not ok" "$t: $l"
                        nlines=$((nlines + 1))
                        nfail=$((nfail + 1))
                elif [[ $l =~ ^# ]]; then
                        echo "$l"
                fi
        done <"$out"
        status=$(cat "$RES/$t.status" 2>/dev/null)
        if [ -z "$status" ]; then
                emit "not ok" "$t: did not finish (the guest stopped while it ran)"
        elif [ "$nlines" = 0 ]; then
                emit "not ok" "$t: printed no TAP lines (exit status $status)"
        elif [ -n "$plan" ] && [ "$plan" != 0 ] && [ "$plan" != "$((nlines))" ]; then
                emit "not ok" "$t: ran $nlines of the $plan subtests it planned (exit status $status)"
        elif [ "$status" != 0 ] && [ "$nfail" = 0 ]; then
                case $status in
                timeout | 124 | 137 | 143) emit "not ok" "$t: killed by the guest's time limit (status $status)" ;;
                *) emit "not ok" "$t: exited with status $status without a failing subtest" ;;
                esac
        fi
        if [ -s "$RES/$t.err" ] && { [ "$status" != 0 ] || [ -z "$status" ]; }; then
                echo "# --- $t: stderr (last lines)"
                diag <"$RES/$t.err"
        fi
        [ -s "$RES/$t.time" ] && note "$t: $(cat "$RES/$t.time") s in the guest"
done

if ! $guest_done; then
        if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
                why="timed out after $VM_TIMEOUT s"
        elif ! $booted; then
                why="never started its tests (qemu exit status $qemu_rc; kernel panic?)"
        else
                why="stopped before reporting all results (qemu exit status $qemu_rc)"
        fi
        emit "not ok" "vm: the guest $why"
        echo "# --- the guest console (last lines)"
        tr -d '\r' <"$CONSOLE" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tail -n 40 | diag
fi

echo "1..$N"
note "guest run: ${elapsed} s (qemu exit status $qemu_rc), $((N - FAILED)) passed, $FAILED failed"
echo "vm: guest run took ${elapsed} s" >&2
[ "$FAILED" = 0 ]
