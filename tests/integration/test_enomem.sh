#!/usr/bin/env bash
# Failure injection, one call at a time, and the integrity of what follows (as SQLite's fault
# simulation checks the database after each fault, not only that the process lived):
#
#  server: the sample server runs with its N-th allocation failing (N = 1..MAX), then with its
#    N-th fd-creating call failing (socket, accept4, socketpair, eventfd, memfd_create,
#    epoll_create1, open, dup*, fcntl F_DUPFD, mmap; N = 1..all it makes, +3), while one
#    exercising session runs against it: ufio-lspci -vvv, a migration out and back in, and a
#    checked session (session-check: register and shared-memory data written and read back,
#    an MSI-X interrupt, DMA through a mapped memfd and by messages, every byte compared).
#    The shim says when it injected the failure. Then:
#      - a server that refused to start must have said why (exit 1 with a message);
#      - a server still running must serve a NEXT whole session correctly (session-check
#        again, every check) and exit 0 on SIGTERM;
#      - nothing may die of a signal, ever.
#  client: session-check itself with its N-th allocation, then its N-th fd call, failing
#    against a healthy server (it may fail, never crash or hang), and after each, a clean
#    session-check against that same server must pass; and ufio-lspci -vvv with each of its
#    allocations failing.
# Counting runs first make sure the points cover every call of a session (MAX for allocations).
# usage: test_enomem.sh SAMPLE LSPCI MIGRATE FAILMALLOC.so SESSION_CHECK [MAX]
set -u
sample=$1 lspci_tool=$2 migrate=$3 shim=$4 check=$5 max=${6:-400}
if [ -n "${UFIO_INSTRUMENTED:-}" ]; then echo "skipped under ASan/valgrind (own allocators)"; exit 77; fi
. "$(dirname "$0")/common.sh"
dir=$(mktemp -d /tmp/ufio-enomem.XXXXXX)
peer=
trap '[ -n "$peer" ] && kill $peer 2>/dev/null; rm -rf "$dir"' EXIT
bad=0

# the exercising session against the server on $1 (it may meet the injected failure anywhere)
session() {
    timeout 10 "$lspci_tool" -vvv --timeout 2000 "$1" >/dev/null 2>&1
    timeout 10 "$migrate" --timeout 2000 --from "$1" --to "$dir/peer.sock" >/dev/null 2>&1
    timeout 10 "$migrate" --timeout 2000 --from "$dir/peer.sock" --to "$1" >/dev/null 2>&1
    timeout 10 "$check" -q "$1" >/dev/null 2>&1
}
count_of() { sed -n "s/^failmalloc: $2 \([0-9]*\)$/\1/p" "$1" | tail -1; }

# a healthy peer to migrate to
SRV_ERR=/dev/null srv_up "$sample" --socket-path="$dir/peer.sock" || { echo "not ok - the peer did not start"; exit 1; }
peer=$SRV_PID

# how many allocations and fd calls a server makes starting and serving the session
rm -f "$dir/s.sock"
SRV_ERR="$dir/count" UFIO_FAILMALLOC_AT=999999999 UFIO_FAILFD_AT=999999999 UFIO_FAILMALLOC_REPORT=1 \
    LD_PRELOAD="$shim" srv_up "$sample" --socket-path="$dir/s.sock" && session "$dir/s.sock"
kill -TERM $SRV_PID 2>/dev/null; wait $SRV_PID
if grep -q "ASan runtime does not come first" "$dir/count"; then
    echo "skipped: a sanitizer build cannot take the shim"; exit 77
fi
server_allocs=$(count_of "$dir/count" allocations)
server_fds=$(count_of "$dir/count" "fd calls")
if [ -z "$server_allocs" ] || [ -z "$server_fds" ]; then echo "not ok - no counts from the shim"; exit 1; fi
if [ "$server_allocs" -ge "$max" ]; then
    echo "not ok - a session makes $server_allocs allocations, MAX=$max does not cover them all"; bad=$((bad + 1))
fi

# every failure point of the server: $1 = the shim's variable, $2 = the last N, $3 = malloc|fd
declare -A started injected next_ok
run_server_points() {
    local var=$1 last=$2 kind=$3 n st name
    [ "$kind" = malloc ] && name="server allocation" || name="server fd call"
    started[$kind]=0 injected[$kind]=0 next_ok[$kind]=0
    for n in $(seq 1 "$last"); do
        rm -f "$dir/s.sock"
        local up=0
        SRV_ERR="$dir/err" srv_up env "$var=$n" LD_PRELOAD="$shim" "$sample" --socket-path="$dir/s.sock" && up=1
        local pid=$SRV_PID
        if [ $up = 1 ]; then
            started[$kind]=$((started[$kind] + 1))
            # the exercising session, again until the failure has been injected (a later N lands in
            # a later session), so the check below always runs after it, never through it
            for _ in 1 2 3 4; do
                session "$dir/s.sock"
                grep -q "^failmalloc: injected" "$dir/err" && break
            done
            local took=0
            grep -q "^failmalloc: injected" "$dir/err" && took=1 && injected[$kind]=$((injected[$kind] + 1))
            if kill -0 $pid 2>/dev/null; then
                # the integrity check: a whole next session, every answer checked
                if timeout 20 "$check" "$dir/s.sock" 2>"$dir/check"; then
                    next_ok[$kind]=$((next_ok[$kind] + 1))
                elif [ $took = 0 ] && grep -q "^failmalloc: injected" "$dir/err"; then
                    # N lies past what four sessions allocate (later sessions allocate
                    # less than the first): the check itself took the failure, so it
                    # is no next session and its failure is the expected one
                    :
                else
                    echo "not ok - $name $n: the next session was wrong: $(cat "$dir/check")"; tail -5 "$dir/err"
                    bad=$((bad + 1))
                fi
            fi
            kill -TERM $pid 2>/dev/null
        fi
        wait $pid; st=$?
        if [ $st -gt 128 ]; then
            echo "not ok - $name $n: the server died of signal $((st - 128))"; tail -20 "$dir/err"
            bad=$((bad + 1))
        elif [ $up = 1 ] && [ $st != 0 ]; then
            echo "not ok - $name $n: the server served, then exited $st on SIGTERM"; tail -5 "$dir/err"
            bad=$((bad + 1))
        elif [ $up = 0 ] && ! { [ $st = 1 ] && grep -q "ufio-sample:" "$dir/err"; }; then
            echo "not ok - $name $n: did not start, and exited $st without saying why"; tail -5 "$dir/err"
            bad=$((bad + 1))
        fi
    done
}
run_server_points UFIO_FAILMALLOC_AT "$max" malloc
run_server_points UFIO_FAILFD_AT $((server_fds + 3)) fd

# the client side: session-check under injection, then a clean one against the same server
UFIO_FAILMALLOC_AT=999999999 UFIO_FAILFD_AT=999999999 UFIO_FAILMALLOC_REPORT=1 LD_PRELOAD="$shim" \
    "$check" "$dir/peer.sock" >/dev/null 2>"$dir/count" || { echo "not ok - session-check fails uninjected"; bad=$((bad + 1)); }
client_allocs=$(count_of "$dir/count" allocations)
client_fds=$(count_of "$dir/count" "fd calls")
client_bad=0 client_points=0
for var in UFIO_FAILMALLOC_AT UFIO_FAILFD_AT; do
    [ $var = UFIO_FAILMALLOC_AT ] && last=$((client_allocs + 3)) || last=$((client_fds + 3))
    for n in $(seq 1 "$last"); do
        client_points=$((client_points + 1))
        env "$var=$n" LD_PRELOAD="$shim" timeout 20 "$check" -q "$dir/peer.sock" >/dev/null 2>"$dir/err"
        st=$?
        if [ $st -gt 128 ] || [ $st = 124 ]; then
            echo "not ok - client $var=$n: session-check ended with status $st"; tail -20 "$dir/err"
            client_bad=$((client_bad + 1))
        fi
        if ! timeout 20 "$check" "$dir/peer.sock" 2>"$dir/check"; then
            echo "not ok - after client $var=$n: the server's next session was wrong: $(cat "$dir/check")"
            client_bad=$((client_bad + 1))
        fi
    done
done
UFIO_FAILMALLOC_AT=999999999 UFIO_FAILMALLOC_REPORT=1 LD_PRELOAD="$shim" "$lspci_tool" -vvv --timeout 2000 \
    "$dir/peer.sock" >/dev/null 2>"$dir/count"
lspci_allocs=$(count_of "$dir/count" allocations)
for n in $(seq 1 $((lspci_allocs + 5))); do
    client_points=$((client_points + 1))
    UFIO_FAILMALLOC_AT=$n LD_PRELOAD="$shim" timeout 10 "$lspci_tool" -vvv --timeout 2000 "$dir/peer.sock" \
        >/dev/null 2>"$dir/err"
    st=$?
    if [ $st -gt 128 ] || [ $st = 124 ]; then
        echo "not ok - client allocation $n: ufio-lspci ended with status $st"; tail -20 "$dir/err"
        client_bad=$((client_bad + 1))
    fi
done

echo "enomem: server allocations: a session makes $server_allocs, $max points; started ${started[malloc]}," \
     "failure injected in ${injected[malloc]}, next session correct in ${next_ok[malloc]}"
echo "enomem: server fd calls: a session makes $server_fds, $((server_fds + 3)) points; started ${started[fd]}," \
     "failure injected in ${injected[fd]}, next session correct in ${next_ok[fd]}"
echo "enomem: client: $client_points failure points (session-check $client_allocs allocations, $client_fds fd calls;" \
     "ufio-lspci $lspci_allocs allocations), $client_bad bad; server: $bad bad"
[ $bad = 0 ] && [ $client_bad = 0 ]
