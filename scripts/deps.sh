#!/usr/bin/env bash
# Installs the Debian packages ufio needs to build and test (idempotent).
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc libc6-dev libjson-c-dev libcmocka-dev valgrind clang
      libclang-rt-dev cppcheck pciutils debootstrap xz-utils cpio python3
      binutils abigail-tools debhelper dpkg-dev lintian groff-base man-db
      libgnutls28-dev gnutls-bin iproute2)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
