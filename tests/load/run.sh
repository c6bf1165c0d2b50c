#!/usr/bin/env bash
# File: tests/load/run.sh — the load check of issue 9 (docs/RELIABILITY.md, Load): builds
# segserve_load (and segserve) and runs 64 clients for 60 s against a segserve it starts
# on loopback, then a deliberate overload and a recovery phase. Exit 0 = PASS.
# Usage: tests/load/run.sh [segserve_load flags...]
#   CLIENTS=16 DURATION=8 WARMUP=3 tests/load/run.sh         # shorter
#   NO_BUILD=1 tests/load/run.sh --server_flags=--threads=2  # extra server flags
#   tests/load/run.sh --target=127.0.0.1:50051 --server_pid=1234 --model=NAME
#       (a running server: --token for auth; no overload phase unless --overload_s)
# The JSON result goes to $OUT (default build/load_result.json) and stdout (LOAD_RESULT).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR="${BUILD_DIR:-build}"
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  BUILD_DIR="$BUILD_DIR" bash scripts/build.sh segserve_load segserve
fi

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ);" \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
rc=0
"$BUILD_DIR/tests/load/segserve_load" \
  --clients="${CLIENTS:-64}" --duration_s="${DURATION:-60}" --warmup_s="${WARMUP:-10}" \
  --json_out="${OUT:-$BUILD_DIR/load_result.json}" "$@" || rc=$?
# Other work on the machine changes the latencies: say how busy it was.
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$rc"
