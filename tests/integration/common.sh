# Shell helpers shared by the integration test scripts (sourced).

# srv_up CMD... : starts a server in the background and waits for its own signal that it
# serves: the "listening on" line it prints on stdout, read from a FIFO (a handshake, not a
# pause), at most 10 s. Sets SRV_PID. stderr goes to $SRV_ERR (default /dev/null).
# Returns 1 if the server exited, or said nothing in time, first.
srv_up() {
    local fifo line ok=1 fd
    # (no mktemp: the tests run under valgrind --trace-children, and mktemp -u leaks)
    local tries=0
    until fifo="${TMPDIR:-/tmp}/ufio-ready.$$.$RANDOM$RANDOM"; mkfifo -m 600 "$fifo" 2>/dev/null; do
        tries=$((tries + 1)); [ $tries -lt 20 ] || return 1
    done
    "$@" >"$fifo" 2>"${SRV_ERR:-/dev/null}" &
    SRV_PID=$!
    exec {fd}<"$fifo"
    rm -f "$fifo"
    while read -r -t 10 -u "$fd" line; do
        case $line in "listening on "*) ok=0; break ;; esac
    done
    exec {fd}<&-   # the servers print nothing more on stdout (and ignore SIGPIPE)
    return $ok
}
