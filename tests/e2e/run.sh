#!/bin/sh
# Real-guest end-to-end test: a Linux guest in QEMU (Debian sid, TCG) drives
# the ufio sample device through QEMU's vfio-user-pci, and reports one line
# per check on its serial console.
#
#   tests/e2e/run.sh [--build DIR] [--server CMD] [--no-device] [--no-viommu]
#                    [--timeout S] [--keep] [--trace]
#
#   --build DIR    meson build directory (default: ./build, set up and built if needed)
#   --server CMD   device server command; "--socket-path=SOCK" is appended
#                  (default: DIR/samples/ufio-sample)
#   --no-device    boot without the device (checks the boot/verdict/teardown path;
#                  the guest then reports FAIL "device not found")
#   --no-viommu    no emulated Intel IOMMU: vfio-pci cannot bind (the sid kernel lacks
#                  VFIO_NOIOMMU), so only INTx (uio_pci_generic) and physical DMA are checked
#   --timeout S    hard limit for the whole run in seconds (default 240)
#   --keep         keep the work directory (serial, QEMU and server logs)
#   --trace        have QEMU log every vfio-user message (-trace 'vfio_user*')
#   --skip-unprepared  exit 77 (meson's "skipped") instead of running prepare.sh when
#                  the cached guest root is missing
#
# Environment: UFIO_E2E_CACHE (see prepare.sh), CC (default gcc).
# Prints "e2e: N passed, M failed" last; exits 0 only if the guest said PASS.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CACHE=${UFIO_E2E_CACHE:-/var/cache/ufio-e2e}
ROOT=$CACHE/root
BUILD=build
SERVER=
DEVICE=1
TIMEOUT=240
KEEP=0
TRACE=0
VIOMMU=1
SKIP_UNPREPARED=0

usage() { sed -n '2,27s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift ;;
        --build=*) BUILD=${1#*=} ;;
        --server) SERVER=$2; shift ;;
        --server=*) SERVER=${1#*=} ;;
        --no-device) DEVICE=0 ;;
        --no-viommu) VIOMMU=0 ;;
        --timeout) TIMEOUT=$2; shift ;;
        --timeout=*) TIMEOUT=${1#*=} ;;
        --keep) KEEP=1 ;;
        --trace) TRACE=1 ;;
        --skip-unprepared) SKIP_UNPREPARED=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac

START=$(date +%s)
DEADLINE=$((START + TIMEOUT))
log() { printf 'e2e: %s\n' "$*" >&2; }
left() { echo $((DEADLINE - $(date +%s))); }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ufio-e2e.XXXXXX")
SOCK=$WORK/dev.sock
SERIAL=$WORK/serial.log
SERVER_PID=
QEMU_PID=

# Stop what we started, by pid, gently first.
stop_pid() {
    pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
teardown() {
    stop_pid "$QEMU_PID"
    stop_pid "$SERVER_PID"
    QEMU_PID=''
    SERVER_PID=''
    if [ "$KEEP" = 1 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

diagnose() {
    echo "---- serial console (last 40 lines): $SERIAL" >&2
    tail -n 40 "$SERIAL" >&2 2>/dev/null || true
    echo "---- QEMU stderr (last 20 lines)" >&2
    tail -n 20 "$WORK/qemu.log" >&2 2>/dev/null || true
    if [ "$DEVICE" = 1 ]; then
        echo "---- server log (last 20 lines)" >&2
        tail -n 20 "$WORK/server.log" >&2 2>/dev/null || true
    fi
    echo "----" >&2
}

fail_early() {
    log "error: $*"
    echo "e2e: 0 passed, 1 failed"
    exit 1
}

# 1. The cached sid root (QEMU, kernel, busybox).
if [ ! -f "$ROOT/.ufio-e2e-complete" ] && [ "$SKIP_UNPREPARED" = 1 ]; then
    log "skipped: no cached guest root in $ROOT (run tests/e2e/prepare.sh as root)"
    exit 77
fi
if [ ! -f "$ROOT/.ufio-e2e-complete" ]; then
    log "no cached guest root in $ROOT: running prepare.sh (first time only)"
    "$HERE/prepare.sh" || fail_early "prepare.sh failed"
    # The download does not count against the test's own time limit.
    DEADLINE=$(($(date +%s) + TIMEOUT))
fi

# 2. What we build: the device server and the static guest program.
if [ "$DEVICE" = 1 ] && [ -z "$SERVER" ]; then
    if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" "$SRC" >"$WORK/build.log" 2>&1 ||
            { tail -n 30 "$WORK/build.log" >&2; fail_early "meson setup $BUILD failed"; }
    fi
    ninja -C "$BUILD" samples/ufio-sample >>"$WORK/build.log" 2>&1 ||
        { tail -n 30 "$WORK/build.log" >&2; fail_early "building ufio-sample failed"; }
    SERVER=$BUILD/samples/ufio-sample
fi
${CC:-gcc} -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$WORK/ufio-guest-test" \
    "$HERE"/guest/*.c >"$WORK/guest-build.log" 2>&1 ||
    { cat "$WORK/guest-build.log" >&2; fail_early "building the static guest program failed (libc6-dev provides libc.a)"; }
KERNEL=$("$HERE/mkinitramfs.sh" "$ROOT" "$WORK/ufio-guest-test" "$WORK/initramfs.cpio.gz") ||
    fail_early "building the initramfs failed"

# 3. The device server, on a socket of our own.
DEVICE_ARGS=
if [ "$DEVICE" = 1 ]; then
    # shellcheck disable=SC2086 # SERVER is a command line
    sh -c "exec $SERVER --socket-path=\"\$0\"" "$SOCK" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    while [ ! -S "$SOCK" ]; do
        kill -0 "$SERVER_PID" 2>/dev/null || { diagnose; fail_early "server exited before listening"; }
        [ "$(left)" -gt 0 ] || { diagnose; fail_early "server did not create $SOCK"; }
        sleep 0.1
    done
    DEVICE_ARGS="{\"driver\":\"vfio-user-pci\",\"bus\":\"rp0\",\"socket\":{\"path\":\"$SOCK\",\"type\":\"unix\"}}"
fi

# 4. The guest: sid's QEMU through the root's own loader (no chroot needed).
LIBS=$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu
set -- "$ROOT/lib64/ld-linux-x86-64.so.2" --library-path "$LIBS" \
    "$ROOT/usr/bin/qemu-system-x86_64" \
    -L "$ROOT/usr/share/qemu" -L "$ROOT/usr/share/seabios" \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -accel tcg -cpu max -m 512 \
    -object memory-backend-memfd,id=mem,size=512M,share=on \
    -machine q35,memory-backend=mem \
    -serial "file:$SERIAL" \
    -kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz"
APPEND="console=ttyS0 iomem=relaxed quiet panic=-1"
if [ "$VIOMMU" = 1 ]; then
    # The guest's vfio-pci needs an IOMMU group. caching-mode lets QEMU see
    # every guest mapping and forward it to the device as DMA_MAP.
    set -- "$@" -device intel-iommu,caching-mode=on
    APPEND="$APPEND intel_iommu=on"
fi
set -- "$@" -append "$APPEND"
# Behind a PCIe root port, as a plugged-in card is: on q35's root bus QEMU
# would present it as a root-complex integrated endpoint instead.
[ -z "$DEVICE_ARGS" ] || set -- "$@" -device pcie-root-port,id=rp0,chassis=1 -device "$DEVICE_ARGS"
[ "$TRACE" = 0 ] || set -- "$@" -trace 'vfio_user*'
QEMU_MODULE_DIR=$ROOT/usr/lib/x86_64-linux-gnu/qemu "$@" >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
log "guest booting (QEMU pid $QEMU_PID, limit $(left) s)"

TIMED_OUT=0
VERDICT_AT=
while kill -0 "$QEMU_PID" 2>/dev/null; do
    if [ "$(left)" -le 0 ]; then
        TIMED_OUT=1
        break
    fi
    # The guest powers off right after its verdict; give it a few seconds.
    if [ -z "$VERDICT_AT" ] && grep -qE '^UFIO-E2E: (PASS|FAIL)' "$SERIAL" 2>/dev/null; then
        VERDICT_AT=$(date +%s)
    fi
    if [ -n "$VERDICT_AT" ] && [ $(($(date +%s) - VERDICT_AT)) -gt 15 ]; then
        log "guest did not power off after its verdict"
        break
    fi
    sleep 0.2
done
QEMU_RC=0
if kill -0 "$QEMU_PID" 2>/dev/null; then
    stop_pid "$QEMU_PID"
else
    wait "$QEMU_PID" || QEMU_RC=$?
fi
QEMU_PID=

# 5. The verdict, from the serial console.
tr -d '\r' <"$SERIAL" >"$WORK/serial.txt" 2>/dev/null || : >"$WORK/serial.txt"
grep -E '^UFIO-E2E: (ok |not ok |# skip)' "$WORK/serial.txt" | sed 's/^UFIO-E2E: /  /' >&2 || true
PASSED=$(grep -cE '^UFIO-E2E: ok ' "$WORK/serial.txt" || true)
FAILED=$(grep -cE '^UFIO-E2E: not ok ' "$WORK/serial.txt" || true)
VERDICT=$(grep -E '^UFIO-E2E: (PASS|FAIL)' "$WORK/serial.txt" | tail -n 1 | sed 's/^UFIO-E2E: //')
OK=1
if [ "$TIMED_OUT" = 1 ]; then
    log "FAIL: hard time limit of $TIMEOUT s reached"
    OK=0
fi
case $VERDICT in
    PASS) ;;
    "") log "FAIL: no verdict on the serial console (QEMU exit status $QEMU_RC)"; OK=0 ;;
    *) log "guest verdict: $VERDICT"; OK=0 ;;
esac
if [ "$OK" = 0 ] && [ "$FAILED" = 0 ]; then
    FAILED=1 # a run that failed without a failing check still counts as one
fi
log "finished in $(($(date +%s) - START)) s"
if [ "$OK" = 1 ]; then
    log "guest verdict: PASS"
else
    diagnose
fi
echo "e2e: $PASSED passed, $FAILED failed"
[ "$OK" = 1 ]
