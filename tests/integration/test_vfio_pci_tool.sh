#!/bin/bash
# ufio-vfio-pci's command line without a device to serve: --help, usage
# errors (exit 2), and opening a device that cannot be (exit 1, with the
# reason): not a PCI address, a device that does not exist. (Serving a real
# device is tests/e2e/run.sh --vfio-pci.)
#   test_vfio_pci_tool.sh UFIO_VFIO_PCI
set -u
BIN=$1
fails=0
t() { # NAME EXPECTED_RC PATTERN CMD...
    local name=$1 want=$2 pat=$3
    shift 3
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" = "$want" ] && grep -q -- "$pat" <<<"$out"; then
        echo "ok $name"
    else
        echo "not ok $name (rc $rc, want $want; output: $out)"
        fails=$((fails + 1))
    fi
}
sock=/tmp/ufio-vfio-pci-tool-$$.sock
t help 0 "--migration-plugin=PATH" "$BIN" --help
t no-bdf 2 "usage:" "$BIN" --socket-path="$sock"
t no-socket 2 "--socket-path or --fd is required" "$BIN" 0000:00:00.0
t both-endpoints 2 "--fd excludes --socket-path" "$BIN" 0000:00:00.0 --socket-path="$sock" --fd=3
t plugin-and-no-migration 2 "exclude each other" "$BIN" 00:01.0 --socket-path="$sock" --migration-plugin=x.so --no-migration
t bad-bdf 1 "is not a PCI address" "$BIN" not-a-bdf --socket-path="$sock"
t bad-bdf-range 1 "is not a PCI address" "$BIN" 0000:00:20.0 --socket-path="$sock"
t absent-device 1 "no driver bound" "$BIN" 00ff:ff:1f.7 --socket-path="$sock"
[ ! -e "$sock" ] || { echo "not ok no-socket-left-behind"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" = 0 ]
