#!/usr/bin/env bash
# A harness that keeps its device or client across inputs must reset it fully:
# replays a corpus in one process, then every input alone in a fresh process,
# and fails if any input's trace (the target's UFIO_FUZZ_TRACE digest of what
# the peer sent back) differs between the two.
# usage: check-determinism.sh REPLAY_BINARY CORPUS_DIR
set -u
bin=$1 corpus=$2
together=$(mktemp) alone=$(mktemp)
trap 'rm -f "$together" "$alone"' EXIT
# pair each "input NAME" line with the digest line that follows it
pairs() { awk '/^input /{n=$2} / digest /{print n, $NF}'; }
UFIO_FUZZ_TRACE=1 "$bin" "$corpus" 2>&1 >/dev/null | pairs | sort >"$together"
for f in "$corpus"/*; do
    UFIO_FUZZ_TRACE=1 "$bin" "$f" 2>&1 >/dev/null | pairs
done | sort >"$alone"
n=$(wc -l <"$together")
if [ "$n" = 0 ]; then echo "not ok - no traces (does the target print digests?)"; exit 1; fi
if ! diff "$together" "$alone" >/dev/null; then
    echo "not ok - inputs whose outcome depends on the inputs before them:"
    diff "$together" "$alone" | sed -n 's/^< //p'
    exit 1
fi
echo "ok - $n inputs give the same trace alone and after the others"
