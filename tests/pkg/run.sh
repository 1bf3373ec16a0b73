#!/bin/sh
# The Debian packages as a user gets them (scripts/test.sh runs this):
#   1. dpkg-buildpackage -us -uc -b on a copy of the tree (nothing is written
#      beside the checkout), then lintian: no errors allowed;
#   2. the packages installed with dpkg into a clean root: the e2e Debian sid
#      root plus a compiler (tests/pkg/prepare-root.sh), stacked read-only
#      under a throw-away overlay, so the cache is never modified;
#   3. in that root, the documentation's examples built against the installed
#      libufio-dev with pkg-config (shared, and static against libufio.a) and
#      run, the man pages checked present, and ufio-lspci asked about ufio-sample.
#
#   tests/pkg/run.sh [--keep]      # --keep: leave the work directory (printed)
#
# Needs root (overlay mounts, chroot). Environment: UFIO_E2E_CACHE.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CACHE=${UFIO_E2E_CACHE:-/var/cache/ufio-e2e}
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1

log() { printf 'pkg-test: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (overlay mounts and chroot need it)"

VERSION=$(sed -n '1s/^ufio (\([^)]*\)).*/\1/p' "$SRC/debian/changelog")
[ -n "$VERSION" ] || die "no version in debian/changelog"
PROJECT=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$SRC/meson.build" | head -n 1)
[ "$VERSION" = "$PROJECT" ] ||
    die "debian/changelog says $VERSION, meson.build $PROJECT: add a changelog entry (dch -v $PROJECT)"
WORK=$(mktemp -d /tmp/ufio-pkg.XXXXXX)
M=$WORK/root
cleanup() {
    # anything a failed step left running inside the root (it would keep the mount busy)
    for p in /proc/[0-9]*; do
        case $(readlink "$p/root" 2>/dev/null) in "$M"|"$M"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
    done
    umount "$M/proc" 2>/dev/null || true
    umount "$M" 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf --one-file-system "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
t0=$(date +%s)

# 1. build: the tracked (and new, unignored) files only, never a build directory
mkdir -p "$WORK/src/ufio-$VERSION"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SRC" && git ls-files -co --exclude-standard) | (cd "$SRC" && tar cf - -T -) |
        tar xf - -C "$WORK/src/ufio-$VERSION"
else
    (cd "$SRC" && tar cf - --exclude='./build*' .) | tar xf - -C "$WORK/src/ufio-$VERSION"
fi
log "dpkg-buildpackage -us -uc -b (log: $WORK/build.log)"
if ! (cd "$WORK/src/ufio-$VERSION" &&
        DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    KEEP=1
    die "dpkg-buildpackage failed"
fi
t1=$(date +%s)
debs=""
for p in libufio1 libufio-dev ufio-tools; do
    f=$WORK/src/${p}_${VERSION}_$(dpkg --print-architecture).deb
    [ -f "$f" ] || die "package $p was not built"
    debs="$debs $f"
done
log "lintian"
lintian --fail-on error "$WORK/src/ufio_${VERSION}_$(dpkg --print-architecture).changes" >"$WORK/lintian.log" 2>&1 ||
    { cat "$WORK/lintian.log" >&2; die "lintian reports errors"; }
sed 's/^/  /' "$WORK/lintian.log" >&2
t2=$(date +%s)

# 2. the clean root
"$HERE/prepare-root.sh" || die "cannot prepare the clean root"
mkdir -p "$M" "$WORK/upper" "$WORK/ovlwork"
mount -t overlay overlay \
    -o "lowerdir=$CACHE/pkg-layer/upper:$CACHE/root,upperdir=$WORK/upper,workdir=$WORK/ovlwork" "$M"
mount -t proc proc "$M/proc"
chroot "$M" sh -c 'test ! -e /usr/include/ufio && ! ls /usr/lib/*/libufio* >/dev/null 2>&1' ||
    die "the root is not clean: it has libufio already"
mkdir -p "$M/tmp/pkg"
cp $debs "$M/tmp/pkg/"
log "dpkg -i libufio1 libufio-dev ufio-tools"
chroot "$M" sh -c 'dpkg -i /tmp/pkg/*.deb' >"$WORK/dpkg.log" 2>&1 ||
    { cat "$WORK/dpkg.log" >&2; die "the packages do not install"; }

# 3. a device author's first steps, inside the root
mkdir -p "$M/tmp/ex"
cp "$SRC"/docs/examples/*.c "$M/tmp/ex/"
log "building and running the examples against the installed libufio-dev"
chroot "$M" /usr/bin/env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp sh -eu -c '
    cd /tmp/ex
    pkg-config --exists ufio
    [ "$(pkg-config --modversion ufio)" = "'"$VERSION"'" ]
    echo "ufio.pc: $(pkg-config --modversion ufio): $(pkg-config --cflags --libs ufio)"
    for e in *.c; do
        n=${e%.c}
        cc -Wall -Wextra -Werror -o "$n" "$e" $(pkg-config --cflags --libs ufio)
        # static: libufio.a, everything else as usual
        cc -Wall -Wextra -Werror -o "$n-static" "$e" $(pkg-config --cflags ufio) \
            -Wl,-Bstatic $(pkg-config --libs-only-l ufio) -Wl,-Bdynamic $(pkg-config --static --libs-only-other ufio)
        ! ldd "$n-static" | grep -q libufio
        ldd "$n" | grep -q "libufio.so.1 => /usr/lib/"
        ./"$n"
        ./"$n-static" >/dev/null
    done
' || die "an example failed in the clean root (above)"

log "man pages and tools in the clean root"
chroot "$M" /usr/bin/env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp sh -eu -c '
    for t in ufio-sample ufio-virtio-blk ufio-lspci ufio-migrate ufio-compat ufio-bench; do
        command -v "$t" >/dev/null
        "$t" --help >/dev/null
        test -f /usr/share/man/man1/$t.1.gz
    done
    for p in libufio ufio_dev_create ufio_client_connect; do
        test -f /usr/share/man/man3/$p.3.gz
    done
    ufio-sample --socket-path=/tmp/pkg-sample.sock >/tmp/sample.out 2>&1 &
    pid=$!
    trap "kill $pid 2>/dev/null || true" EXIT
    i=0
    until grep -q "listening on" /tmp/sample.out; do
        i=$((i + 1)); [ $i -lt 200 ] || { cat /tmp/sample.out; exit 1; }
        kill -0 $pid || { cat /tmp/sample.out; exit 1; }
        sleep 0.05   # polling a condition with a deadline, not a synchronisation
    done
    ufio-lspci /tmp/pkg-sample.sock | tee /tmp/lspci.out
    grep -q "5546:0001" /tmp/lspci.out
    ufio-lspci --json /tmp/pkg-sample.sock | grep -Eq "\"vendor_id\": ?\"5546\""
    kill $pid
    wait $pid || true
' || die "the installed tools do not work (above)"
t3=$(date +%s)
log "ok: build $((t1 - t0)) s, lintian $((t2 - t1)) s, install + examples + tools $((t3 - t2)) s, total $((t3 - t0)) s"
