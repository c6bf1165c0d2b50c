#!/bin/bash
# File: bench/training/quickstart.sh — the README's quick-start training (resnet18 L0 on
# plasmodium-synth: 240 images of 128x128, batch 8), 3 epochs in fp32 and in bf16, on one
# Release segserve per tensor allocator (--tensor_allocator=libtorch, then retained), one
# job at a time. Prints each epoch's cumulative training, validation and checkpoint seconds
# from the server's epoch log lines, and the server's peak and current resident size after
# the two trainings (docs/PERFORMANCE.md, "The tensor allocator").
# Usage: bench/training/quickstart.sh BUILD_DIR [PORT]   (PORT: gRPC on loopback, 50071;
#        metrics on PORT+100)
set -u
build=${1:?usage: quickstart.sh BUILD_DIR [PORT]}
port=${2:-50071}
data=$(mktemp -d)
logs=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$data" "$logs"' EXIT
ctl="$build/client/segctl/segctl --server 127.0.0.1:$port"
start() {
  "$build/server/app/segserve" --listen "127.0.0.1:$port" --metrics_listen "127.0.0.1:$((port + 100))" \
    --data_dir "$data" --auth_disabled --bootstrap=false --tensor_allocator="$1" \
    --training_slots 1 >"$logs/server-$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 60); do $ctl health >/dev/null 2>&1 && break; sleep 1; done
}
echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
start libtorch
$ctl datasets generate --name plasmodium-synth --n 240 --size 128 --seed 1 --wait >/dev/null
for alloc in libtorch retained; do
  if [ "$alloc" = retained ]; then
    kill "$pid"; wait "$pid"
    start retained
  fi
  for p in fp32 bf16; do
    $ctl submit-train --dataset plasmodium-synth --encoder resnet18 --prune-levels 0 --epochs 3 \
      --precision "$p" --wait >"$logs/$alloc-$p.out" 2>&1
    echo "== $alloc $p"
    grep -o "epoch [0-9]/3 .*train [0-9.]* s, val [0-9.]* s, checkpoints [0-9.]* s" \
      "$logs/server-$alloc.log" | tail -3 | sed 's/ loss.*(epoch [0-9]*);//'
  done
  grep "tensor memory" "$logs/server-$alloc.log"
  grep -E "VmHWM|VmRSS" "/proc/$pid/status"
done
kill "$pid"; wait "$pid"; pid=""
echo "end $(date -u +%FT%TZ)"
