#!/bin/sh
# A run.sh workload window (--window-cmd) for the handover's faults: windows
# 1, 2, 3 (and 5, 6, 7, ...) start "$SERVER --takeover" with
# UFIO_TAKEOVER_FAIL_AT=precopy, stream, before-ack in turn, so the new process
# _exit(9)s at that step; every fourth window is a good handover
# (takeover-window.sh). After a failed one: the new process exited 9, the old
# one is still running with as many open fds as before it started, and it
# is still the server (the guest's I/O after the window, which run.sh waits
# for, is served by it). Env from run.sh as for takeover-window.sh.
set -u
here=$(dirname "$0")
case $((WINDOW % 4)) in
    0) exec sh "$here/takeover-window.sh" ;;
    1) step=precopy ;;
    2) step=stream ;;
    3) step=before-ack ;;
esac
# shellcheck source-path=SCRIPTDIR source=window-lib.sh
. "$here/window-lib.sh"
old=$(cat "$SERVER_PID_FILE")
alive "$old" || { echo "window $WINDOW: the server $old is not running"; exit 1; }
fds_before=$(fd_count "$old")
log=$WORKDIR/takeover-$WINDOW-$step.log
new=$(start_takeover "$log" UFIO_LOG=info UFIO_TAKEOVER_FAIL_AT="$step") ||
    { echo "window $WINDOW: cannot start the new server"; exit 1; }
rc=$(wait_rc "$new") || { echo "window $WINDOW ($step): the new server $new did not exit in 10 s"; exit 1; }
if [ "$rc" != 9 ] || ! grep -q "UFIO_TAKEOVER_FAIL_AT=$step: exiting" "$log"; then
    echo "window $WINDOW ($step): the new server exited $rc, not 9 at its hook:"
    cat "$log"
    exit 1
fi
# the old one drops the controller's session and what came with it, then
# serves on; its fds are back to what they were (deadline: 10 s)
wait_fds "$old" "$fds_before" "window $WINDOW ($step): the old server, as before the takeover" || exit 1
alive "$old" || { echo "window $WINDOW ($step): the old server $old exited"; exit 1; }
echo "window $WINDOW: $step: new $new exited 9, old $old serves on with $fds fds (as before)"
