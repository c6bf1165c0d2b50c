#!/usr/bin/env bash
# File: scripts/test.sh — the one test command (README, CI): installs the Debian
# packages, builds everything once with clang + AddressSanitizer + UndefinedBehaviorSanitizer
# (+ libFuzzer coverage, so the fuzz targets come from the same build), runs every test
# with ctest, the deployment checks, a real Prometheus scrape, and a short repeatable fuzz
# pass over all six fuzz targets.
#
# One build instead of a release build plus a sanitizer build: on 2 cores the build is
# most of the time, and every test under ASan/UBSan checks more than the same test
# without. The release build (scripts/run.sh, the images) compiles the same sources with
# gcc; bench/ measures it. Any sanitizer report fails its test (halt_on_error).
#
# Env: BUILD_DIR (default build-test), SEGSERVE_FUZZ_CI=0 skips the fuzz pass,
#      SEGSERVE_CONTAINER_TEST=1 adds the container build (~10-25 min, docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
bash scripts/install-deps.sh test
export BUILD_DIR="${BUILD_DIR:-build-test}"
# -O1 with line tables: sanitizer reports with file:line, and a build ~1/3 cheaper than
# -O2 -g; the compute is LibTorch's (not instrumented), so the tests run at nearly full speed.
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DSEGSERVE_SANITIZE=ON -DSEGSERVE_FUZZ=ON
fi
bash scripts/build.sh
built=$(date +%s)
echo "test.sh: build (clang, ASan+UBSan) finished in $(( built - start )) s"

# Sanitizer reports fail the process that has them (a test, or the segserve a black-box
# test started). LeakSanitizer is on: leaks fail too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0}"
# Tests run two at a time on two cores: OpenMP threads that spin while waiting for work
# would burn the other test's core (measured: 80% of a training test's CPU in libgomp's
# spin loop under load), so they sleep instead.
export OMP_WAIT_POLICY=PASSIVE
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j "$(nproc)"
tested=$(date +%s)
echo "test.sh: ctest finished in $(( tested - built )) s"

# Deployment artefacts (kustomize render + schema, alert rules) and a real Prometheus
# scraping a real segserve: ~15 s. The container build runs only with
# SEGSERVE_CONTAINER_TEST=1.
bash scripts/check-deploy.sh
bash tests/deploy/prometheus_scrape_test.sh
bash scripts/container-test.sh
# Short, repeatable fuzz pass (fixed seed and execution count) over every target, after
# replaying every committed regression input. Time-boxed exploratory runs:
# scripts/fuzz.sh alone.
if [[ "${SEGSERVE_FUZZ_CI:-1}" == 1 ]]; then
  # fuzz.sh sets its own sanitizer options (allocator_may_return_null: libFuzzer's
  # -malloc_limit_mb, not ASan, judges huge allocations).
  env -u ASAN_OPTIONS -u UBSAN_OPTIONS FUZZ_NO_BUILD=1 FUZZ_BUILD_DIR="$BUILD_DIR" \
    FUZZ_RUNS="${FUZZ_RUNS:-20000}" bash scripts/fuzz.sh
fi
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"
