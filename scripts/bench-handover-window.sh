#!/bin/sh
# The window command of scripts/bench-handover-guest.sh's third kind of run:
# one handover, as tests/e2e/takeover-window.sh does it, with the new
# process under `perf trace` (its write/send syscalls, timestamped in the
# kernel, the process never stopped), so the time from its acknowledgement
# to the first thing it does for the guest (a reply, an interrupt) can be
# read off: $WORKDIR/perf-$WINDOW.txt. Not a test: no fd or exit checks.
set -u
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/window-lib.sh
. "$(dirname "$0")/../tests/e2e/window-lib.sh"
old=$(cat "$SERVER_PID_FILE")
log=$WORKDIR/takeover-$WINDOW.log
trace=$WORKDIR/perf-$WINDOW.txt
rm -f "$WORKDIR/perf.pid"
# shellcheck disable=SC2086 # SERVER is a command line, SERVER_ARGS its options
(
    exec 7>&- 8>&-
    exec env UFIO_LOG=info perf trace -e write,writev,sendto,sendmsg -o "$trace" -- \
        $SERVER $SERVER_ARGS --takeover="$SOCK" >"$log" 2>&1
) </dev/null >/dev/null 2>&1 &
perf_pid=$!
# the server is perf's child
i=0
new=
while [ -z "$new" ]; do
    new=$(cut -d' ' -f1 "/proc/$perf_pid/task/$perf_pid/children" 2>/dev/null)
    i=$((i + 1))
    [ $i -lt $WAIT_TICKS ] || { echo "window $WINDOW: perf started no server"; exit 1; }
    [ -n "$new" ] || sleep 0.01
done
i=0
until grep -q "listening on" "$log" 2>/dev/null; do
    kill -0 "$new" 2>/dev/null || { echo "window $WINDOW: the new server exited:"; cat "$log"; exit 1; }
    i=$((i + 1))
    [ $i -lt $WAIT_TICKS ] || { echo "window $WINDOW: no takeover in 10 s"; exit 1; }
    sleep 0.01
done
wait_gone "$old" || exit 1
echo "$new" >"$SERVER_PID_FILE"
echo "window $WINDOW: pid $old -> $new (under perf $perf_pid)"
