#!/bin/sh
# Prepare, once per machine, the clean root the package test installs into:
# the e2e Debian sid root (tests/e2e/prepare.sh) plus what a device author
# has to build with (gcc, libc6-dev, pkgconf) and what ufio-tools depends on.
#
#   tests/pkg/prepare-root.sh      # creates $UFIO_E2E_CACHE/pkg-layer (default /var/cache/ufio-e2e)
#
# The e2e root is never modified: the additions are an overlayfs upper layer
# kept beside it (pkg-layer/upper), which tests/pkg/run.sh stacks on the root,
# read-only, under a throw-away upper of its own. The layer records which
# e2e root it was made on and is made again when that root changes.
# Downloads ~80 MB once (apt in the chroot, from the mirror the root uses).
set -eu

CACHE=${UFIO_E2E_CACHE:-/var/cache/ufio-e2e}
ROOT=$CACHE/root
LAYER=$CACHE/pkg-layer
PACKAGES="gcc libc6-dev pkgconf libjson-c5"

log() { printf 'pkg-prepare: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (overlay mounts and chroot need it)"
[ -f "$ROOT/.ufio-e2e-complete" ] || "$(dirname "$0")/../e2e/prepare.sh" || die "no e2e root"
want=$(cat "$ROOT/.ufio-e2e-complete")
if [ -f "$LAYER/stamp" ] && [ "$(cat "$LAYER/stamp")" = "$want" ]; then
    log "layer complete: $LAYER"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.pkg-lock"
command -v flock >/dev/null 2>&1 && flock 9
if [ -f "$LAYER/stamp" ] && [ "$(cat "$LAYER/stamp")" = "$want" ]; then
    log "layer completed by another run: $LAYER"
    exit 0
fi

TMP=$(mktemp -d "$CACHE/pkg-layer.tmp.XXXXXX")
M=$TMP/merged
cleanup() {
    umount "$M/proc" 2>/dev/null || true
    umount "$M" 2>/dev/null || true
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$TMP/upper" "$TMP/work" "$M"
mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$TMP/upper,workdir=$TMP/work" "$M"
mount -t proc proc "$M/proc"
start=$(date +%s)
log "installing $PACKAGES into a layer over $ROOT"
if ! chroot "$M" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES && apt-get clean" \
        >"$CACHE/pkg-apt.log" 2>&1; then
    tail -n 30 "$CACHE/pkg-apt.log" >&2
    die "package installation failed (log: $CACHE/pkg-apt.log)"
fi
for t in gcc pkg-config; do
    chroot "$M" sh -c "command -v $t" >/dev/null || die "$t missing from the layer"
done
umount "$M/proc"
umount "$M"
rm -rf --one-file-system "$LAYER"
mkdir -p "$LAYER"
mv "$TMP/upper" "$LAYER/upper"
echo "$want" >"$LAYER/stamp"
log "layer ready: $LAYER ($(( $(date +%s) - start )) s)"
