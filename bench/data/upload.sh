#!/usr/bin/env bash
# File: bench/data/upload.sh — Datasets.Upload throughput over loopback: a native data set
# of about MB megabytes (synthetic 1024x1024 smears, each base image copied under several
# ids so that generating it stays quick), uploaded with `segctl datasets upload` to a fresh
# segserve; prints the end-to-end rate (first byte sent to the published set: transfer,
# staging writes, decoding every image and mask, syncfs, rename), the same upload's
# idempotent retry, and the server's peak resident memory (VmHWM). Loopback only.
# Usage: bench/data/upload.sh [BUILD_DIR] [MB]
set -euo pipefail
build=${1:-build}
mb=${2:-300}
segctl="$build/client/segctl/segctl"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
read -r images total < <(bash "$(dirname "$0")/make_set.sh" "$segctl" "$work/set" "$mb")
echo "data set: $images images (1024x1024 RGB PNG) + masks, $total bytes"
mkdir -p "$work/var"
"$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
  --max_dataset_bytes=$(( total + 1000000 )) 2> "$work/server.log" &
pid=$!
for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
port=$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")
"$segctl" --server "127.0.0.1:$port" health --wait 60 >/dev/null
rss_before=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pid/status)
sync
start=$(date +%s.%N)
"$segctl" --server "127.0.0.1:$port" datasets upload "$work/set" --name bench --quiet
end=$(date +%s.%N)
retry_start=$(date +%s.%N)
"$segctl" --server "127.0.0.1:$port" datasets upload "$work/set" --name bench --quiet >/dev/null
retry_end=$(date +%s.%N)
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pid/status)
awk -v t="$total" -v s="$start" -v e="$end" -v rs="$retry_start" -v re="$retry_end" \
    -v h="$hwm" -v r="$rss_before" 'BEGIN {
  printf "upload: %.1f MB in %.2f s = %.1f MB/s end to end\n", t / 1e6, e - s, t / 1e6 / (e - s);
  printf "idempotent retry (same files): %.2f s\n", re - rs;
  printf "server memory: RSS %.0f MB before, peak (VmHWM) %.0f MB\n", r / 1024, h / 1024 }'
sed -n 's/.*upload: published data set bench .*: /server: /p' "$work/server.log"
