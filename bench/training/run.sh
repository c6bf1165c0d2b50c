#!/bin/sh
# Training throughput, C++ (server/training's own step: loss, Adam, autocast) vs Debian's
# python3-torch (the same model, loss and optimiser), resnet18 L1 by default, in one run;
# NCHW and channels-last, fp32 and bf16 autocast; the two alternate per layout so both see
# the same background load. Prints a markdown table; "vs Python best fp32" divides by the
# faster of Python's two fp32 layouts (issue 21's yardstick). Usage:
#   bench/training/run.sh BUILD_DIR [--threads 2] [--steps 5] [--batch 8] [--size 256]
#                         [--precision fp32|bf16|both]
set -eu
build=${1:?usage: run.sh BUILD_DIR [args]}
shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
precision=both
for layout in nchw cl; do
  /usr/bin/python3 "$here/python_train.py" --layout $layout --precision $precision "$@" >>"$out"
  "$build/bench/training/training_bench" --layout $layout --precision $precision "$@" >>"$out"
done
awk -F, '
  { v[$1 "," $5 "," $6] = $7; enc = $2; lvl = $3; b = $4 }
  END {
    best = v["python,nchw,fp32"]
    if (v["python,cl,fp32"] > best) best = v["python,cl,fp32"]
    print "| model | batch | layout | precision | Python images/s | C++ images/s | C++ / Python | C++ / Python best fp32 |"
    print "|---|---:|---|---|---:|---:|---:|---:|"
    split("nchw cl", ls, " ")
    split("fp32 bf16", ps, " ")
    for (i = 1; i <= 2; i++) for (j = 1; j <= 2; j++) {
      l = ls[i]; p = ps[j]
      if (!(("cpp," l "," p) in v)) continue
      printf "| %s L%s | %s | %s | %s | %.2f | %.2f | %.2fx | %.2fx |\n", enc, lvl, b,
        (l == "cl" ? "channels-last" : "NCHW"), p, v["python," l "," p], v["cpp," l "," p],
        v["cpp," l "," p] / v["python," l "," p], v["cpp," l "," p] / best
    }
  }' "$out"
