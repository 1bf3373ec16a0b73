#!/bin/sh
# mkstatic.sh IN.a OUT.a LD OBJCOPY AR
# Builds the installed libufio.a from the library's objects: links them into
# one relocatable object, then makes every hidden symbol (all that is not
# UFIO_API) local, so internal names cannot collide with a static user's.
set -eu
in=$1 out=$2 ld=$3 objcopy=$4 ar=$5
tmp=$out.tmp.o
"$ld" -r --whole-archive "$in" -o "$tmp"
"$objcopy" --localize-hidden "$tmp"
rm -f "$out"
"$ar" rcsD "$out" "$tmp"
rm -f "$tmp"
