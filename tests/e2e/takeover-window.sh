#!/bin/sh
# One live handover inside a run.sh workload window (--window-cmd): starts
# "$SERVER --file=$DISK --takeover=$SOCK", waits until it listens and the old
# server process is gone, and records the new pid in $SERVER_PID_FILE for
# run.sh. Env from run.sh: SERVER, SOCK, DISK, WINDOW, SERVER_PID_FILE, WORKDIR.
set -u
old=$(cat "$SERVER_PID_FILE")
log=$WORKDIR/takeover-$WINDOW.log
# shellcheck disable=SC2086 # SERVER is a command line
$SERVER --file="$DISK" --takeover="$SOCK" >"$log" 2>&1 &
new=$!
i=0
# the deadline is 10 s; a handover takes milliseconds
until grep -q "listening on" "$log" 2>/dev/null; do
    kill -0 "$new" 2>/dev/null || { echo "window $WINDOW: the new server exited:"; cat "$log"; exit 1; }
    i=$((i + 1))
    [ $i -lt 1000 ] || { echo "window $WINDOW: no takeover in 10 s"; exit 1; }
    sleep 0.01
done
# the old one exits after the acknowledgement (a zombie until run.sh reaps its first child)
i=0
while kill -0 "$old" 2>/dev/null && [ "$(cut -d' ' -f3 /proc/"$old"/stat 2>/dev/null)" != Z ]; do
    i=$((i + 1))
    [ $i -lt 1000 ] || { echo "window $WINDOW: old server $old still running"; exit 1; }
    sleep 0.01
done
echo "$new" >"$SERVER_PID_FILE"
echo "window $WINDOW: pid $old -> $new"
