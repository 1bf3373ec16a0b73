#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 30),
# starting from (and growing) a copy of the in-tree corpus. Exit status non-zero
# if any target found a crash, leak, timeout or out-of-memory; the input is kept
# in the work directory it prints.
#   run-fuzzers.sh 3600          one hour per target
#   run-fuzzers.sh -runs 10000000 [TARGET...]
#                                a fixed number of executions instead (a paused
#                                process loses nothing), one target at a time,
#                                niced; wall time and final coverage per target
set -u
mode=time secs=${1:-30}
if [ "${1:-}" = -runs ]; then mode=runs; runs=${2:?count}; shift 2; fi
targets=${*:-wire version_json mig_stream compat json server_msg client_reply conn mig_plugin xmig}
[ $mode = runs ] || targets="wire version_json mig_stream compat json server_msg client_reply conn mig_plugin xmig"
cd "$(dirname "$0")/../.."
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >/dev/null || exit 1
ninja -C build-fuzz >/dev/null || exit 1
work=$(mktemp -d /tmp/ufio-fuzz.XXXXXX)
echo "fuzz work directory: $work"
rc=0
for t in $targets; do
    mkdir -p "$work/$t"
    cp tests/fuzz/corpus/$t/* "$work/$t/"
    if [ $mode = runs ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$secs"); fi
    start=$(date +%s)
    (cd "$work" && nice -n 10 "$OLDPWD/build-fuzz/tests/fuzz/fuzz_$t" "${limit[@]}" -rss_limit_mb=4096 \
        -artifact_prefix="$work/$t-" "$work/$t" >"$work/$t.log" 2>&1)
    r=$?
    wall=$(($(date +%s) - start))
    done_runs=$(grep -o "Done [0-9]* runs" "$work/$t.log" | awk '{print $2}')
    cov=$(grep -o "cov: [0-9]* ft: [0-9]*" "$work/$t.log" | tail -1)
    echo "fuzz_$t: exit $r, ${done_runs:-?} runs in ${wall} s, ${cov:-cov: ?}"
    [ $r = 0 ] || rc=1
done
exit $rc
