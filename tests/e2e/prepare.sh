#!/bin/sh
# Prepare, once per machine, the Debian sid root the real-guest test boots from:
# it provides QEMU with vfio-user-pci (sid's QEMU; stable's is too old), the
# guest kernel with its modules, and busybox-static for the initramfs.
#
#   tests/e2e/prepare.sh            # creates $UFIO_E2E_CACHE/root (default /var/cache/ufio-e2e)
#
# Idempotent: a complete root (stamp file present) is reused as is. The root is
# built in a temporary directory beside it and renamed into place only when
# complete, so an interrupted run leaves nothing that looks finished.
#
# Environment: UFIO_E2E_CACHE (cache directory), UFIO_E2E_MIRROR (Debian mirror;
# default: the one this machine's apt uses).
set -eu

CACHE=${UFIO_E2E_CACHE:-/var/cache/ufio-e2e}
ROOT=$CACHE/root
STAMP=$ROOT/.ufio-e2e-complete
PACKAGES="qemu-system-x86 linux-image-amd64 busybox-static"

log() { printf 'e2e-prepare: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -f "$STAMP" ]; then
    log "cache complete: $ROOT"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"

# The Debian mirror this machine already uses, so we reach no other host.
# Both one-line (.list) and deb822 (.sources) formats are read; the security
# archive is skipped because it has no sid suite.
find_mirror() {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed -n -e 's/^[[:space:]]*deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
               -e 's/^[[:space:]]*URIs:[[:space:]]*//p' "$f" | tr ' ' '\n'
    done | grep -E '^(https?|file)://' | grep -E '/debian/?$' | head -n 1
}

MIRROR=${UFIO_E2E_MIRROR:-$(find_mirror)}
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list*; set UFIO_E2E_MIRROR"
log "mirror: $MIRROR"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

mkdir -p "$CACHE"

# One preparer at a time: a second run waits, then finds the stamp.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if [ -f "$STAMP" ]; then
    log "cache completed by another run: $ROOT"
    exit 0
fi

# Left over by an interrupted run (its mounts were undone by its trap, or by us here).
for old in "$CACHE"/root.tmp.*; do
    [ -d "$old" ] || continue
    umount "$old/proc" 2>/dev/null || true
    log "removing stale $old"
    rm -rf --one-file-system "$old"
done

TMP=$(mktemp -d "$CACHE/root.tmp.XXXXXX")
cleanup() {
    umount "$TMP/proc" 2>/dev/null || true
    if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
        rm -rf --one-file-system "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

start=$(date +%s)
log "debootstrap sid into $TMP (this downloads ~100 MB)"
debootstrap --variant=minbase sid "$TMP" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }

# No daemons may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d"
chmod 755 "$TMP/usr/sbin/policy-rc.d"
# The mirror may serve a Release file past its Valid-Until (a snapshot, or a
# machine clock ahead of it); debootstrap ignored that already, apt must too.
echo 'Acquire::Check-Valid-Until "false";' >"$TMP/etc/apt/apt.conf.d/99ufio-e2e"

mount -t proc proc "$TMP/proc"
log "installing $PACKAGES (this downloads ~250 MB)"
if ! chroot "$TMP" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES && apt-get clean" \
        >"$CACHE/apt.log" 2>&1; then
    tail -n 30 "$CACHE/apt.log" >&2
    die "package installation failed (log: $CACHE/apt.log)"
fi
umount "$TMP/proc"

# Check what the test needs, not just that apt said yes.
[ -x "$TMP/usr/bin/qemu-system-x86_64" ] || die "qemu-system-x86_64 missing from the root"
[ -x "$TMP/bin/busybox" ] || [ -x "$TMP/usr/bin/busybox" ] || die "busybox missing from the root"
ls "$TMP"/boot/vmlinuz-* >/dev/null 2>&1 || die "no kernel in $TMP/boot"

date -u +%Y-%m-%dT%H:%M:%SZ >"$TMP/.ufio-e2e-complete"
rm -rf --one-file-system "$ROOT"
mv "$TMP" "$ROOT"
TMP=
log "cache ready: $ROOT ($(( $(date +%s) - start )) s)"
