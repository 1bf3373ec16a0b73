#!/usr/bin/env bash
# The command-line tools against real sample servers:
#   ufio-lspci (text at each -v level, virtio capabilities by name against ufio-virtio-blk,
#   --json, -xxxx dumps that pciutils' lspci -F parses),
#   ufio-compat (describe, check with exit codes and reasons),
#   ufio-migrate (--json summary, refusal of an incompatible destination).
# usage: test_tools.sh SAMPLE LSPCI COMPAT MIGRATE VIRTIO_BLK
set -u
sample=$1 lspci_tool=$2 compat=$3 migrate=$4 vblk=$5
dir=$(mktemp -d /tmp/ufio-tools.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fails=$((fails + 1)); fi; }
. "$(dirname "$0")/common.sh"
start() { # path [args]
    local p=$1; shift
    SRV_ERR="$p.log" srv_up "$sample" --socket-path="$p" "$@"; local ok=$?
    pids+=($SRV_PID)
    [ $ok = 0 ] || { echo "server on $p did not start"; exit 1; }
}
start "$dir/a.sock"
start "$dir/b.sock" --sw-version=1.1.0
start "$dir/c.sock" --sw-version=2.0.0

line=$("$lspci_tool" "$dir/a.sock")
check "lspci without -v: one line, as plain lspci" '[ "$(wc -l <<<"$line")" = 1 ] && grep -q "Unassigned class \[ff00\]: Device 5546:0001 (rev 01)$" <<<"$line"'
out=$("$lspci_tool" -v "$dir/a.sock")
check "lspci -v shows ids and class" 'grep -q "Unassigned class \[ff00\]: Device 5546:0001 (rev 01)" <<<"$out"'
check "lspci -v: Flags line, no register details" 'grep -q "Flags: fast devsel, IRQ pin A" <<<"$out" && ! grep -q "Control:" <<<"$out"'
check "lspci -v: a vendor capability that is not virtio stays undecoded" 'grep -q "Vendor Specific Information: Len=07 <?>" <<<"$out"'
check "lspci decodes MSI-X" 'grep -q "MSI-X: Enable- Count=4" <<<"$out"'
check "lspci shows the DSN" 'grep -q "Device Serial Number 01-23-45-67-89-ab-cd-ef" <<<"$out"'
check "lspci shows mmap areas" 'grep -q "mmap area: offset 0 size 0x10000" <<<"$out"'
vv=$("$lspci_tool" -vv "$dir/a.sock")
check "lspci -vv: Control and Status registers" 'grep -q "Control: I/O- Mem- BusMaster-" <<<"$vv" && grep -q "Status: Cap+ " <<<"$vv"'
check "lspci -vv: PM and MSI contents" 'grep -q "Status: D0 NoSoftRst" <<<"$vv" && grep -q "Address: 0000000000000000  Data: 0000" <<<"$vv" && grep -q "Masking: 00000000  Pending: 00000000" <<<"$vv"'
vvv=$("$lspci_tool" -vvv "$dir/a.sock")
check "lspci -vvv: the MSI-X table as the device holds it" '[ "$(grep -c "Vector   [0-3]: Address 0000000000000000 Data 00000000 Masked+" <<<"$vvv")" = 4 ] && grep -q "Pending: 0000000000000000" <<<"$vvv"'
check "lspci -vvv: the compatibility descriptor" 'grep -q "compatibility descriptor {\"device_api\":\"vfio-pci\",\"type\":\"ufio-sample\"" <<<"$vvv"'
json=$("$lspci_tool" --json "$dir/a.sock")
check "lspci --json parses" 'python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"vendor_id\"]==\"5546\" and d[\"irqs\"][2][\"count\"]==4" <<<"$json"'
"$lspci_tool" -xxxx "$dir/a.sock" >"$dir/dump"
check "-xxxx dump has 256 lines of 16 bytes" '[ "$(grep -c "^[0-9a-f][0-9a-f]*: " "$dir/dump")" = 256 ]'

# virtio vendor capabilities, by name as lspci prints them
truncate -s 1M "$dir/disk.img"
SRV_ERR="$dir/v.log" srv_up "$vblk" --file="$dir/disk.img" --socket-path="$dir/v.sock" ||
    echo "not ok - ufio-virtio-blk did not start"
pids+=($SRV_PID)
v1=$("$lspci_tool" -v "$dir/v.sock")
for name in CommonCfg ISR DeviceCfg Notify PCICfg; do
    check "lspci -v names the virtio $name capability" 'grep -q "Vendor Specific Information: VirtIO: $name$" <<<"$v1"'
done
check "lspci -v: no virtio BAR lines below -vv" '! grep -q "BAR=4 offset=" <<<"$v1"'
v2=$("$lspci_tool" -vv "$dir/v.sock")
check "lspci -vv: CommonCfg location" 'grep -A1 "VirtIO: CommonCfg" <<<"$v2" | grep -q "BAR=4 offset=00000000 size=00000038"'
check "lspci -vv: Notify with its multiplier" 'grep -A1 "VirtIO: Notify" <<<"$v2" | grep -q "BAR=4 offset=00003000 size=00000004 multiplier=00000004"'
check "lspci -vv: ISR and DeviceCfg locations" 'grep -A1 "VirtIO: ISR" <<<"$v2" | grep -q "BAR=4 offset=00001000 size=00000001" && grep -A1 "VirtIO: DeviceCfg" <<<"$v2" | grep -q "BAR=4 offset=00002000 size=00000024"'
vj=$("$lspci_tool" --json "$dir/v.sock" | tr -d ' \n')
# (grep, not python: under valgrind --trace-children each python3 costs minutes)
check "--json decodes virtio capabilities" 'grep -q "\"virtio\":{\"type\":\"CommonCfg\",\"bar\":4,\"offset\":0,\"length\":56}" <<<"$vj" && grep -q "\"virtio\":{\"type\":\"Notify\",\"bar\":4,\"offset\":12288,\"length\":4,\"notify_off_multiplier\":4}" <<<"$vj" && [ "$(grep -o "\"virtio\":{\"type\":\"[A-Za-z]*\"" <<<"$vj" | cut -d\" -f6 | tr "\n" " ")" = "CommonCfg ISR DeviceCfg Notify PCICfg " ]'
if command -v lspci >/dev/null; then
    "$lspci_tool" -xxxx "$dir/v.sock" >"$dir/vdump"
    # pciutils decodes the same capabilities the same way (3.9 calls PCICfg <unknown>: left out)
    ours=$(grep -A1 "VirtIO: [CIDN]" <<<"$v2" | grep -v "^--")
    theirs=$(lspci -F "$dir/vdump" -vv 2>/dev/null | grep -A1 "VirtIO: [CIDN]" | grep -v "^--")
    check "virtio capability lines match pciutils lspci -vv" '[ -n "$ours" ] && [ "$ours" = "$theirs" ]'
fi
if command -v lspci >/dev/null; then
    pl=$(lspci -F "$dir/dump" -nn -v 2>&1)
    check "pciutils lspci -F reads our dump" 'grep -q "\[5546:0001\]" <<<"$pl"'
    check "pciutils sees MSI-X in our dump" 'grep -q "MSI-X: Enable- Count=4" <<<"$pl"'
    check "pciutils sees the DSN in our dump" 'grep -qi "Device Serial Number 01-23-45-67-89-ab-cd-ef" <<<"$pl"'
else
    echo "not ok - pciutils lspci not installed"; fails=$((fails + 1))
fi

"$compat" describe "$dir/a.sock" >"$dir/a.json"
check "describe gives the descriptor" 'grep -q "\"software_version\":\"1.0.0\"" "$dir/a.json"'
"$compat" check "$dir/a.json" "$dir/b.sock" >"$dir/out"; rc=$?
check "1.0.0 -> 1.1.0 compatible, exit 0" '[ $rc = 0 ] && grep -qx compatible "$dir/out"'
"$compat" check "$dir/b.sock" "$dir/a.sock" >"$dir/out"; rc=$?
check "1.1.0 -> 1.0.0 incompatible, exit 1, with the reason" '[ $rc = 1 ] && grep -q "software_version: source 1.1.0" "$dir/out"'
"$compat" check --json "$dir/a.sock" "$dir/c.sock" >"$dir/out"; rc=$?
check "--json verdict" '[ $rc = 1 ] && python3 -c "import json,sys; d=json.load(sys.stdin); assert not d[\"compatible\"] and d[\"reasons\"][0][\"field\"]==\"software_version\"" <"$dir/out"'
echo '{"device_api":"vfio-pci"}' >"$dir/bad.json"
"$compat" check "$dir/bad.json" "$dir/a.sock" >/dev/null 2>"$dir/err"; rc=$?
check "malformed descriptor: exit 2 with a message" '[ $rc = 2 ] && grep -q "missing field" "$dir/err"'

"$migrate" --from "$dir/b.sock" --to "$dir/a.sock" --json >"$dir/out" 2>"$dir/err"; rc=$?
check "migrate refuses the incompatible direction (exit 3)" '[ $rc = 3 ] && grep -q "software_version" "$dir/err"'
"$migrate" --from "$dir/a.sock" --to "$dir/b.sock" --json >"$dir/out"; rc=$?
check "migrate the compatible direction" '[ $rc = 0 ] && python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"result\"]==\"migrated\" and d[\"bytes\"]>65536 and d[\"rounds\"]>=1" <"$dir/out"'
check "help texts" '"$migrate" --help | grep -q max-downtime && "$compat" --help | grep -q describe && "$lspci_tool" --help | grep -q xxxx && "$lspci_tool" --help | grep -q -- -vvv'

# out of file descriptors: the server refuses what it must, answers, and does not spin
# (not under valgrind: it needs file descriptors of its own)
if command -v prlimit >/dev/null && [ -z "${UFIO_UNDER_VALGRIND:-}" ]; then
    SRV_ERR="$dir/tight.log" srv_up prlimit --nofile=9 "$sample" --socket-path="$dir/tight.sock" --mgmt-socket=none
    tp=$SRV_PID; pids+=($tp)
    check "a server without spare fds still serves (no twin socket)" '"$lspci_tool" -v "$dir/tight.sock" | grep -q "twin socket no"'
    "$lspci_tool" "$dir/tight.sock" >/dev/null 2>&1 &
    "$lspci_tool" "$dir/tight.sock" >/dev/null 2>&1 &
    # not synchronisation: a window in which a spinning listener would burn CPU ticks
    wait $! 2>/dev/null; sleep 0.3
    ticks=$(awk '{print $14 + $15}' /proc/$tp/stat)
    check "and does not spin on the listener (cpu ticks $ticks)" '[ "$ticks" -lt 50 ]'
fi

echo "tools: $fails failed"
[ $fails = 0 ]
