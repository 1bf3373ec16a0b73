#!/bin/sh
# One live handover inside a run.sh workload window (--window-cmd): starts
# "$SERVER $SERVER_ARGS --takeover=$SOCK", waits until it listens and the old
# server process is gone, checks that the old one exited 0 (when a window
# started it; run.sh checks the first one), and records the new pid in
# $SERVER_PID_FILE for run.sh. The new one must then have as many open fds
# as the old one had (when a window started that one too: run.sh's first
# server also holds the console pipes), so nothing leaks from one to the next. Env from run.sh: SERVER, SERVER_ARGS, SOCK,
# DISK, WINDOW, SERVER_PID_FILE, WORKDIR.
#
# Each server is started under a small shell that stays its parent and
# writes its exit status to $WORKDIR/server-rc.PID when it exits.
set -u
# shellcheck source-path=SCRIPTDIR source=window-lib.sh
. "$(dirname "$0")/window-lib.sh"
old=$(cat "$SERVER_PID_FILE")
fds_old=$(fd_count "$old")
log=$WORKDIR/takeover-$WINDOW.log
# UFIO_LOG=info: the new process logs its "takeover timing" line
new=$(start_takeover "$log" UFIO_LOG=info) || { echo "window $WINDOW: cannot start the new server"; exit 1; }
wait_listening "$new" "$log" || exit 1
wait_gone "$old" || exit 1
old_exited_0 "$old" || exit 1
fds_new=$(fd_count "$new")
if [ -e "$WORKDIR/started.$old" ]; then
    wait_fds "$new" "$fds_old" "window $WINDOW: the new server, as the old one" || exit 1
    fds_new=$fds
fi
echo "$new" >"$SERVER_PID_FILE"
echo "window $WINDOW: pid $old ($fds_old fds) -> $new ($fds_new fds)"
