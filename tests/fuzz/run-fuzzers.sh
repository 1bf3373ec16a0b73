#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 30),
# starting from (and growing) a copy of the in-tree corpus. Exit status non-zero
# if any target found a crash, leak, timeout or out-of-memory; the input is kept
# in the work directory it prints.
set -u
secs=${1:-30}
cd "$(dirname "$0")/../.."
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >/dev/null || exit 1
ninja -C build-fuzz >/dev/null || exit 1
work=$(mktemp -d /tmp/ufio-fuzz.XXXXXX)
echo "fuzz work directory: $work"
rc=0
for t in wire version_json mig_stream compat server_msg client_reply; do
    mkdir -p "$work/$t"
    cp tests/fuzz/corpus/$t/* "$work/$t/"
    (cd "$work" && "$OLDPWD/build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=4096 \
        -artifact_prefix="$work/$t-" "$work/$t" >"$work/$t.log" 2>&1)
    r=$?
    runs=$(grep -o "Done [0-9]* runs" "$work/$t.log" | awk '{print $2}')
    cov=$(grep -o "cov: [0-9]*" "$work/$t.log" | tail -1 | awk '{print $2}')
    echo "fuzz_$t: exit $r, ${runs:-?} runs, coverage ${cov:-?} edges"
    [ $r = 0 ] || rc=1
done
exit $rc
