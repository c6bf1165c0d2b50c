#!/bin/sh
# Training throughput, C++ (server/training's loss and Adam on segserve's U-net) vs Debian's
# python3-torch (the same model, loss and optimiser), 256x256, batch 8, resnet18 L1, in one
# run; layouts alternate between the two so both see the same background load. Prints a
# markdown table. Usage:
#   bench/training/run.sh BUILD_DIR [--threads 2] [--steps 5] [--batch 8] [--size 256]
set -eu
build=${1:?usage: run.sh BUILD_DIR [args]}
shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for layout in nchw cl; do
  /usr/bin/python3 "$here/python_train.py" --layout $layout "$@" >>"$out"
  "$build/bench/training/training_bench" --layout $layout "$@" >>"$out"
done
awk -F, '
  { v[$1 "," $5] = $6; enc = $2; lvl = $3; b = $4 }
  END {
    print "| model | batch | layout | Python images/s | C++ images/s | C++ / Python |"
    print "|---|---:|---|---:|---:|---:|"
    split("nchw cl", ls, " ")
    for (i = 1; i <= 2; i++) {
      l = ls[i]
      printf "| %s L%s | %s | %s | %.2f | %.2f | %.2fx |\n", enc, lvl, b,
        (l == "cl" ? "channels-last" : "NCHW"), v["python," l], v["cpp," l],
        v["cpp," l] / v["python," l]
    }
  }' "$out"
