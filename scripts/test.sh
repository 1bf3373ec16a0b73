#!/usr/bin/env bash
# Runs the whole ufio test suite, as CI does (.ci/run calls exactly this):
#   1. unit + integration tests (normal build)
#   2. the same under ASan + UBSan
#   3. the integration tests under valgrind memcheck (zero leaks, zero errors)
#   4. static analysis of lib/ (cppcheck)
#   5. the Debian packages: built, lintian-clean, installed into a clean root where the
#      docs/examples are built against libufio-dev and run (tests/pkg/run.sh; UFIO_SKIP_PKG=1 skips)
#   6. every libFuzzer target for UFIO_FUZZ_SECONDS (default 20) each, built with clang
#   7. the real-guest end-to-end tests (QEMU vfio-user-pci + Linux guest: the sample device,
#      then ufio-virtio-blk under the guest's virtio drivers), unless UFIO_SKIP_E2E=1
# Ends with a line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
jobs=$(nproc)

# count the results of one `meson test` run from its summary block
tally() {
    local log=$1 ok fail
    ok=$(awk '/^Ok:/ {print $2}' "$log" | tail -1)
    fail=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {s += $NF} END {print s + 0}' "$log")
    passed=$((passed + ${ok:-0}))
    failed=$((failed + fail))
    if [ -z "$ok" ]; then failed=$((failed + 1)); fi
}

step() { echo; echo "=== $* ==="; }

build() {
    local dir=$1; shift
    if [ ! -d "$dir" ]; then meson setup "$dir" "$@" >/dev/null || return 1; fi
    ninja -C "$dir" >"$dir.buildlog" 2>&1 || { cat "$dir.buildlog"; return 1; }
}

step "build (gcc, -Werror)"
if build build-ci; then
    step "unit + integration tests"
    meson test -C build-ci --no-suite e2e --num-processes "$jobs" --print-errorlogs 2>&1 | tee build-ci.testlog
    tally build-ci.testlog
else
    echo "build failed"; failed=$((failed + 1))
fi

step "build with ASan + UBSan"
if build build-ci-asan -Db_sanitize=address,undefined -Db_lundef=false; then
    step "unit + integration tests under ASan + UBSan"
    UFIO_INSTRUMENTED=1 UFIO_NO_RSS_CHECK=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build-ci-asan --no-suite e2e --num-processes "$jobs" --print-errorlogs 2>&1 | tee build-ci-asan.testlog
    tally build-ci-asan.testlog
else
    echo "sanitizer build failed"; failed=$((failed + 1))
fi

step "integration tests under valgrind memcheck"
# (the two-namespace TLS test runs under ASan+UBSan above; under valgrind it alone takes ~17 min;
# the handover test's 3 s acknowledgement deadline cannot hold under valgrind: ASan+UBSan covers it)
if [ -d build-ci ]; then
    UFIO_INSTRUMENTED=1 UFIO_UNDER_VALGRIND=1 UFIO_NO_RSS_CHECK=1 UFIO_FAULT_CYCLES=1000 meson test -C build-ci --suite integration --no-suite enomem --no-suite bench --no-suite net --no-suite takeover --num-processes "$jobs" --print-errorlogs \
        --timeout-multiplier 10 \
        --wrapper "valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --trace-children=yes --trace-children-skip=*/ip,*/tc,*/certtool,*python3* --track-fds=no" \
        2>&1 | tee build-ci.valgrindlog
    tally build-ci.valgrindlog
fi

step "static analysis (cppcheck on lib/)"
if cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
        --suppress=missingIncludeSystem -I include -I lib lib/ 2>&1; then
    echo "cppcheck: clean"; passed=$((passed + 1))
else
    echo "cppcheck: findings above"; failed=$((failed + 1))
fi

if [ "${UFIO_SKIP_PKG:-0}" != 1 ]; then
    step "Debian packages: build, lintian, install into a clean root, build + run the examples there"
    if tests/pkg/run.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

fuzz_secs=${UFIO_FUZZ_SECONDS:-20}
if [ "$fuzz_secs" != 0 ] && command -v clang >/dev/null; then
    step "fuzzing: every target for ${fuzz_secs} s"
    if tests/fuzz/run-fuzzers.sh "$fuzz_secs"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

if [ "${UFIO_SKIP_E2E:-0}" != 1 ] && [ -x tests/e2e/run.sh ]; then
    step "end-to-end: QEMU vfio-user-pci + Linux guest"
    if tests/e2e/run.sh --build build-ci; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    step "end-to-end: ufio-virtio-blk under the guest's virtio_pci + virtio_blk"
    if tests/e2e/run.sh --build build-ci --virtio-blk; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    step "end-to-end: ufio-vfio-pci in the guest in front of two edu devices (vfio-pci, plugin migration)"
    if tests/e2e/run.sh --build build-ci --vfio-pci; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    step "end-to-end: 20 live handovers of ufio-virtio-blk (--takeover) under the guest's O_DIRECT write-and-verify"
    if tests/e2e/run.sh --build build-ci --workload 20 --window-cmd "$PWD/tests/e2e/takeover-window.sh"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    step "end-to-end: handover faults under the guest's write-and-verify: the new process killed at each step, the old serves on"
    if tests/e2e/run.sh --build build-ci --workload 8 --window-cmd "$PWD/tests/e2e/takeover-fault-window.sh"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    step "end-to-end: 20 live handovers of ufio-sample under the guest's vfio-pci (BAR0, MSI-X, DMA, BAR2)"
    if tests/e2e/run.sh --build build-ci --workload 20 --sample --window-cmd "$PWD/tests/e2e/takeover-window.sh"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
