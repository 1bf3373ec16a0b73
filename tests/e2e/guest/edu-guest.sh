#!/bin/sh
# The guest half of `run.sh --vfio-pci`, run by /init: binds QEMU's two edu
# devices to vfio-pci, serves each with ufio-vfio-pci (and the edu migration
# plugin), runs the client test and then the benchmark. Every line for the
# host starts with "UFIO-E2E:".
PLUGIN=/lib/ufio/ufio-edu-migration.so
say() { echo "UFIO-E2E: $*"; }

devs=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor"):$(cat "$d/device")" = "0x1234:0x11e8" ] && devs="$devs ${d##*/}"
done
# shellcheck disable=SC2086 # one word per device
set -- $devs
if [ $# -lt 2 ]; then
    say "FAIL fewer than two edu devices ($devs)"
    exit 1
fi
E1=$1
E2=$2
for bdf in $E1 $E2; do
    d=/sys/bus/pci/devices/$bdf
    [ -e "$d/driver" ] && echo "$bdf" >"$d/driver/unbind"
    echo vfio-pci >"$d/driver_override"
    echo "$bdf" >/sys/bus/pci/drivers_probe
    drv=$(readlink "$d/driver")
    if [ "${drv##*/}" != vfio-pci ]; then
        say "FAIL $bdf not bound to vfio-pci (driver '${drv##*/}', group $(readlink "$d/iommu_group"))"
        exit 1
    fi
    say "# $bdf bound to vfio-pci, IOMMU group ${drv:+$(readlink "$d/iommu_group" | sed 's,.*/,,')}"
done

# one server per device, each with its own socket and log
PIDS=
n=0
for bdf in $E1 $E2; do
    n=$((n + 1))
    /bin/ufio-vfio-pci "$bdf" --socket-path=/tmp/edu$n.sock --migration-plugin=$PLUGIN >/tmp/edu$n.log 2>&1 &
    eval "PID$n=$!"
    PIDS="$PIDS $!"
done
# the servers create their sockets once the device is set up
i=0
while [ ! -S /tmp/edu1.sock ] || [ ! -S /tmp/edu2.sock ]; do
    i=$((i + 1))
    # shellcheck disable=SC2154,SC2086 # PID1/PID2 come from eval
    if [ $i -gt 300 ] || ! kill -0 $PID1 $PID2 2>/dev/null; then
        say "FAIL the servers did not listen (exited, or not within 30 s)"
        sed 's/^/UFIO-E2E: # server: /' /tmp/edu1.log /tmp/edu2.log
        exit 1
    fi
    usleep 100000
done

# the benchmark first (not a test; its verdict-free lines start with "# bench"),
# so the test's verdict is the last thing the host waits for
/bin/ufio-e2e-edu-client bench /tmp/edu1.sock
# shellcheck disable=SC2154 # PID1/PID2 come from eval
/bin/ufio-e2e-edu-client test /tmp/edu1.sock "$PID1" /tmp/edu1.log /tmp/edu2.sock "$PID2" /tmp/edu2.log edu
rc=$?

# shellcheck disable=SC2086 # PIDS is a list
kill -TERM $PIDS 2>/dev/null
for p in $PIDS; do wait "$p"; done
sed 's/^/UFIO-E2E: # server 1: /' /tmp/edu1.log
sed 's/^/UFIO-E2E: # server 2: /' /tmp/edu2.log
exit $rc
