#!/usr/bin/env bash
# Benchmark (not a test): device migration across two network namespaces over
# TLS 1.3, beside a raw TLS bulk transfer over the same veth link in the same
# run. Needs root (ip netns), certtool, and a ufio-sample with --state-mib.
# usage: scripts/bench-cross-host.sh [BUILD_DIR] [STATE_MIB...]   (default: build 256 1024)
# Each size runs REPEAT times (default 3), raw and migration alternating, so
# load on a shared machine hits both alike; compare rows within one run.
# env: DIRTY=PAGES_PER_MS (ufio-sample --dirty-rate while precopy runs, default 0)
#      DOWNTIME=MS (--max-downtime, default 300)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}; shift || true
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(256 1024)
sample=$build/samples/ufio-sample migrate=$build/tools/ufio-migrate link=$build/tools/ufio-bench-link
"$sample" --help 2>&1 | grep -q -- --state-mib || { echo "this ufio-sample has no --state-mib" >&2; exit 2; }
tag=$$
ns_s=ufio-bench-s$tag ns_d=ufio-bench-d$tag v_s=vbench-s$tag v_d=vbench-d$tag
ip_s=198.18.19.1 ip_d=198.18.19.2 port=47019
dir=$(mktemp -d /tmp/ufio-bench-xhost.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ip netns del "$ns_s" 2>/dev/null; ip netns del "$ns_d" 2>/dev/null; rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns_s" && ip netns add "$ns_d" || exit 1
ip -n "$ns_s" link add "$v_s" type veth peer name "$v_d" netns "$ns_d"
ip -n "$ns_s" addr add $ip_s/30 dev "$v_s"; ip -n "$ns_d" addr add $ip_d/30 dev "$v_d"
for n in "$ns_s:$v_s" "$ns_d:$v_d"; do ip -n "${n%%:*}" link set lo up; ip -n "${n%%:*}" link set "${n#*:}" up; done
"$here/tests/net/make-certs.sh" "$dir/certs" $ip_d >/dev/null
C=$dir/certs
wait_for() { local i; for ((i = 0; i < 600; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
jget() { python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1]) if '\"result\"' in l or '\"sink\"' in l or '\"source\"' in l][-1]; print(d[sys.argv[2]])" "$@"; }
hz=$(getconf CLK_TCK)

printf '%-9s %-9s %10s %10s %10s %11s %12s %12s %12s\n' state what "MiB/s" "total ms" "downtime" "raw MiB/s" "src cpu s/G" "dst cpu s/G" "dev cpu s/G"
for mib in "${sizes[@]}"; do
for ((rep = 0; rep < ${REPEAT:-3}; rep++)); do
    # raw TLS: the same link, the same byte count as the device state
    ip netns exec "$ns_d" "$link" --listen tls://$ip_d:$port --tls-dir "$C/server" >"$dir/sink.out" &
    pids+=($!); wait_for "$dir/sink.out" listening
    ip netns exec "$ns_s" "$link" --to tls://$ip_d:$port --tls-dir "$C/client" --mib "$mib" >"$dir/raw.out"
    wait
    raw=$(jget "$dir/raw.out" mib_s)
    raw_src_cpu=$(jget "$dir/raw.out" cpu_s_per_gib) raw_dst_cpu=$(jget "$dir/sink.out" cpu_s_per_gib)
    printf '%-9s %-9s %10s %10s %10s %11s %12s %12s %12s\n' "${mib}M" raw-tls "$raw" - - "$raw" "$raw_src_cpu" "$raw_dst_cpu" -

    rm -f "$dir/src.sock" "$dir/dst.sock"
    dirty=()
    [ "${DIRTY:-0}" = 0 ] || dirty=(--dirty-rate "$DIRTY")
    ip netns exec "$ns_s" "$sample" --socket-path "$dir/src.sock" --state-mib "$mib" "${dirty[@]}" >"$dir/s.log" 2>&1 &
    spid=$!; pids+=($spid)
    ip netns exec "$ns_d" "$sample" --socket-path "$dir/dst.sock" --state-mib "$mib" >"$dir/d.log" 2>&1 &
    dpid=$!; pids+=($dpid)
    wait_for "$dir/s.log" listening; wait_for "$dir/d.log" listening
    ip netns exec "$ns_d" "$migrate" --listen tls://$ip_d:$port --to "$dir/dst.sock" --tls-dir "$C/server" --json \
        >"$dir/dst.out" 2>"$dir/dst.err" &
    pids+=($!); wait_for "$dir/dst.out" listening
    c0=$(( $(cpu_ticks $spid) + $(cpu_ticks $dpid) ))
    ip netns exec "$ns_s" "$migrate" --from "$dir/src.sock" --to tls://$ip_d:$port --tls-dir "$C/client" \
        --max-downtime "${DOWNTIME:-300}" --json >"$dir/src.out" 2>"$dir/src.err"
    rc=$?
    wait "${pids[-1]}"
    c1=$(( $(cpu_ticks $spid) + $(cpu_ticks $dpid) ))
    if [ $rc != 0 ]; then echo "migration failed ($rc): $(cat "$dir/src.err")"; continue; fi
    bytes=$(jget "$dir/src.out" bytes)
    gib=$(python3 -c "print($bytes / 2**30)")
    f() { python3 -c "print(f'{$1:.${2:-1}f}')"; }
    printf '%-9s %-9s %10s %10s %10s %11s %12s %12s %12s\n' "${mib}M" migration \
        "$(f "$(jget "$dir/src.out" throughput_mib_s)")" "$(f "$(jget "$dir/src.out" total_ms)")" \
        "$(f "$(jget "$dir/src.out" downtime_ms)" 2)" "$raw" \
        "$(f "$(jget "$dir/src.out" cpu_s) / $gib" 3)" "$(f "$(jget "$dir/dst.out" cpu_s) / $gib" 3)" \
        "$(f "($c1 - $c0) / $hz / $gib" 3)"
    echo "          rounds $(jget "$dir/src.out" rounds), precopy $(jget "$dir/src.out" precopy_bytes) B, stop-copy $(jget "$dir/src.out" stopcopy_bytes) B, link rate $(f "$(jget "$dir/src.out" link_rate_mib_s)") MiB/s"
    kill $spid $dpid; wait $spid $dpid 2>/dev/null
    pids=()
done
done
