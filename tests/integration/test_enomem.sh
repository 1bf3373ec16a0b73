#!/usr/bin/env bash
# Allocation failure, one call at a time: the sample server runs with the N-th
# allocation failing (N = 1..MAX) while a client negotiates, maps DMA, reads the
# config space and migrates. The server must refuse to start with a message, or
# answer with errors / drop the client, and always exit cleanly on SIGTERM:
# never die of a signal, in any code (since VERSION and the compatibility
# descriptor are parsed by ufio's own allocation-free reader, json-c is not on
# the path any more and no crash is excused). Then the same for the client:
# ufio-lspci with its N-th allocation failing against a healthy server.
# A counting run first makes sure MAX covers every allocation of a full session.
# usage: test_enomem.sh SAMPLE LSPCI MIGRATE FAILMALLOC.so [MAX]
set -u
sample=$1 lspci_tool=$2 migrate=$3 shim=$4 max=${5:-400}
if [ -n "${UFIO_INSTRUMENTED:-}" ]; then echo "skipped under ASan/valgrind (own allocators)"; exit 77; fi
dir=$(mktemp -d /tmp/ufio-enomem.XXXXXX)
trap 'rm -rf "$dir"' EXIT
bad=0 started=0

# one session against the server on $1: what each failure point is tested with
session() {
    timeout 10 "$lspci_tool" -vvv --timeout 2000 "$1" >/dev/null 2>&1
    timeout 10 "$migrate" --timeout 2000 --from "$1" --to "$dir/peer.sock" >/dev/null 2>&1
    timeout 10 "$migrate" --timeout 2000 --from "$dir/peer.sock" --to "$1" >/dev/null 2>&1
}
wait_sock() {
    for _ in $(seq 50); do [ -S "$1" ] && return 0; kill -0 "$2" 2>/dev/null || return 1; sleep 0.02; done
    return 1
}
count_of() { sed -n 's/^failmalloc: allocations \([0-9]*\)$/\1/p' "$1" | tail -1; }

# a healthy peer to migrate to
"$sample" --socket-path="$dir/peer.sock" >/dev/null 2>&1 & peer=$!
wait_sock "$dir/peer.sock" $peer || { echo "not ok - the peer server did not start"; exit 1; }

# how many allocations a whole session makes, server and client
rm -f "$dir/s.sock"
UFIO_FAILMALLOC_AT=999999999 UFIO_FAILMALLOC_REPORT=1 LD_PRELOAD="$shim" "$sample" --socket-path="$dir/s.sock" \
    >/dev/null 2>"$dir/count" & pid=$!
wait_sock "$dir/s.sock" $pid && session "$dir/s.sock"
kill -TERM $pid 2>/dev/null; wait $pid
server_allocs=$(count_of "$dir/count")
if grep -q "ASan runtime does not come first" "$dir/count"; then
    echo "skipped: a sanitizer build cannot take the allocation shim"; kill $peer; exit 77
fi
UFIO_FAILMALLOC_AT=999999999 UFIO_FAILMALLOC_REPORT=1 LD_PRELOAD="$shim" "$lspci_tool" -vvv --timeout 2000 \
    "$dir/peer.sock" >/dev/null 2>"$dir/count"
client_allocs=$(count_of "$dir/count")
if [ -z "$server_allocs" ] || [ -z "$client_allocs" ]; then echo "not ok - no allocation count"; exit 1; fi
if [ "$server_allocs" -ge "$max" ]; then
    echo "not ok - a session makes $server_allocs allocations, MAX=$max does not cover them all"; bad=$((bad + 1))
fi

for n in $(seq 1 "$max"); do
    rm -f "$dir/s.sock"
    UFIO_FAILMALLOC_AT=$n LD_PRELOAD="$shim" "$sample" --socket-path="$dir/s.sock" >"$dir/out" 2>"$dir/err" &
    pid=$!
    if wait_sock "$dir/s.sock" $pid; then
        started=$((started + 1))
        session "$dir/s.sock"
        kill -TERM $pid 2>/dev/null
    fi
    wait $pid; st=$?
    if [ $st -gt 128 ]; then
        echo "not ok - allocation $n: the server died of signal $((st - 128))"; tail -20 "$dir/err"
        bad=$((bad + 1))
    elif [ $st = 1 ] && ! grep -q "ufio-sample:" "$dir/err"; then
        echo "not ok - allocation $n: exit 1 without a message"; bad=$((bad + 1))
    fi
done

# the client: every allocation of ufio-lspci, and a few past the last
client_bad=0
for n in $(seq 1 $((client_allocs + 5))); do
    UFIO_FAILMALLOC_AT=$n LD_PRELOAD="$shim" timeout 10 "$lspci_tool" -vvv --timeout 2000 "$dir/peer.sock" \
        >/dev/null 2>"$dir/err"
    st=$?
    if [ $st -gt 128 ] || [ $st = 124 ]; then
        echo "not ok - client allocation $n: ufio-lspci ended with status $st"; tail -20 "$dir/err"
        client_bad=$((client_bad + 1))
    fi
done
kill $peer; wait $peer 2>/dev/null
echo "enomem: server: $max failure points (a session makes $server_allocs allocations), served in $started," \
     "$bad bad; client: $((client_allocs + 5)) failure points, $client_bad bad"
[ $bad = 0 ] && [ $client_bad = 0 ]
