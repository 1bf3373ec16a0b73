# Shell functions of the handover window commands (takeover-window.sh,
# takeover-fault-window.sh), sourced by them. Env from run.sh: SERVER,
# SERVER_ARGS, SOCK, DISK, WINDOW, WORKDIR. Every wait polls a condition
# with a deadline (10 s; a handover takes milliseconds).

# The old layout of run.sh gave no SERVER_ARGS: ufio-virtio-blk's disk then.
SERVER_ARGS=${SERVER_ARGS---file=$DISK}
WAIT_TICKS=1000 # of 10 ms

# start_takeover LOG [ENV=VALUE...]: starts "$SERVER $SERVER_ARGS --takeover=$SOCK"
# (with the environment given) under a shell that records its exit status
# in $WORKDIR/server-rc.PID; prints the server's pid.
start_takeover() {
    log=$1
    shift
    rm -f "$WORKDIR/start.pid"
    # shellcheck disable=SC2086 # SERVER is a command line, SERVER_ARGS its options
    (
        exec 7>&- 8>&- # run.sh's console pipes
        env "$@" $SERVER $SERVER_ARGS --takeover="$SOCK" >"$log" 2>&1 &
        p=$!
        : >"$WORKDIR/started.$p"
        echo "$p" >"$WORKDIR/start.pid.tmp" && mv "$WORKDIR/start.pid.tmp" "$WORKDIR/start.pid"
        rc=0
        wait "$p" || rc=$?
        echo "$rc" >"$WORKDIR/server-rc.$p.tmp" && mv "$WORKDIR/server-rc.$p.tmp" "$WORKDIR/server-rc.$p"
    ) </dev/null >/dev/null 2>&1 &
    i=0
    until [ -s "$WORKDIR/start.pid" ]; do
        i=$((i + 1))
        [ $i -lt $WAIT_TICKS ] || return 1
        sleep 0.01
    done
    cat "$WORKDIR/start.pid"
}

# wait_listening PID LOG: until the new server says it listens (it took over).
wait_listening() {
    i=0
    until grep -q "listening on" "$2" 2>/dev/null; do
        if [ -f "$WORKDIR/server-rc.$1" ]; then
            echo "window $WINDOW: the new server exited ($(cat "$WORKDIR/server-rc.$1")):"
            cat "$2"
            return 1
        fi
        i=$((i + 1))
        [ $i -lt $WAIT_TICKS ] || { echo "window $WINDOW: no takeover in 10 s"; return 1; }
        sleep 0.01
    done
}

# alive PID: running (not gone, not a zombie waiting for run.sh to reap it)
alive() {
    kill -0 "$1" 2>/dev/null && [ "$(cut -d' ' -f3 /proc/"$1"/stat 2>/dev/null)" != Z ]
}

# wait_gone PID: the old server exits after the acknowledgement.
wait_gone() {
    i=0
    while alive "$1"; do
        i=$((i + 1))
        [ $i -lt $WAIT_TICKS ] || { echo "window $WINDOW: old server $1 still running"; return 1; }
        sleep 0.01
    done
}

# wait_rc PID: the exit status of a server this library started (after it
# exited), or nothing for one it did not start (run.sh's first server).
wait_rc() {
    i=0
    while alive "$1" || { [ -e "$WORKDIR/started.$1" ] && [ ! -f "$WORKDIR/server-rc.$1" ]; }; do
        i=$((i + 1))
        [ $i -lt $WAIT_TICKS ] || return 1
        sleep 0.01
    done
    [ ! -f "$WORKDIR/server-rc.$1" ] || cat "$WORKDIR/server-rc.$1"
}

# old_exited_0 PID: the replaced server exited 0 (when this library started it).
old_exited_0() {
    rc=$(wait_rc "$1") || { echo "window $WINDOW: no exit status of old server $1 in 10 s"; return 1; }
    [ -z "$rc" ] || [ "$rc" = 0 ] || { echo "window $WINDOW: old server $1 exited $rc, not 0"; return 1; }
}

# fd_count PID: its open file descriptors
fd_count() {
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# wait_fds PID WANT WHAT: polls until PID has WANT fds (deadline 10 s); on
# the deadline, or if PID exits, says so after WHAT (with its fd list) and
# fails. Leaves the last count in $fds.
wait_fds() {
    i=0
    while fds=$(fd_count "$1") && [ "$fds" != "$2" ]; do
        alive "$1" || { echo "$3: server $1 exited"; return 1; }
        i=$((i + 1))
        if [ $i -ge $WAIT_TICKS ]; then
            echo "$3: server $1 has $fds fds, not $2:"
            ls -l "/proc/$1/fd"
            return 1
        fi
        sleep 0.01
    done
}
