#!/bin/sh
# Training throughput, C++ (server/training's own step: loss, Adam, autocast) vs Debian's
# python3-torch (the same model, loss and optimiser), resnet18 L1 by default, in one run;
# NCHW and channels-last, fp32 and bf16 autocast; all alternate per layout so they see the
# same background load. Four processes per layout:
#   python       Python as it runs by default;
#   python-heap  Python with glibc told (GLIBC_TUNABLES) to keep its heap as segserve does;
#   cpp-default  segserve's step on LibTorch's own allocator (segserve before tensor_memory.h);
#   cpp          segserve's step on its retained-heap tensor allocator (what the server runs).
# Prints a markdown table; "vs Python best fp32" divides by the faster of Python's two fp32
# layouts (issue 21's yardstick), "vs Python heap" by Python given the same heap settings.
# Usage:
#   bench/training/run.sh BUILD_DIR [--threads 2] [--steps 5] [--batch 8] [--size 256]
#                         [--precision fp32|bf16|both]
set -eu
build=${1:?usage: run.sh BUILD_DIR [args]}
shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
precision=both
# The thresholds of server/model/tensor_memory.cc.
heap=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824
for layout in nchw cl; do
  /usr/bin/python3 "$here/python_train.py" --layout $layout --precision $precision "$@" >>"$out"
  "$build/bench/training/training_bench" --allocator default --layout $layout \
    --precision $precision "$@" >>"$out"
  GLIBC_TUNABLES=$heap /usr/bin/python3 "$here/python_train.py" --layout $layout \
    --precision $precision "$@" | sed 's/^python,/python-heap,/' >>"$out"
  "$build/bench/training/training_bench" --layout $layout --precision $precision "$@" >>"$out"
done
awk -F, '
  { v[$1 "," $5 "," $6] = $7; enc = $2; lvl = $3; b = $4 }
  END {
    best = v["python,nchw,fp32"]
    if (v["python,cl,fp32"] > best) best = v["python,cl,fp32"]
    print "| model | batch | layout | precision | Python | Python, heap kept | C++ before | C++ | C++ / Python | C++ vs Python best fp32 | C++ / Python heap kept |"
    print "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"
    split("nchw cl", ls, " ")
    split("fp32 bf16", ps, " ")
    for (i = 1; i <= 2; i++) for (j = 1; j <= 2; j++) {
      l = ls[i]; p = ps[j]; k = l "," p
      if (!(("cpp," k) in v)) continue
      printf "| %s L%s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2fx | %.2fx | %.2fx |\n", enc,
        lvl, b, (l == "cl" ? "channels-last" : "NCHW"), p, v["python," k], v["python-heap," k],
        v["cpp-default," k], v["cpp," k], v["cpp," k] / v["python," k], v["cpp," k] / best,
        v["cpp," k] / v["python-heap," k]
    }
  }' "$out"
