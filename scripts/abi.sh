#!/usr/bin/env bash
# The ABI checks of libufio (docs/abi.md), run by `meson test --suite abi`:
#
#   scripts/abi.sh symbols LIBUFIO.SO LIBUFIO.A   exported symbols of both libraries == abi/libufio.symbols
#   scripts/abi.sh abidiff LIBUFIO.SO             the ABI against the baseline abi/libufio.abi (abidiff):
#                                                 no fixed arrays in public structs;
#                                                 removals and changes fail; new functions and members
#                                                 appended to a sized struct do not
#   scripts/abi.sh update BUILD_DIR               rewrites abi/libufio.symbols (and with --baseline,
#                                                 abi/libufio.abi) from BUILD_DIR's libraries
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
list=$src/abi/libufio.symbols
baseline=$src/abi/libufio.abi
suppr=$src/abi/libufio.abignore

# "name version" per exported function/object of the shared library
so_symbols() {
    nm -D --defined-only --format=posix "$1" |
        awk '$2 != "A" { n = $1; v = "-"; if (split(n, p, "@@") == 2) { n = p[1]; v = p[2] } print n, v }' |
        LC_ALL=C sort -u
}
# global symbols the static archive defines (all members)
a_symbols() {
    nm -g --defined-only --format=posix "$1" | awk 'NF >= 2 && $1 !~ /\[.*\]:$/ && $1 !~ /:$/ { print $1 }' |
        LC_ALL=C sort -u
}

abi_dump() { # LIB OUT
    abidw --headers-dir "$src/include/ufio" --drop-private-types --drop-undefined-syms --no-show-locs \
        --no-corpus-path --no-comp-dir-path --type-id-style hash --out-file "$2" "$1"
}

case "${1:-}" in
symbols)
    so=$2 a=$3
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    so_symbols "$so" >"$tmp/so"
    a_symbols "$a" >"$tmp/a"
    rc=0
    if ! diff -u --label abi/libufio.symbols --label "$(basename "$so")" "$list" "$tmp/so" >"$tmp/d"; then
        rc=1
        echo "FAIL: the symbols libufio.so exports differ from abi/libufio.symbols:"
        grep '^[-+][^-+]' "$tmp/d"
        cat <<EOF

  + lines: exported now, not in the list. A new public function is an ABI addition: if it is
    intended (declared UFIO_API in include/ufio/ with a contract comment), announce it by running
        scripts/abi.sh update <build-dir>
    and committing abi/libufio.symbols with the change. If it is not meant to be public, it lacks
    'static' or carries UFIO_API by mistake.
  - lines: in the list, no longer exported. A removal or a renamed version node breaks every
    program linked against libufio.so.1: only in a new major version (docs/abi.md).
  A version other than LIBUFIO_1.0 comes from abi/libufio.map.
EOF
    fi
    awk '{ print $1 }' "$list" | LC_ALL=C sort -u >"$tmp/names"
    if ! diff -u --label "abi/libufio.symbols (names)" --label "$(basename "$a")" "$tmp/names" "$tmp/a" >"$tmp/da"; then
        rc=1
        echo "FAIL: the global symbols of the static libufio.a differ from abi/libufio.symbols:"
        grep '^[-+][^-+]' "$tmp/da"
        cat <<EOF

  The archive must define exactly the public functions: everything else is hidden in the
  library and made local by scripts/mkstatic.sh (objcopy --localize-hidden). An internal
  name here means it has default visibility (a UFIO_API on an internal function, or a
  missing -fvisibility=hidden); a public one here but not in the list: see the .so message.
EOF
    fi
    [ "$rc" = 0 ] && echo "ok: $(wc -l <"$tmp/so") symbols, both libraries match abi/libufio.symbols"
    exit "$rc"
    ;;
abidiff)
    so=$2
    command -v abidiff >/dev/null || { echo "abidiff not installed (abigail-tools): skipped"; exit 77; }
    if ! readelf -S "$so" | grep -q '\.debug_info'; then
        echo "$so has no debug info (abidiff needs it): skipped"; exit 77
    fi
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    abi_dump "$so" "$tmp/new.abi" || exit 1
    abidiff --no-added-syms --suppressions "$suppr" "$baseline" "$tmp/new.abi" >"$tmp/report"
    rc=$?
    # abidiff cannot tell a member appended after the old size from one put in the old tail
    # padding (docs/abi.md, rule 2); the suppression lets both through, so look ourselves;
    # and refuse fixed arrays in public structs
    python3 - "$baseline" "$tmp/new.abi" >"$tmp/pad" <<'EOF'
import sys, xml.etree.ElementTree as ET
def structs(path):
    out = {}
    for c in ET.parse(path).iter('class-decl'):
        if c.get('is-declaration-only') == 'yes' or not c.get('size-in-bits'):
            continue
        out[c.get('name')] = (int(c.get('size-in-bits')),
            {v.get('name'): int(d.get('layout-offset-in-bits', 0))
             for d in c.findall('data-member') for v in d.findall('var-decl')})
    return out
old, new = structs(sys.argv[1]), structs(sys.argv[2])
bad = 0
# no fixed arrays in public structs (docs/abi.md): a list is an accessor, text a caller buffer
tree = ET.parse(sys.argv[2])
arrays = {a.get('id') for a in tree.iter('array-type-def')}
for c in tree.iter('class-decl'):
    for d in c.findall('data-member'):
        for v in d.findall('var-decl'):
            if v.get('type-id') in arrays:
                print(f"struct {c.get('name')}: member '{v.get('name')}' is a fixed-size array: a public struct "
                      "cannot grow it; use an accessor function or a caller-provided buffer (docs/abi.md)")
                bad = 1
for name, (osize, omembers) in old.items():
    if name not in new:
        continue
    for m, off in new[name][1].items():
        if m not in omembers and off < osize:
            print(f"struct {name}: new member '{m}' at bit {off}, inside the old size ({osize} bits)")
            bad = 1
sys.exit(bad)
EOF
    prc=$?
    if [ "$rc" = 0 ] && [ "$prc" = 0 ]; then
        echo "ok: no ABI change against abi/libufio.abi (additions allowed)"
        exit 0
    fi
    echo "FAIL: the ABI of $(basename "$so") changed incompatibly against the baseline abi/libufio.abi"
    cat "$tmp/report" "$tmp/pad"
    cat <<EOF

  Allowed within 1.x: new functions (announced in abi/libufio.symbols) and new members
  appended to a size-carrying struct, starting at or after its old sizeof (docs/abi.md).
  Anything else reported above (a removed or changed function, a changed member, a struct
  member inserted or moved) breaks programs built against libufio 1.0. Make the change
  compatible instead; a deliberate break needs a new major version: raise the soname
  (meson project version), then record the new baseline with
      scripts/abi.sh update <build-dir> --baseline
  and commit abi/ with the change, saying so in the commit message.
EOF
    exit 1
    ;;
update)
    b=${2:?build dir}
    so_symbols "$b/libufio.so" >"$list"
    echo "wrote abi/libufio.symbols ($(wc -l <"$list") symbols)"
    if [ "${3:-}" = --baseline ]; then
        abi_dump "$b/libufio.so" "$baseline" && echo "wrote abi/libufio.abi"
    fi
    ;;
*)
    sed -n '2,10p' "$0"; exit 2
    ;;
esac
