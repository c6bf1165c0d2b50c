#!/usr/bin/env bash
# File: bench/serving/interference.sh — Segment latency while other work shares the server:
# alone, during back-to-back imports of a resnet18 U-net state dict (checkpoint write +
# fsync; a resnet34 one is over segctl's 64 MB import message), and
# during an ANALYSIS job over 2 x 500 images (segctl susceptibility). Runs every given
# segserve build one after the other in one invocation (e.g. before and after a change),
# each with a fresh data directory, the same model, the same fixed request rate and the
# same client (segctl from the first build). Loopback only; the load generator shares the
# machine's cores with the server. A build may carry extra segserve flags after a comma
# (e.g. cap8=build-rel,--max_background_batch_size=8) to compare settings of one binary.
# The analysis row also says how long the whole analysis took (it is waited for).
# Usage: bench/serving/interference.sh [--rate R] [--seconds S] LABEL=BUILD_DIR[,FLAGS]...
set -euo pipefail
rate=4
seconds=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--rate R] [--seconds S] LABEL=BUILD_DIR..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server_pid=""
bg_pid=""
cleanup() {
  [ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null && wait "$bg_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
first_build=${1#*=}
first_build=${first_build%%,*}
segctl="$(cd "$first_build" && pwd)/client/segctl/segctl"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
echo "load: segctl bench, 4 clients, fixed $rate requests/s, raw 256x256 RGB, ${seconds} s per phase"
# The served model (resnet18 L1, 3 classes) and the imported one (resnet18 L0), as
# PyTorch state dicts, imported like a user's files would be.
(cd "$root" && /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, 'tests/model')
import reference_unet as r
torch.manual_seed(0)
torch.save(r.Unet('resnet18', skip_prune_level=1, in_channels=3, classes=3).state_dict(), '$work/serve.pt')
torch.save(r.Unet('resnet18', skip_prune_level=0, in_channels=3, classes=3).state_dict(), '$work/big.pt')
")
echo "imported checkpoint: $(du -m "$work/big.pt" | cut -f1) MB"

bench() {  # prints "p50 p99 images/s errors"
  local out
  out=$("$segctl" --server "$addr" --timeout 120 bench --model served --concurrency 4 \
    --duration "$seconds" --warmup 2 --size 256 --rate "$rate")
  local p50 p99 ips errs
  p50=$(echo "$out" | sed -n 's/.*p50 \([0-9.]*\).*/\1/p')
  p99=$(echo "$out" | sed -n 's/.*p99 \([0-9.]*\).*/\1/p')
  ips=$(echo "$out" | sed -n 's/^images\/s \([0-9.]*\).*/\1/p')
  errs=$(echo "$out" | awk '/^errors/ { n += $3 } END { print n + 0 }')
  echo "$p50 $p99 $ips $errs"
}

rows=()
for spec in "$@"; do
  label=${spec%%=*}
  rest=${spec#*=}
  build=$(cd "${rest%%,*}" && pwd)
  extra=""
  [[ "$rest" == *,* ]] && extra=${rest#*,}
  rm -rf "$work/var" "$work/ports.json"
  "$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
    --threads=2 --max_batch_size=8 --max_queue_delay_ms=5 --log_level=warning $extra &
  server_pid=$!
  for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
  addr="127.0.0.1:$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")"
  "$segctl" --server "$addr" models import --file "$work/serve.pt" --name served \
    --encoder resnet18 --prune-level 1 --classes 3 --load >/dev/null
  "$segctl" --server "$addr" --timeout 600 datasets generate --name synth --n 720 --size 256 \
    --wait >/dev/null

  read -r a50 a99 aips aerr < <(bench)
  rows+=("| $label | alone | $a50 | $a99 | $aips | $aerr |")

  # Back-to-back imports for the whole phase (each a new version: write + fsync).
  ( while true; do
      "$segctl" --server "$addr" --timeout 300 models import --file "$work/big.pt" --name big \
        --encoder resnet18 --prune-level 0 --classes 3 >/dev/null || true
    done ) &
  bg_pid=$!
  read -r i50 i99 iips ierr < <(bench)
  kill "$bg_pid" 2>/dev/null; wait "$bg_pid" 2>/dev/null || true; bg_pid=""
  imports=$("$segctl" --server "$addr" models list 2>/dev/null | awk '$1 == "big" || $1 ~ /^big:/' | wc -l)
  rows+=("| $label | during imports ($imports versions written) | $i50 | $i99 | $iips | $ierr |")

  # An analysis of 500 source + 500 shifted target images, as a job; waited for, so its
  # duration shows what the Segment latency costs it.
  analysis_start=$(date +%s.%N)
  "$segctl" --server "$addr" --timeout 600 susceptibility --model served --source synth:train \
    --target synth:train:brightness:3 --limit 500 >/dev/null 2>&1 &
  bg_pid=$!
  sleep 2
  read -r s50 s99 sips serr < <(bench)
  wait "$bg_pid" || echo "analysis failed for $label" >&2
  bg_pid=""
  analysis=$(awk -v a="$analysis_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  rows+=("| $label | during a 2 x 500-image analysis (took $analysis s) | $s50 | $s99 | $sips | $serr |")

  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
done

echo
echo "| build | phase | p50 (ms) | p99 (ms) | images/s | errors |"
echo "|---|---|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
