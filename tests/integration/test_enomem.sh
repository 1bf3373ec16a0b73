#!/usr/bin/env bash
# Allocation failure, one call at a time: the sample server runs with the N-th
# allocation failing (N = 1..MAX) while a client negotiates, maps DMA, reads the
# config space and migrates. The server must refuse to start with a message, or
# answer with errors / drop the client, and always exit cleanly on SIGTERM:
# never die of a signal.
# usage: test_enomem.sh SAMPLE LSPCI MIGRATE FAILMALLOC.so [MAX]
set -u
sample=$1 lspci_tool=$2 migrate=$3 shim=$4 max=${5:-400}
if [ -n "${UFIO_INSTRUMENTED:-}" ]; then echo "skipped under ASan/valgrind (own allocators)"; exit 77; fi
dir=$(mktemp -d /tmp/ufio-enomem.XXXXXX)
trap 'rm -rf "$dir"' EXIT
bad=0 started=0 known=0
# a healthy peer to migrate to
"$sample" --socket-path="$dir/peer.sock" >/dev/null 2>&1 & peer=$!
for n in $(seq 1 "$max"); do
    rm -f "$dir/s.sock"
    UFIO_FAILMALLOC_AT=$n LD_PRELOAD="$shim" "$sample" --socket-path="$dir/s.sock" >"$dir/out" 2>"$dir/err" &
    pid=$!
    for _ in $(seq 50); do [ -S "$dir/s.sock" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
    if [ -S "$dir/s.sock" ]; then
        started=$((started + 1))
        timeout 10 "$lspci_tool" --timeout 2000 "$dir/s.sock" >/dev/null 2>&1
        timeout 10 "$migrate" --timeout 2000 --from "$dir/s.sock" --to "$dir/peer.sock" >/dev/null 2>&1
        timeout 10 "$migrate" --timeout 2000 --from "$dir/peer.sock" --to "$dir/s.sock" >/dev/null 2>&1
        kill -TERM $pid 2>/dev/null
    fi
    wait $pid; st=$?
    if [ $st -gt 128 ] && grep -q "libjson-c" "$dir/err"; then
        # json-c 0.16 does not check strdup() in json_object_object_add_ex: a
        # third-party crash under memory exhaustion, reported, not ours to fix here
        known=$((known + 1))
    elif [ $st -gt 128 ]; then
        echo "not ok - allocation $n: the server died of signal $((st - 128))"; tail -20 "$dir/err"
        bad=$((bad + 1))
    elif [ $st = 1 ] && ! grep -q "ufio-sample:" "$dir/err"; then
        echo "not ok - allocation $n: exit 1 without a message"; bad=$((bad + 1))
    fi
done
kill $peer; wait $peer 2>/dev/null
echo "enomem: $max failure points, server served in $started of them, $bad bad, $known crashes inside json-c"
[ $bad = 0 ]
