#!/usr/bin/env bash
# File: scripts/fuzz.sh — builds the libFuzzer targets (clang, ASan+UBSan) and runs each for
# FUZZ_SECONDS on a temp copy of its committed corpus (tests/fuzz/corpus/<target>/), after
# replaying every saved regression input (tests/fuzz/regressions/<target>/) once.
# A crash, sanitizer report, timeout or OOM fails the script; the offending input is copied
# to tests/fuzz/regressions/<target>/ so that it becomes a regression test once committed.
#
# Env: FUZZ_SECONDS (default 30) per target; FUZZ_TARGETS (default: all) e.g. "image request";
#      FUZZ_BUILD_DIR (default build-fuzz); FUZZ_NO_BUILD=1 to skip the build;
#      FUZZ_KEEP_CORPUS=DIR to keep the grown corpora there (default: discarded);
#      JOBS (default nproc) for ninja.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
# FUZZ_RUNS=N: a fixed number of executions with a fixed seed instead of a time budget, so
# the pass is repeatable (CI uses it: a CI run must not fail on chance).
# The slow targets (file I/O or a U-net build per input) get a quarter / half of it, so
# each target takes ~30 s on 2 cores.
budget_for() {
  if [[ -z "${FUZZ_RUNS:-}" ]]; then
    echo "-max_total_time=$seconds"
    return
  fi
  local runs=$FUZZ_RUNS
  case "$1" in
    dataset) runs=$(( FUZZ_RUNS / 4 )) ;;
    checkpoint) runs=$(( FUZZ_RUNS / 2 )) ;;
  esac
  echo "-runs=$runs -seed=1"
}
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-"image raw_tensor request dataset checkpoint nifti"}

if [[ "${FUZZ_NO_BUILD:-0}" != 1 ]]; then
  start=$(date +%s)
  if [[ ! -f "$build_dir/build.ninja" ]]; then
    CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSEGSERVE_BUILD_TESTS=OFF -DSEGSERVE_BUILD_BENCH=OFF -DSEGSERVE_FUZZ=ON \
      -DSEGSERVE_WERROR=OFF
  fi
  ninja -C "$build_dir" -j "${JOBS:-$(nproc)}" $(for t in $targets; do echo "fuzz_$t"; done)
  echo "fuzz.sh: build finished in $(( $(date +%s) - start )) s"
fi

# Per-target libFuzzer options: the checkpoint target builds a U-net for every valid header,
# so it gets short inputs and a generous per-input timeout. -close_fd_mask=3 silences
# libpng/libjpeg/libtiff warnings on stdout/stderr (libFuzzer and sanitizer reports still
# print: they go to a duplicate of stderr).
options_for() {
  case "$1" in
    image) echo "-max_len=65536 -timeout=10 -close_fd_mask=3" ;;
    checkpoint) echo "-max_len=32768 -timeout=20" ;;
    dataset) echo "-max_len=4096 -timeout=10 -close_fd_mask=3" ;;
    request) echo "-max_len=8192 -timeout=10 -close_fd_mask=3" ;;
    nifti) echo "-max_len=16384 -timeout=10" ;;
    *) echo "-max_len=8192 -timeout=10" ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# One thread per fuzzer: torch (checkpoint target) would otherwise start one per core.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/segserve_fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for t in $targets; do
  bin="$build_dir/tests/fuzz/fuzz_$t"
  regress="tests/fuzz/regressions/$t"
  # 1. Regression inputs: each must run cleanly (libFuzzer runs files given as arguments once).
  if compgen -G "$regress/*" > /dev/null; then
    echo "fuzz.sh: $t: replaying $(ls "$regress" | wc -l) regression input(s)"
    if ! "$bin" $(options_for "$t") -rss_limit_mb=4096 "$regress"/* > "$work/$t.regress.log" 2>&1; then
      tail -40 "$work/$t.regress.log"
      failed+=("$t (regression)")
      continue
    fi
  fi
  # 2. Bounded fuzzing on a scratch copy of the corpus.
  corpus="$work/corpus_$t"
  mkdir -p "$corpus" "$work/artifacts_$t"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz.sh: $t: fuzzing with $(budget_for "$t") ($(ls "$corpus" | wc -l) seeds)"
  if "$bin" $(options_for "$t") $(budget_for "$t") -rss_limit_mb=4096 \
      -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts_$t/" \
      "$corpus" > "$work/$t.log" 2>&1; then
    grep -E '^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss' "$work/$t.log" \
      | tail -3
  else
    tail -60 "$work/$t.log"
    mkdir -p "$regress"
    for a in "$work/artifacts_$t"/*; do
      [[ -e "$a" ]] || continue
      cp "$a" "$regress/"
      echo "fuzz.sh: $t: saved $regress/$(basename "$a")"
    done
    failed+=("$t")
  fi
  if [[ -n "${FUZZ_KEEP_CORPUS:-}" ]]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t" && cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$t/"
  fi
done

if (( ${#failed[@]} )); then
  echo "fuzz.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: all targets clean ($targets; $(budget_for image) for the fast ones)"
