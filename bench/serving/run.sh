#!/usr/bin/env bash
# File: bench/serving/run.sh — end-to-end serving throughput through gRPC (`segctl bench`)
# against the same model's in-process forward (bench/model's model_bench, folded +
# channels-last, the serving default) at the same batch size, in one run; then latency
# at 80% of the measured peak. Loopback only. With several builds (LABEL=BUILD_DIR, e.g.
# before and after a change), each build's server is measured in turn in the same run, with
# the same client (segctl of the first build) and the same 80% rate (of the first build's
# peak), so the rows compare. LABEL=BUILD_DIR@FLAGS adds server flags to that row's server
# (e.g. libtorch=build@--tensor_allocator=libtorch).
# Usage: bench/serving/run.sh [BUILD_DIR] [SECONDS]
#        bench/serving/run.sh --seconds S LABEL=BUILD_DIR[@FLAGS] [LABEL=BUILD_DIR...]
set -euo pipefail
seconds=20
builds=()
if [ "${1:-}" = "--seconds" ]; then
  seconds=$2
  shift 2
  builds=("$@")
else
  builds=("this=${1:-build}")
  seconds=${2:-20}
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
first=$(spec=${builds[0]#*=}; cd "${spec%%@*}" && pwd)
segctl="$first/client/segctl/segctl"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
# 1. The model: a resnet18 L1 U-net (3 classes) as a PyTorch state dict, imported like a
#    user's file would be (Python only builds the weights here).
(cd "$root" && /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, 'tests/model')
import reference_unet as r
torch.manual_seed(0)
m = r.Unet('resnet18', skip_prune_level=1, in_channels=3, classes=3)
torch.save(m.state_dict(), '$work/w.pt')
")

# 2. In-process forward, same model family, batch 8 and 1.
inproc=$("$first/bench/model/model_bench" --encoder resnet18 --level 1 --threads 2 \
  --seconds 3 | awk -F, '$1 == "cpp" && $5 == "folded+cl" { print $4 "=" $6 }')
inproc8=$(echo "$inproc" | sed -n 's/^8=//p')
inproc1=$(echo "$inproc" | sed -n 's/^1=//p')

rows=()
rate=""
for spec in "${builds[@]}"; do
  label=${spec%%=*}
  dir=${spec#*=}
  extra=""
  [[ "$dir" == *@* ]] && extra=${dir#*@}
  build=$(cd "${dir%%@*}" && pwd)
  rm -rf "$work/var" "$work/ports.json"
  # 3. The server, with the same thread count.
  "$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
    --threads=2 --max_batch_size=8 --max_queue_delay_ms=5 --log_level=warning $extra &
  server_pid=$!
  for _ in $(seq 200); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
  grpc=$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")
  metrics=$(sed -n 's/.*"metrics_port":\([0-9]*\).*/\1/p' "$work/ports.json")
  "$segctl" --server "127.0.0.1:$grpc" models import --file "$work/w.pt" --name bench-l1 \
    --encoder resnet18 --prune-level 1 --classes 3 --load >/dev/null

  echo "== $label ($build)"
  peak_out=$("$segctl" --server "127.0.0.1:$grpc" --timeout 120 bench --model bench-l1 \
    --concurrency 16 --duration "$seconds" --warmup 3 --size 256 --metrics "127.0.0.1:$metrics")
  echo "$peak_out"
  peak=$(echo "$peak_out" | sed -n 's/^images\/s \([0-9.]*\).*/\1/p')
  [ -n "$rate" ] || rate=$(awk -v p="$peak" 'BEGIN { printf "%.2f", 0.8 * p }')
  at80_out=$("$segctl" --server "127.0.0.1:$grpc" --timeout 120 bench --model bench-l1 \
    --concurrency 16 --duration "$seconds" --warmup 3 --size 256 --rate "$rate")
  echo "$at80_out"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

  p99_peak=$(echo "$peak_out" | sed -n 's/.*p99 \([0-9.]*\).*/\1/p')
  p50_80=$(echo "$at80_out" | sed -n 's/.*p50 \([0-9.]*\).*/\1/p')
  p99_80=$(echo "$at80_out" | sed -n 's/.*p99 \([0-9.]*\).*/\1/p')
  batches=$(echo "$peak_out" | sed -n 's/^server batch sizes: *//p')
  ratio=$(awk -v a="$peak" -v b="$inproc8" 'BEGIN { printf "%.2f", a / b }')
  rows+=("| $label | $peak | $ratio | $p99_peak | $rate | $p50_80 / $p99_80 | $batches |")
done

echo
echo "in-process forward (images/s): batch 1 $inproc1, batch 8 $inproc8"
echo
echo "| build | gRPC peak, 16 clients (images/s) | peak / in-process batch 8 | p99 at peak (ms) | 80% rate (/s) | p50 / p99 at 80% (ms) | server batch sizes at peak |"
echo "|---|---:|---:|---:|---:|---|---|"
printf '%s\n' "${rows[@]}"
