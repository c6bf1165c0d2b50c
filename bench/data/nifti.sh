#!/usr/bin/env bash
# File: bench/data/nifti.sh — NIfTI data-set throughput: (1) slices/s through the training
# loader (data_loader_bench: batches of 8, flips and rotations, 2 workers) over a synthetic
# MR set of .nii.gz volumes, with the volume cache (default 512 MiB) and without it (every
# slice inflates and normalises its whole volume); (2) `segctl segment --nifti` volume
# throughput (slices/s, every slice through SegmentStream and the dynamic batcher) against a
# fresh segserve serving a 1-channel model trained for one step on that set. Loopback only;
# figures depend on the machine's load (run it on a quiet one).
# Usage: bench/data/nifti.sh [BUILD_DIR] [VOLUMES] [SIZE] [SLICES] [EPOCHS]
#   defaults: build 12 volumes of 256x256x24, 2 loader epochs
set -euo pipefail
build=${1:-build}
volumes=${2:-12}
size=${3:-256}
slices=${4:-24}
epochs=${5:-2}
segctl="$build/client/segctl/segctl"
loader="$build/bench/data/data_loader_bench"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
mkdir -p "$work/var/datasets"
set_dir="$work/var/datasets/mr"
"$segctl" synth --nifti --out "$set_dir" --n "$volumes" --size "$size" --slices "$slices" \
  --seed 1
echo "data set: $(du -sb "$set_dir" | cut -f1) bytes of .nii.gz"

echo "== loader, volume cache on (default budget)"
"$loader" --dataset "$set_dir" --epochs "$epochs" --workers 2 --batch 8
echo "== loader, volume cache off"
"$loader" --dataset "$set_dir" --epochs "$epochs" --workers 2 --batch 8 --cache_mb 0

echo "== segctl segment --nifti"
"$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
  2> "$work/server.log" &
pid=$!
for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
port=$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")
server=(--server "127.0.0.1:$port")
"$segctl" "${server[@]}" health --wait 60 >/dev/null
# The weights do not matter for throughput: one training step makes a 1-channel model.
"$segctl" "${server[@]}" submit-train --dataset mr --encoder resnet18 --prune-level 1 \
  --epochs 1 --batch-size 2 --max-steps-per-epoch 1 --crop-size 64 --model-name mr --wait \
  >/dev/null
volume="$set_dir/imagesTr/mr_000_0000.nii.gz"
"$segctl" "${server[@]}" segment --model mr --nifti "$volume" --out "$work/warm.nii.gz" \
  >/dev/null  # warm-up: model load, first batches
start=$(date +%s.%N)
for i in 1 2 3; do
  "$segctl" "${server[@]}" segment --model mr --nifti "$volume" --out "$work/mask.nii.gz" \
    >/dev/null
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$slices" -v size="$size" 'BEGIN {
  printf "segment --nifti: 3 volumes of %d slices (%dx%d) in %.2f s = %.1f slices/s " \
         "(reading, normalising, writing included)\n", n, size, size, e - s, 3 * n / (e - s) }'
