#!/bin/sh
# Runs the C++ model benchmark and the Python eager baseline in one go and prints a markdown
# table (images/s, 256x256, fastest iteration). Python and C++ alternate per model so that
# both see the same background load. Usage:
#   bench/model/run.sh BUILD_DIR [--threads 2] [--seconds 1.5] [--quick]
set -eu
build=${1:?usage: run.sh BUILD_DIR [args]}
shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for encoder in resnet18 resnet34; do
  for level in 0 1; do
    /usr/bin/python3 "$here/python_eager.py" --encoder $encoder --level $level "$@" >>"$out"
    "$build/bench/model/model_bench" --encoder $encoder --level $level "$@" >>"$out"
  done
done
awk -F, '
  $1 == "python" { k = $2 "," $3 "," $4; py[k] = $6; order[++n] = k }
  $1 == "cpp"    { cpp[$2 "," $3 "," $4 "," $5] = $6 }
  $1 == "agreement" { agr_order[++m] = $2 "," $3; agr[$2 "," $3] = $4; iou[$2 "," $3] = $5 }
  END {
    print "| encoder | level | batch | Python eager | C++ eager | C++ folded | C++ folded+CL | C++ folded+CL+bf16 | best fp32 / Python |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, ",")
      best = cpp[k ",folded"] > cpp[k ",folded+cl"] ? cpp[k ",folded"] : cpp[k ",folded+cl"]
      printf "| %s | L%s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2fx |\n", p[1], p[2], p[3],
        py[k], cpp[k ",eager"], cpp[k ",folded"], cpp[k ",folded+cl"], cpp[k ",folded+cl+bf16"],
        best / py[k]
    }
    print ""
    print "| encoder | level | bf16 vs fp32 pixel agreement | bf16 vs fp32 mean IoU |"
    print "|---|---|---:|---:|"
    for (i = 1; i <= m; i++) {
      k = agr_order[i]; split(k, p, ",")
      printf "| %s | L%s | %.4f | %.4f |\n", p[1], p[2], agr[k], iou[k]
    }
  }' "$out"
