#!/bin/sh
# Real-guest end-to-end test: a Linux guest in QEMU (Debian sid, TCG) drives
# the ufio sample device through QEMU's vfio-user-pci, and reports one line
# per check on its serial console. With --virtio-blk the guest's own virtio
# drivers run ufio-virtio-blk instead (three boots, see docs/e2e.md). With
# --vfio-pci the guest itself runs ufio-vfio-pci in front of two QEMU edu
# devices bound to vfio-pci, and ufio's client drives and migrates them
# (docs/vfio-pci.md).
#
#   tests/e2e/run.sh [--build DIR] [--server CMD] [--no-device] [--no-viommu]
#                    [--virtio-blk | --vfio-pci] [--workload N [--sample]] [--window-cmd CMD]
#                    [--disk-mib N] [--timeout S] [--keep] [--trace]
#
#   --build DIR    meson build directory (default: ./build, set up and built if needed)
#   --server CMD   device server command; "--socket-path=SOCK" is appended
#                  (default: DIR/samples/ufio-sample, or ufio-virtio-blk with
#                  "--file=DISK" before it)
#   --virtio-blk   the virtio-blk test: write + read back, a second boot reads the
#                  first boot's data, the host compares the backing file, and the
#                  same guest runs on QEMU's built-in virtio-blk for comparison
#   --vfio-pci     ufio-vfio-pci inside the guest serving two edu devices through the
#                  guest's VFIO (emulated Intel IOMMU): registers, MSI, DMA, mmap'd BAR
#                  with no messages, migration edu #1 -> #2 through the edu plugin, bad
#                  input; then a benchmark (mmap vs REGION_READ, interrupt latency)
#   --workload N   the virtio-blk workload test: the guest writes and verifies
#                  continuously (O_DIRECT, checksummed blocks) while the host marks N
#                  windows (a handover in each with --window-cmd); then the guest
#                  verifies every block and its kernel log, the host checks the image
#   --sample       with --workload: the workload runs on ufio-sample instead (vfio-pci
#                  in the guest: BAR0 registers, MSI-X, DMA, BAR2; all checked)
#   --window-cmd CMD  shell command run inside each window (env: SOCK, WINDOW, SERVER,
#                  SERVER_ARGS, DISK, WORKDIR, SERVER_PID_FILE: a command that replaces
#                  the server writes the new pid there, as tests/e2e/takeover-window.sh
#                  does); it must return 0
#   --disk-mib N   size of the virtio-blk backing file (default 32, at least 24)
#   --no-device    boot without the device (checks the boot/verdict/teardown path;
#                  the guest then reports FAIL "device not found")
#   --no-viommu    no emulated Intel IOMMU: vfio-pci cannot bind (the sid kernel lacks
#                  VFIO_NOIOMMU), so only INTx (uio_pci_generic) and physical DMA are checked
#   --timeout S    hard limit for the whole run in seconds (default 240)
#   --keep         keep the work directory (serial, QEMU and server logs)
#   --trace        have QEMU log every vfio-user message, timestamped (-trace 'vfio_user*')
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
VBLK=0
VFIOPCI=0
DISK_MIB=32
WORKLOAD=0
SAMPLE_WL=0
WINDOW_CMD=

usage() { sed -n '2,45s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift ;;
        --build=*) BUILD=${1#*=} ;;
        --server) SERVER=$2; shift ;;
        --server=*) SERVER=${1#*=} ;;
        --no-device) DEVICE=0 ;;
        --no-viommu) VIOMMU=0 ;;
        --virtio-blk) VBLK=1 ;;
        --vfio-pci) VFIOPCI=1 ;;
        --workload) WORKLOAD=$2; shift ;;
        --workload=*) WORKLOAD=${1#*=} ;;
        --sample) SAMPLE_WL=1 ;;
        --window-cmd) WINDOW_CMD=$2; shift ;;
        --window-cmd=*) WINDOW_CMD=${1#*=} ;;
        --disk-mib) DISK_MIB=$2; shift ;;
        --disk-mib=*) DISK_MIB=${1#*=} ;;
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
case $WORKLOAD in ''|*[!0-9]*) echo "run.sh: bad --workload '$WORKLOAD'" >&2; exit 2 ;; esac
if [ "$SAMPLE_WL" = 1 ]; then
    if [ "$WORKLOAD" = 0 ] || [ "$VBLK" = 1 ] || [ "$VFIOPCI" = 1 ] || [ "$DEVICE" = 0 ]; then
        echo "run.sh: --sample goes with --workload N alone" >&2
        exit 2
    fi
elif [ "$WORKLOAD" -gt 0 ]; then
    VBLK=1 # the workload runs on ufio-virtio-blk
fi
[ "$VBLK" = 0 ] || [ "$VFIOPCI" = 0 ] || { echo "run.sh: --virtio-blk and --vfio-pci exclude each other" >&2; exit 2; }
if [ "$VBLK" = 1 ]; then
    case $DISK_MIB in ''|*[!0-9]*) echo "run.sh: bad --disk-mib '$DISK_MIB'" >&2; exit 2 ;; esac
    [ "$DISK_MIB" -ge 24 ] || { echo "run.sh: --disk-mib must be at least 24" >&2; exit 2; }
    [ "$DEVICE" = 1 ] || { echo "run.sh: --virtio-blk needs the device" >&2; exit 2; }
fi

START=$(date +%s)
DEADLINE=$((START + TIMEOUT))
log() { printf 'e2e: %s\n' "$*" >&2; }
left() { echo $((DEADLINE - $(date +%s))); }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ufio-e2e.XXXXXX")
SOCK=$WORK/dev.sock
SERIAL=$WORK/serial.log
SERVER_PID=
QEMU_PID=
DRIVER_PID=
CAT_PID=

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
    stop_pid "$DRIVER_PID"
    stop_pid "$QEMU_PID"
    stop_pid "$SERVER_PID"
    stop_pid "$CAT_PID"
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
    tail -n 20 "$WORK/qemu$LOGTAG.log" >&2 2>/dev/null || true
    if [ "$DEVICE" = 1 ] && [ -f "$WORK/server$LOGTAG.log" ]; then
        echo "---- server log (last 20 lines)" >&2
        tail -n 20 "$WORK/server$LOGTAG.log" >&2 2>/dev/null || true
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
SERVER_BIN=ufio-sample
[ "$VBLK" = 0 ] || SERVER_BIN=ufio-virtio-blk
if [ "$VFIOPCI" = 1 ]; then
    # everything runs in the guest: the server, the plugin and the client
    if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" "$SRC" >"$WORK/build.log" 2>&1 ||
            { tail -n 30 "$WORK/build.log" >&2; fail_early "meson setup $BUILD failed"; }
    fi
    ninja -C "$BUILD" tools/ufio-vfio-pci plugins/ufio-edu-migration.so tests/e2e/ufio-e2e-edu-client \
        >>"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; fail_early "building the vfio-pci programs failed"; }
    UFIO_E2E_EXTRA="$BUILD/tools/ufio-vfio-pci $BUILD/plugins/ufio-edu-migration.so $BUILD/tests/e2e/ufio-e2e-edu-client"
    export UFIO_E2E_EXTRA
elif [ "$DEVICE" = 1 ] && [ -z "$SERVER" ]; then
    if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" "$SRC" >"$WORK/build.log" 2>&1 ||
            { tail -n 30 "$WORK/build.log" >&2; fail_early "meson setup $BUILD failed"; }
    fi
    ninja -C "$BUILD" "samples/$SERVER_BIN" >>"$WORK/build.log" 2>&1 ||
        { tail -n 30 "$WORK/build.log" >&2; fail_early "building $SERVER_BIN failed"; }
    SERVER=$BUILD/samples/$SERVER_BIN
fi
${CC:-gcc} -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$WORK/ufio-guest-test" \
    "$HERE"/guest/*.c >"$WORK/guest-build.log" 2>&1 ||
    { cat "$WORK/guest-build.log" >&2; fail_early "building the static guest program failed (libc6-dev provides libc.a)"; }
KERNEL=$("$HERE/mkinitramfs.sh" "$ROOT" "$WORK/ufio-guest-test" "$WORK/initramfs.cpio.gz") ||
    fail_early "building the initramfs failed"

# 3. Booting: one guest at a time, each with its own serial, QEMU and server logs.
LIBS=$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu
PASSED=0
FAILED=0
OK=1
LOGTAG=
HOLD=

# Starts the device server: "CMD ARGS --socket-path=SOCK", waits for the socket.
start_server() {
    rm -f "$SOCK"
    # shellcheck disable=SC2086 # SERVER is a command line
    sh -c "exec $SERVER $1 --socket-path=\"\$0\"" "$SOCK" >"$WORK/server$LOGTAG.log" 2>&1 &
    SERVER_PID=$!
    while [ ! -S "$SOCK" ]; do
        kill -0 "$SERVER_PID" 2>/dev/null || { diagnose; fail_early "server exited before listening"; }
        [ "$(left)" -gt 0 ] || { diagnose; fail_early "server did not create $SOCK"; }
        sleep 0.1
    done
}

stop_server() {
    stop_pid "$SERVER_PID"
    SERVER_PID=
}

# The vfio-user-pci device on the root port, for the server on $SOCK.
ufio_device() {
    echo "{\"driver\":\"vfio-user-pci\",\"bus\":\"rp0\",\"socket\":{\"path\":\"$SOCK\",\"type\":\"unix\"}}"
}

# boot APPEND [QEMU ARGS...]: sid's QEMU through the root's own loader (no
# chroot needed), until the guest powers off after its verdict; then counts
# its checks. BOOT_OK=1 if it said PASS.
boot() {
    if [ "$(left)" -le 0 ]; then
        log "FAIL: no time left for boot${LOGTAG:+ $LOGTAG} (limit $TIMEOUT s)"
        BOOT_OK=0
        OK=0
        FAILED=$((FAILED + 1))
        return
    fi
    append="console=ttyS0 iomem=relaxed quiet panic=-1 $1"
    shift
    SERIAL=$WORK/serial$LOGTAG.log
    QLOG=$WORK/qemu$LOGTAG.log
    # timestamped (realtime, µs) for scripts/bench-handover-guest.sh
    [ "$TRACE" = 0 ] || set -- "$@" -trace 'vfio_user*' -msg timestamp=on
    QEMU_MODULE_DIR=$ROOT/usr/lib/x86_64-linux-gnu/qemu \
        "$ROOT/lib64/ld-linux-x86-64.so.2" --library-path "$LIBS" \
        "$ROOT/usr/bin/qemu-system-x86_64" \
        -L "$ROOT/usr/share/qemu" -L "$ROOT/usr/share/seabios" \
        -nodefaults -no-user-config -display none -monitor none -no-reboot \
        -accel tcg -cpu max -m 512 \
        -object memory-backend-memfd,id=mem,size=512M,share=on \
        -machine q35,memory-backend=mem \
        -serial "${SERIAL_OPT:-file:$SERIAL}" \
        -kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz" -append "$append" \
        "$@" >"$QLOG" 2>&1 &
    QEMU_PID=$!
    log "guest${LOGTAG:+ $LOGTAG} booting (QEMU pid $QEMU_PID, limit $(left) s)"

    timed_out=0
    verdict_at=
    held=
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if [ "$(left)" -le 0 ]; then
            timed_out=1
            break
        fi
        # The guest powers off right after its verdict; give it a few seconds.
        if [ -z "$verdict_at" ] && [ -z "$HOLD" ] && grep -qE '^UFIO-E2E: (PASS|FAIL)' "$SERIAL" 2>/dev/null; then
            verdict_at=$(date +%s)
        fi
        if [ -n "$HOLD" ] && [ -z "$held" ] && grep -q '^UFIO-E2E: # holding for the host' "$SERIAL" 2>/dev/null; then
            held=1
            $HOLD
            echo go >"$WORK/ctl.in" # the guest powers off
            verdict_at=$(date +%s)
        fi
        if [ -n "$verdict_at" ] && [ $(($(date +%s) - verdict_at)) -gt 15 ]; then
            log "guest did not power off after its verdict"
            break
        fi
        sleep 0.2
    done
    qemu_rc=0
    if kill -0 "$QEMU_PID" 2>/dev/null; then
        stop_pid "$QEMU_PID"
    else
        wait "$QEMU_PID" || qemu_rc=$?
    fi
    QEMU_PID=

    # The verdict, from the serial console.
    if [ -f "$SERIAL" ]; then
        tr -d '\r' <"$SERIAL" >"$WORK/serial$LOGTAG.txt"
    else
        : >"$WORK/serial$LOGTAG.txt"
    fi
    grep -E '^UFIO-E2E: (ok |not ok |# skip)' "$WORK/serial$LOGTAG.txt" | sed 's/^UFIO-E2E: /  /' >&2 || true
    passed=$(grep -cE '^UFIO-E2E: ok ' "$WORK/serial$LOGTAG.txt" || true)
    failed=$(grep -cE '^UFIO-E2E: not ok ' "$WORK/serial$LOGTAG.txt" || true)
    verdict=$(grep -E '^UFIO-E2E: (PASS|FAIL)' "$WORK/serial$LOGTAG.txt" | tail -n 1 | sed 's/^UFIO-E2E: //')
    BOOT_OK=1
    if [ "$timed_out" = 1 ]; then
        log "FAIL: hard time limit of $TIMEOUT s reached"
        BOOT_OK=0
    fi
    case $verdict in
        PASS) ;;
        "") log "FAIL: no verdict on the serial console (QEMU exit status $qemu_rc)"; BOOT_OK=0 ;;
        *) log "guest verdict: $verdict"; BOOT_OK=0 ;;
    esac
    if [ "$BOOT_OK" = 0 ] && [ "$failed" = 0 ]; then
        failed=1 # a run that failed without a failing check still counts as one
    fi
    PASSED=$((PASSED + passed))
    FAILED=$((FAILED + failed))
    if [ "$BOOT_OK" = 0 ]; then
        OK=0
        diagnose
    fi
}

# A check made on the host, counted with the guest's.
host_check() {
    name=$1
    shift
    if "$@"; then
        echo "  ok $name" >&2
        PASSED=$((PASSED + 1))
    else
        echo "  not ok $name" >&2
        FAILED=$((FAILED + 1))
        OK=0
    fi
}

# While the guest runs (QEMU the owner of the device socket), the host's
# ufio-lspci -xxxx reaches the device through its management socket; the
# command register and the BARs it prints must be what the guest programmed,
# as the guest's sysfs config dump (hexdump -C on the serial console) says.
guest_cfg_bytes() { # first 48 bytes of the guest's dump, one hex byte per line
    grep -a 'UFIO-E2E: # cfg 000000[0-2]0 ' "$SERIAL" | tr -d '\r' | head -n 3 |
        awk '{ for (i = 5; i <= 20; i++) print $i }'
}
host_cfg_bytes() {
    grep -E '^[0-2]0: ' "$WORK/host-lspci.txt" | awk '{ for (i = 2; i <= 17; i++) print $i }'
}
cfg_matches() {
    guest_cfg_bytes >"$WORK/guest-cfg.hex"
    host_cfg_bytes >"$WORK/host-cfg.hex"
    [ "$(wc -l <"$WORK/guest-cfg.hex")" = 48 ] && [ "$(wc -l <"$WORK/host-cfg.hex")" = 48 ] || return 1
    # command (0x04-0x05) and BAR0..BAR5 (0x10-0x27)
    g=$(sed -n '5,6p;17,40p' "$WORK/guest-cfg.hex" | tr '\n' ' ')
    h=$(sed -n '5,6p;17,40p' "$WORK/host-cfg.hex" | tr '\n' ' ')
    log "guest sees command+BARs: $g"
    log "host ufio-lspci sees:    $h"
    [ "$g" = "$h" ] && [ "$g" != "$(echo "$g" | sed 's/[^ ]*/00/g')" ]
}
host_reads_config() {
    if "$BUILD/tools/ufio-lspci" -xxxx "$SOCK" >"$WORK/host-lspci.txt" 2>"$WORK/host-lspci.err"; then
        host_check "host ufio-lspci -xxxx through the management socket while the guest runs" true
        host_check "its command register and BARs equal the guest's sysfs view" cfg_matches
    else
        log "ufio-lspci: $(cat "$WORK/host-lspci.err")"
        host_check "host ufio-lspci -xxxx through the management socket while the guest runs" false
    fi
}

# The backing file holds exactly what the guest's write boot put there.
disk_as_expected() {
    "$WORK/ufio-guest-test" vblk expect "$DISK_BYTES" >"$WORK/expected.img" &&
        cmp "$WORK/disk.img" "$WORK/expected.img" >&2
}

run_sample() {
    set --
    if [ "$DEVICE" = 1 ]; then
        start_server ""
        set -- -device pcie-root-port,id=rp0,chassis=1 -device "$(ufio_device)"
    fi
    APPEND=
    if [ "$VIOMMU" = 1 ]; then
        # The guest's vfio-pci needs an IOMMU group. caching-mode lets QEMU see
        # every guest mapping and forward it to the device as DMA_MAP.
        set -- -device intel-iommu,caching-mode=on "$@"
        APPEND="intel_iommu=on"
    fi
    if [ "$DEVICE" = 1 ]; then
        # a second serial port the host answers the guest's hold on (init)
        rm -f "$WORK/ctl.in" "$WORK/ctl.out"
        mkfifo "$WORK/ctl.in" "$WORK/ctl.out"
        set -- "$@" -chardev "pipe,id=ctl,path=$WORK/ctl" -serial chardev:ctl
        APPEND="$APPEND ufio.hold=1"
        HOLD=host_reads_config
    fi
    # Behind a PCIe root port, as a plugged-in card is: on q35's root bus QEMU
    # would present it as a root-complex integrated endpoint instead.
    boot "$APPEND" "$@"
    HOLD=
    if [ "$BOOT_OK" = 1 ]; then
        log "guest verdict: PASS"
    fi
}

# Three boots on one backing file: ufio-virtio-blk written and read back,
# ufio-virtio-blk again (a new server process, --direct) reading the first
# boot's data, then QEMU's built-in virtio-blk (cache=none) on the same file,
# for comparison. Each boot also measures O_DIRECT throughput. No
# emulated IOMMU: virtio_blk uses guest physical addresses (no
# VIRTIO_F_ACCESS_PLATFORM), which QEMU maps for the device with DMA_MAP.
run_virtio_blk() {
    DISK_BYTES=$((DISK_MIB * 1024 * 1024))
    truncate -s "$DISK_BYTES" "$WORK/disk.img"
    rp="-device pcie-root-port,id=rp0,chassis=1"
    for mode in write verify; do
        LOGTAG=-$mode
        [ "$(left)" -gt 0 ] || break
        # the second server writes with O_DIRECT, as QEMU's cache=none does below
        opts="--file=$WORK/disk.img"
        [ "$mode" = write ] || opts="$opts --direct"
        start_server "$opts"
        # shellcheck disable=SC2086 # rp is two arguments
        boot "ufio.args=vblk,$mode,$DISK_BYTES,ufio-virtio-blk" $rp -device "$(ufio_device)"
        stop_server
        sed -n 's/^ufio-virtio-blk: \([0-9]* requests.*\)/e2e: server (boot '"$mode"'): \1/p' \
            "$WORK/server$LOGTAG.log" >&2
        host_check "host-disk-image-after-$mode" disk_as_expected
    done
    LOGTAG=-builtin
    # shellcheck disable=SC2086 # rp is two arguments
    boot "ufio.args=vblk,builtin,$DISK_BYTES,qemu-virtio-blk" $rp \
        -drive "file=$WORK/disk.img,if=none,id=d0,format=raw,cache=none" \
        -device virtio-blk-pci,drive=d0,bus=rp0,disable-legacy=on,serial=qemu-virtio-blk
    host_check host-disk-image-after-builtin disk_as_expected
    for b in "write:page cache" "verify:--direct" "builtin:cache=none"; do
        [ -f "$WORK/serial-${b%%:*}.txt" ] || continue
        sed -n "s/^UFIO-E2E: # bench \([^ ]*\) \(.*\)/e2e: throughput: \1 (${b#*:}) \2/p" \
            "$WORK/serial-${b%%:*}.txt" >&2
    done
    if [ "$OK" = 1 ]; then
        log "all boots: PASS"
    fi
}

# Two edu devices on the root bus (one IOMMU group each) behind the emulated
# Intel IOMMU, which gives the guest's vfio-pci DMA remapping and interrupt
# remapping; ufio-vfio-pci serves them inside the guest.
run_vfio_pci() {
    LOGTAG=-vfio-pci
    boot "intel_iommu=on ufio.args=edu" -device intel-iommu,intremap=on \
        -device edu,id=edu1 -device edu,id=edu2
    sed -n 's/^UFIO-E2E: # bench \(.*\)/e2e: bench (guest, TCG): \1/p' "$WORK/serial$LOGTAG.txt" >&2
    if [ "$BOOT_OK" = 1 ]; then
        log "guest verdict: PASS"
    fi
}

# Waits (deadline: the run's) until the serial log has a line with text.
wait_console() {
    while ! tr -d '\r' <"$SERIAL" 2>/dev/null | grep -qF "$1"; do
        [ "$(left)" -gt 0 ] || { log "no '$1' on the console"; return 1; }
        sleep 0.1
    done
}

# The host's half of the workload: WORKLOAD windows, each acknowledged by
# the guest at its start and end (after some I/O outside it), with
# WINDOW_CMD inside; then "stop". Runs in the background during the boot.
drive_windows() {
    wait_console "# wv running" || return 1
    w=1
    while [ "$w" -le "$WORKLOAD" ]; do
        # the host's clock at each mark, for scripts/bench-handover-guest.sh
        echo "$w begin $(date +%s.%N)" >>"$WORK/windows.txt"
        echo "mark begin $w" >&7
        wait_console "# wv window $w begin" || return 1
        if [ -n "$WINDOW_CMD" ]; then
            WINDOW=$w SOCK=$SOCK SERVER=$SERVER SERVER_ARGS=$SERVER_ARGS DISK=$WORK/disk.img \
                SERVER_PID_FILE=$WORK/server.pid WORKDIR=$WORK sh -c "$WINDOW_CMD" \
                >>"$WORK/window.log" 2>&1 || { log "window $w: command failed"; echo stop >&7; return 1; }
        fi
        echo "$w end $(date +%s.%N)" >>"$WORK/windows.txt"
        echo "mark end $w" >&7
        wait_console "# wv window $w end" || return 1
        w=$((w + 1))
    done
    echo stop >&7
}

# One boot with the workload (ufio-virtio-blk's disk, or with --sample
# ufio-sample through the guest's vfio-pci); the serial console is a pipe
# pair so the host can send the guest its marks.
run_workload() {
    DISK_BYTES=$((DISK_MIB * 1024 * 1024))
    if [ "$SAMPLE_WL" = 1 ]; then
        LOGTAG=-sample-workload
        SERVER_ARGS=
        APPEND="intel_iommu=on ufio.args=swl"
        # vfio-pci in the guest needs an IOMMU group (see run_sample)
        set -- -device intel-iommu,caching-mode=on
    else
        LOGTAG=-workload
        truncate -s "$DISK_BYTES" "$WORK/disk.img"
        SERVER_ARGS="--file=$WORK/disk.img"
        APPEND="ufio.args=vblk,workload,$DISK_BYTES,ufio-virtio-blk"
        set --
    fi
    SERIAL=$WORK/serial$LOGTAG.log
    : >"$SERIAL"
    mkfifo "$WORK/ser.in" "$WORK/ser.out"
    # read-write opens of a FIFO do not wait for the other end
    exec 7<>"$WORK/ser.in" 8<>"$WORK/ser.out"
    cat <&8 >>"$SERIAL" &
    CAT_PID=$!
    start_server "$SERVER_ARGS"
    FIRST_PID=$SERVER_PID
    echo "$SERVER_PID" >"$WORK/server.pid"
    drive_windows &
    DRIVER_PID=$!
    SERIAL_OPT=chardev:ser0
    boot "$APPEND" "$@" -chardev "pipe,id=ser0,path=$WORK/ser" \
        -device pcie-root-port,id=rp0,chassis=1 -device "$(ufio_device)"
    SERIAL_OPT=
    driver_rc=0
    wait "$DRIVER_PID" || driver_rc=$?
    DRIVER_PID=
    # a window command that replaced the server (tests/e2e/takeover-window.sh)
    # says by which pid; the first server is our child: it must have exited 0
    # (the window commands check the exit status of the ones they started)
    if [ "$(cat "$WORK/server.pid")" != "$FIRST_PID" ]; then
        first_rc=0
        wait "$FIRST_PID" 2>/dev/null || first_rc=$?
        host_check host-first-server-exited-0 test "$first_rc" = 0
        SERVER_PID=$(cat "$WORK/server.pid")
    fi
    host_check host-windows-driven test "$driver_rc" = 0
    host_check host-server-alive kill -0 "$SERVER_PID"
    stop_server
    stop_pid "$CAT_PID"
    CAT_PID=
    exec 7>&- 8<&-
    sed -n 's/^ufio-virtio-blk: \([0-9]* requests.*\)/e2e: server: \1/p' "$WORK/server$LOGTAG.log" >&2
    sed -n 's/^UFIO-E2E: # \(wv latency.*\)/e2e: \1/p' "$WORK/serial$LOGTAG.txt" >&2
    [ "$SAMPLE_WL" = 1 ] ||
        host_check host-disk-image-matches-manifest "$WORK/ufio-guest-test" vblk wvcheck "$WORK/disk.img"
    if [ "$OK" = 1 ]; then
        log "workload: PASS"
    fi
}

if [ "$WORKLOAD" -gt 0 ] 2>/dev/null; then
    run_workload
elif [ "$VBLK" = 1 ]; then
    run_virtio_blk
elif [ "$VFIOPCI" = 1 ]; then
    run_vfio_pci
else
    run_sample
fi
log "finished in $(($(date +%s) - START)) s"
echo "e2e: $PASSED passed, $FAILED failed"
[ "$OK" = 1 ]
