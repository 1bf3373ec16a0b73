#!/usr/bin/env bash
# ufio-bench runs to the end in a short configuration: every row is there,
# figures are positive, ufio rows carry their raw counterpart, an idle device
# with polling on uses (almost) no CPU, and --socket measures a given server.
# Figures themselves are not judged here (a loaded CI machine is no benchmark).
# Not run under valgrind (scripts/test.sh leaves out the 'bench' suite there).
# usage: test_bench.sh BENCH SAMPLE
set -u
bench=$1 sample=$2
dir=$(mktemp -d /tmp/ufio-bench-test.XXXXXX)
spid=
cleanup() { [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fails=$((fails + 1)); fi; }

"$bench" --iters 200 --seconds 0.05 --json >"$dir/out.json" 2>"$dir/err"; rc=$?
check "ufio-bench --json exits 0" '[ $rc = 0 ]'
check "every row, positive figures, raw counterparts" 'python3 - "$dir/out.json" <<"PY"
import json, sys
rows = json.load(open(sys.argv[1]))
names = [r["name"] for r in rows]
cpus = ["same CPU", "cross CPU"] if any("cross CPU" in n for n in names) else ["same CPU"]
for cpu in cpus:
    for want in ["raw socketpair ping-pong, " + cpu,
                 "REGION_READ 4 B, %s, polling off" % cpu, "REGION_WRITE 4 B, %s, polling off" % cpu,
                 "REGION_READ 4 B, %s, polling on (50 us)" % cpu,
                 "REGION_WRITE 1048576 B, shared-memory BAR, " + cpu,
                 "REGION_READ 1048576 B, copying callback BAR, " + cpu,
                 "raw socketpair bulk 65536 B back, " + cpu,
                 "DMA_READ by message 1 MiB, " + cpu, "DMA write, mapped memory 1 MiB, " + cpu]:
        assert want in names, want
for r in rows:
    if "idle" in r["name"]:
        assert r["value"] < 5, r
        continue
    assert r["value"] > 0, r
    if r["name"].startswith("REGION_") and "polling on" not in r["name"]:
        assert r["raw"] > 0 and abs(r["vs_raw"] - r["value"] / r["raw"]) < 1e-9, r
assert any("idle device" in n for n in names)
PY'
. "$(dirname "$0")/common.sh"
SRV_ERR="$dir/s.log" srv_up "$sample" --socket-path="$dir/s.sock" || echo "the sample server did not start"
spid=$SRV_PID
out=$("$bench" --socket "$dir/s.sock" --iters 100)
check "--socket measures an external server" 'grep -q "REGION_READ 4 B round trip (external server)" <<<"$out"'
if [ "$(nproc)" -gt 1 ]; then
    "$bench" --poll-sweep --seconds 0.02 --json >"$dir/sweep.json"; rc=$?
    check "--poll-sweep: latency and device CPU for 6 budgets x 3 gaps" '[ $rc = 0 ] && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==36 and all(x[\"value\"]>=0 for x in r) and \"budget 200 us, 100 us between\" in r[-1][\"name\"]" "$dir/sweep.json"'
fi
check "--help" '"$bench" --help | grep -q -- "--poll-us"'
echo "bench: $fails failed"
[ $fails = 0 ]
