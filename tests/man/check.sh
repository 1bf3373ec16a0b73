#!/usr/bin/env bash
# tests/man/check.sh MANDIR TOOL=PATH...
# 1. every page in MANDIR renders without a warning (groff -ww, and man -l);
# 2. every option TOOL --help lists is documented in MANDIR/TOOL.1 (an entry
#    of its OPTIONS: the first line after a .TP), and every
#    option the page documents (its .TP entries) is one --help lists, so the
#    two cannot drift apart while options are added.
set -uo pipefail
mandir=$1; shift
fail=0
export LC_ALL=C.UTF-8 MANWIDTH=80

for page in "$mandir"/*.[1-9]; do
    w=$(groff -man -ww -z -Tutf8 "$page" 2>&1)
    if [ -n "$w" ]; then
        echo "FAIL: $(basename "$page"): groff warns:"; echo "$w"; fail=1
    fi
    if command -v man >/dev/null; then
        w=$(man --warnings -l "$page" 2>&1 >/dev/null)
        if [ -n "$w" ]; then
            echo "FAIL: $(basename "$page"): man -l warns:"; echo "$w"; fail=1
        fi
    fi
done

# options of a --help text: the usage lines' bracketed alternatives and the
# first one or two names at the start of each indented option line
help_options() {
    awk '
        /^ *usage:/ || (in_usage && /^ +\[/) { in_usage = 1; line = $0
            while (match(line, /(^|[[ |])--?[A-Za-z][A-Za-z0-9-]*/)) {
                o = substr(line, RSTART, RLENGTH); sub(/^[[ |]/, "", o); print o
                line = substr(line, RSTART + RLENGTH) }
            next }
        { in_usage = 0 }
        /^ +-/ { n = split($0, f, /[ ,=]+/); k = 0
            for (i = 1; i <= n && k < 2; i++) if (f[i] ~ /^--?[A-Za-z]/) { print f[i]; k++ } else if (f[i] != "") break }
    ' | sed 's/[^A-Za-z0-9-].*$//' | sort -u
}
# options a page documents: the first line after each .TP, "\-" as "-"
page_options() {
    awk 'prev == ".TP" { print } { prev = $1 }' "$1" | sed 's/\\-/-/g; s/\\f[BIRP]//g' |
        grep -o -- '--\?[A-Za-z][A-Za-z0-9-]*' | grep '^-' | sort -u
}

for arg in "$@"; do
    tool=${arg%%=*} bin=${arg#*=} page=$mandir/$tool.1
    if [ ! -f "$page" ]; then
        echo "FAIL: $tool has no manual page: write man/$tool.1 and add it to man/meson.build"; fail=1; continue
    fi
    help=$("$bin" --help 2>&1)
    have=$(page_options "$page")
    for o in $(help_options <<<"$help"); do
        if ! grep -qx -- "$o" <<<"$have"; then
            esc=$(sed 's/-/\\-/g' <<<"$o")
            echo "FAIL: $tool --help lists $o, man/$tool.1 does not document it: add under .SH OPTIONS"
            echo "      .TP"
            echo "      .B $esc        (or .BI $esc= ARG  /  .BI \"$esc \" ARG  for one that takes a value)"
            echo "      what it does (as --help says), and add it to .SH SYNOPSIS too"
            fail=1
        fi
    done
    for o in $(page_options "$page"); do
        case $o in -h | --help) continue ;; esac # every tool takes them, not all list them
        if ! grep -q -- "$o\\b" <<<"$help"; then
            echo "FAIL: man/$tool.1 documents $o, which $tool --help does not list: remove it from the page, or add it to --help"
            fail=1
        fi
    done
done
[ "$fail" = 0 ] && echo "ok: $(ls "$mandir"/*.[1-9] | wc -l) pages render cleanly; $# tools' options match their pages"
exit "$fail"
