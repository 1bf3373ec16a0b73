#!/bin/sh
# Build the guest initramfs for the real-guest test:
#   busybox-static from the cached sid root, the kernel modules the guest test
#   needs (decompressed for busybox insmod, in dependency order from
#   modules.dep), our static guest program, and an /init that runs it and
#   powers off.
#
#   tests/e2e/mkinitramfs.sh ROOT GUEST_PROGRAM OUTPUT.cpio.gz
#
# Prints the kernel image path to use with it on stdout.
set -eu

[ $# -eq 3 ] || { echo "usage: $0 ROOT GUEST_PROGRAM OUTPUT" >&2; exit 2; }
ROOT=$1
GUEST=$2
OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd)

die() { printf 'e2e-initramfs: error: %s\n' "$*" >&2; exit 1; }

# The guest's kernel: the one whose modules the root holds (there is one).
KVER=
for k in "$ROOT"/boot/vmlinuz-*; do
    v=${k#"$ROOT"/boot/vmlinuz-}
    [ -d "$ROOT/lib/modules/$v" ] && KVER=$v
done
[ -n "$KVER" ] || die "no kernel with modules in $ROOT/boot"
MODDIR=$ROOT/lib/modules/$KVER
BUSYBOX=$ROOT/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=$ROOT/usr/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox missing from $ROOT"

# vfio-pci gives guest userspace MSI-X and DMA (through the emulated IOMMU);
# uio_pci_generic is the INTx fallback; virtio_pci and virtio_blk drive the
# virtio-blk device. Missing ones (or built into the kernel) are skipped: the
# guest test reports what it could not do.
WANT="vfio vfio_iommu_type1 vfio_pci_core vfio_pci uio uio_pci_generic virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/etc" "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" "$STAGE/tmp" "$STAGE/lib/modules"

cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$STAGE/bin/$applet"
done
cp "$GUEST" "$STAGE/bin/ufio-guest-test"
cp "$HERE/guest/init" "$STAGE/init"
cp "$HERE/guest/edu-guest.sh" "$STAGE/bin/edu-guest.sh"

# UFIO_E2E_EXTRA: dynamically linked programs for the guest (into /bin, a
# .so into /lib/ufio), with every library ldd resolves for them copied to
# the same path, so they run on the host's libraries inside the guest.
for f in ${UFIO_E2E_EXTRA:-}; do
    case $f in
        *.so) mkdir -p "$STAGE/lib/ufio"; cp "$f" "$STAGE/lib/ufio/" ;;
        *) cp "$f" "$STAGE/bin/" ;;
    esac
    for lib in $(ldd "$f" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p'); do
        case $lib in
            */libufio.so*) dest=/lib/x86_64-linux-gnu/${lib##*/} ;; # from the build tree: a default path
            *) dest=$lib ;;
        esac
        [ -e "$STAGE$dest" ] && continue
        mkdir -p "$STAGE${dest%/*}"
        cp -L "$lib" "$STAGE$dest"
    done
done
chmod 755 "$STAGE/init" "$STAGE/bin/ufio-guest-test"

# modules.dep lines: "kernel/a/b.ko.xz: dep1.ko.xz dep2.ko.xz"; names use
# '-' and '_' interchangeably. Emit each module after its dependencies.
ORDER=$(awk -v want="$WANT" '
    function norm(p,   n) { n = p; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/-/, "_", n); return n }
    function visit(n,   i, k, d) {
        if (n in done || !(n in path)) return
        done[n] = 1
        k = split(deps[n], d, " ")
        for (i = 1; i <= k; i++) visit(norm(d[i]))
        print path[n]
    }
    {
        f = $1; sub(/:$/, "", f); n = norm(f)
        path[n] = f; deps[n] = ""
        for (i = 2; i <= NF; i++) deps[n] = deps[n] " " $i
    }
    END { k = split(want, w, " "); for (i = 1; i <= k; i++) visit(w[i]) }
' "$MODDIR/modules.dep")

# vfio only knows enable_unsafe_noiommu_mode when built with VFIO_NOIOMMU.
NOIOMMU=
grep -q '^CONFIG_VFIO_NOIOMMU=y' "$ROOT/boot/config-$KVER" 2>/dev/null && NOIOMMU=enable_unsafe_noiommu_mode=1

: >"$STAGE/etc/modules"
for rel in $ORDER; do
    name=$(basename "$rel")
    case $name in
        *.ko.xz) xz -dc "$MODDIR/$rel" >"$STAGE/lib/modules/${name%.xz}"; name=${name%.xz} ;;
        *.ko.zst) zstd -qdc "$MODDIR/$rel" >"$STAGE/lib/modules/${name%.zst}"; name=${name%.zst} ;;
        *.ko.gz) gzip -dc "$MODDIR/$rel" >"$STAGE/lib/modules/${name%.gz}"; name=${name%.gz} ;;
        *.ko) cp "$MODDIR/$rel" "$STAGE/lib/modules/$name" ;;
        *) die "unexpected module file $rel" ;;
    esac
    args=
    [ "$name" = vfio.ko ] && args=$NOIOMMU
    echo "$name $args" >>"$STAGE/etc/modules"
done

(cd "$STAGE" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) | gzip -1 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$ROOT/boot/vmlinuz-$KVER"
