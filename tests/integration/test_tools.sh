#!/usr/bin/env bash
# The command-line tools against real sample servers:
#   ufio-lspci (text, --json, -xxxx dumps that pciutils' lspci -F parses),
#   ufio-compat (describe, check with exit codes and reasons),
#   ufio-migrate (--json summary, refusal of an incompatible destination).
# usage: test_tools.sh SAMPLE LSPCI COMPAT MIGRATE
set -u
sample=$1 lspci_tool=$2 compat=$3 migrate=$4
dir=$(mktemp -d /tmp/ufio-tools.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fails=$((fails + 1)); fi; }
start() { # path [args]
    local p=$1; shift
    "$sample" --socket-path="$p" "$@" >"$p.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "$p" ] && return 0; sleep 0.05; done
    echo "server on $p did not start"; exit 1
}
start "$dir/a.sock"
start "$dir/b.sock" --sw-version=1.1.0
start "$dir/c.sock" --sw-version=2.0.0

out=$("$lspci_tool" "$dir/a.sock")
check "lspci shows ids and class" 'grep -q "Unassigned class \[ff00\]: Device 5546:0001 (rev 01)" <<<"$out"'
check "lspci decodes MSI-X" 'grep -q "MSI-X: Enable- Count=4" <<<"$out"'
check "lspci shows the DSN" 'grep -q "Device Serial Number 01-23-45-67-89-ab-cd-ef" <<<"$out"'
check "lspci shows mmap areas" 'grep -q "mmap area: offset 0 size 0x10000" <<<"$out"'
json=$("$lspci_tool" --json "$dir/a.sock")
check "lspci --json parses" 'python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"vendor_id\"]==\"5546\" and d[\"irqs\"][2][\"count\"]==4" <<<"$json"'
"$lspci_tool" -xxxx "$dir/a.sock" >"$dir/dump"
check "-xxxx dump has 256 lines of 16 bytes" '[ "$(grep -c "^[0-9a-f][0-9a-f]*: " "$dir/dump")" = 256 ]'
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
check "help texts" '"$migrate" --help | grep -q max-downtime && "$compat" --help | grep -q describe && "$lspci_tool" --help | grep -q xxxx'

# out of file descriptors: the server refuses what it must, answers, and does not spin
# (not under valgrind: it needs file descriptors of its own)
if command -v prlimit >/dev/null && [ -z "${UFIO_UNDER_VALGRIND:-}" ]; then
    prlimit --nofile=9 "$sample" --socket-path="$dir/tight.sock" --mgmt-socket=none >"$dir/tight.log" 2>&1 &
    tp=$!; pids+=($tp)
    for _ in $(seq 100); do [ -S "$dir/tight.sock" ] && break; sleep 0.05; done
    check "a server without spare fds still serves (no twin socket)" '"$lspci_tool" "$dir/tight.sock" | grep -q "twin socket no"'
    "$lspci_tool" "$dir/tight.sock" >/dev/null 2>&1 &
    "$lspci_tool" "$dir/tight.sock" >/dev/null 2>&1 &
    wait $! 2>/dev/null; sleep 0.3
    ticks=$(awk '{print $14 + $15}' /proc/$tp/stat)
    check "and does not spin on the listener (cpu ticks $ticks)" '[ "$ticks" -lt 50 ]'
fi

echo "tools: $fails failed"
[ $fails = 0 ]
