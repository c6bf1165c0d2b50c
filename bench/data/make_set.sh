#!/usr/bin/env bash
# File: bench/data/make_set.sh — a native data set of about MB megabytes for the upload and
# data-set file benchmarks: 8 synthetic 1024x1024 smears (`segctl synth`), each copied
# under several ids so that generating it stays quick. Prints the image count and bytes.
# Usage: bench/data/make_set.sh SEGCTL OUT_DIR MB
set -euo pipefail
segctl=$1
out=$2
mb=$3
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
"$segctl" synth --out "$base/set" --n 8 --size 1024 --seed 1 >/dev/null
base_bytes=$(du -cb "$base"/set/images/*.png "$base"/set/masks/*.png | tail -1 | cut -f1)
copies=$(( (mb * 1000000 + base_bytes - 1) / base_bytes ))
mkdir -p "$out/images" "$out/masks"
for c in $(seq -w 1 "$copies"); do
  for f in "$base"/set/images/*.png; do
    id=$(basename "$f" .png)
    cp "$f" "$out/images/c${c}_$id.png"
    cp "$base/set/masks/$id.png" "$out/masks/c${c}_$id.png"
  done
done
cat > "$out/dataset.json" <<JSON
{"name": "bench", "channels": 3,
 "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "red_blood_cell"},
             {"id": 2, "name": "parasite"}],
 "splits": {"ratios": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 1}}
JSON
total=$(du -cb "$out"/dataset.json "$out"/images/* "$out"/masks/* | tail -1 | cut -f1)
echo "$(ls "$out/images" | wc -l) $total"
