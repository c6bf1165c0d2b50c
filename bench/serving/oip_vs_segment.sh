#!/usr/bin/env bash
# File: bench/serving/oip_vs_segment.sh — the Open Inference Protocol's ModelInfer against
# segserve.v1 Segment (issue 16): the same server, model (resnet18 L1, 3 classes, imported
# from a PyTorch state dict), image (random 256x256 RGB, UINT8, raw), mask output,
# concurrency and batching, in alternating rounds (Segment, ModelInfer, Segment, ...) so
# that drift of the machine hits both alike. Closed loop: each client sends its next call
# when the last is answered. Loopback; the load generator shares the machine's cores.
# Usage: bench/serving/oip_vs_segment.sh [BUILD_DIR] [ROUNDS] [SECONDS] [CONCURRENCY]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build-rel}" && pwd)
rounds=${2:-3}
seconds=${3:-15}
concurrency=${4:-8}
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
segctl="$build/client/segctl/segctl"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
echo "build: $build ($(git -C "$root" rev-parse --short HEAD)); $rounds rounds x $seconds s per API, concurrency $concurrency, raw 256x256 RGB"
(cd "$root" && /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, 'tests/model')
import reference_unet as r
torch.manual_seed(0)
torch.save(r.Unet('resnet18', skip_prune_level=1, in_channels=3, classes=3).state_dict(), '$work/serve.pt')
")
"$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
  --max_batch_size=8 --max_queue_delay_ms=2 --log_level=warning &
server_pid=$!
for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
addr="127.0.0.1:$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")"
"$segctl" --server "$addr" models import --file "$work/serve.pt" --name served \
  --encoder resnet18 --prune-level 1 --classes 3 --load >/dev/null 2>&1

echo
echo "| round | API | images/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
declare -A ips_all
for round in $(seq "$rounds"); do
  for api in segment oip; do
    out=$("$segctl" --server "$addr" --timeout 120 bench --api "$api" --model served \
      --concurrency "$concurrency" --duration "$seconds" --warmup 3 --size 256 || true)
    ips=$(echo "$out" | sed -n 's/^images\/s \([0-9.]*\).*/\1/p')
    p50=$(echo "$out" | sed -n 's/.*p50 \([0-9.]*\).*/\1/p')
    p99=$(echo "$out" | sed -n 's/.*p99 \([0-9.]*\).*/\1/p')
    errs=$(echo "$out" | awk '/^errors/ { n += $3 } END { print n + 0 }')
    echo "| $round | $api | $ips | $p50 | $p99 | $errs |"
    ips_all[$api]+="$ips "
  done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
seg=$(echo "${ips_all[segment]}" | median)
oip=$(echo "${ips_all[oip]}" | median)
echo
awk -v s="$seg" -v o="$oip" 'BEGIN { printf "median images/s: Segment %.2f, ModelInfer %.2f; ModelInfer / Segment = %.3f\n", s, o, o / s }'
