#!/usr/bin/env bash
# One command for a newcomer: install what is needed, build, and start the
# sample device server on its default socket path (/tmp/ufio-sample.sock).
# Extra arguments go to ufio-sample (e.g. --socket-path=PATH, -v).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
[ -d build ] || meson setup build
ninja -C build
exec ./build/samples/ufio-sample "$@"
