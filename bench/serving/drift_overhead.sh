#!/usr/bin/env bash
# File: bench/serving/drift_overhead.sh — cost of live domain-shift monitoring in the
# serving path: the same model (one with training reference statistics, e.g. the
# quick-start's l1-pruned) served with --drift_window=256 and with monitoring off
# (--drift_window=0), alternating, `segctl bench` against each. Loopback only.
# Usage: bench/serving/drift_overhead.sh DATA_DIR MODEL [BUILD_DIR] [SECONDS] [SIZE]
#   DATA_DIR is copied first, so the original is untouched.
set -euo pipefail
src=${1:?usage: drift_overhead.sh DATA_DIR MODEL [BUILD_DIR] [SECONDS] [SIZE]}
model=${2:?model name or alias}
build=${3:-build}
seconds=${4:-15}
size=${5:-128}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src" "$work/var"
rm -f "$work/var/ports.json"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
for round in 1 2; do
  for window in 256 0; do
    "$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
      --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled --threads=2 \
      --drift_window=$window --log_level=warning &
    pid=$!
    for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
    port=$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")
    "$build/client/segctl/segctl" --server "127.0.0.1:$port" health --wait 60 >/dev/null
    rate=$("$build/client/segctl/segctl" --server "127.0.0.1:$port" --timeout 120 bench \
      --model "$model" --concurrency 8 --duration "$seconds" --warmup 3 --size "$size" |
      sed -n 's/^images\/s \([0-9.]*\).*/\1/p')
    echo "round $round drift_window=$window images/s $rate"
    kill $pid; wait $pid 2>/dev/null || true
    pid=""
    rm -f "$work/ports.json"
  done
done
