#!/usr/bin/env bash
# File: scripts/gpu-check.sh — the GPU check of issue 18, as one prepared command for the GPU
# machine (docs/PERFORMANCE.md "GPU" says how its figures were made):
#   1. configure the core-only build (server/common, server/model, bench/gpu) against the
#      machine's PyTorch wheel (Torch_DIR = torch/share/cmake/Torch, a CUDA LibTorch 2.x) and
#      the Abseil/JSON/OpenSSL prefix that scripts/gpu-prefix.sh unpacked into .gpu/;
#   2. build gpu_check and run its checks on cuda:0 (forward vs CPU for resnet18/34 L0/L1,
#      ServableModel on the device, training steps, bf16 autocast) and its figures;
#   3. run the same model in the machine's PyTorch (bench/gpu/python_reference.py), same run;
#   4. join both into $OUT/gpu_report.md (bench/gpu/report.py).
# On the CPU machine: `scripts/gpu-check.sh --rehearse` does the same against Debian's
# LibTorch 1.13 on the CPU with small sizes (checks the script, not the GPU).
#
# Device tool: run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=560)
# after `bash scripts/gpu-prefix.sh` here. Exit status: 0 when every check passed.
set -uo pipefail
cd "$(dirname "$0")/.."

rehearse=0
[[ "${1:-}" == "--rehearse" ]] && rehearse=1
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
log() { echo "gpu-check: $*" | tee -a "$OUT/steps.log"; }
start=$(date +%s)

prefix="$PWD/.gpu/prefix/usr"
if [[ ! -d "$prefix" ]]; then
  echo "gpu-check: $prefix missing: run scripts/gpu-prefix.sh first (and carry .gpu)" >&2
  exit 2
fi
if (( rehearse )); then
  PY=/usr/bin/python3
  torch_dir=/usr/lib/x86_64-linux-gnu/cmake/Torch
  device=cpu
  check_args=(--device cpu --quick --seconds 0.5)
  py_args=(--device cpu --quick --seconds 0.5)
  build_dir=build-gpu-rehearsal
else
  PY="${PYTHON:-python3}"
  torch_dir="$($PY -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')"
  device=cuda:0
  check_args=(--device cuda:0 --seconds 2)
  py_args=(--device cuda:0 --seconds 2)
  build_dir=build-gpu
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
  export CUDAToolkit_ROOT="${CUDAToolkit_ROOT:-/usr/local/cuda}"
  export PATH="$CUDAToolkit_ROOT/bin:$PATH"
fi
log "python: $($PY -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
log "Torch_DIR=$torch_dir device=$device"

# -Werror off: a deprecation warning from a newer LibTorch must not cost the one GPU run
# (scripts/torch-compile-check.py shows those warnings on the CPU machine).
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSEGSERVE_CORE_ONLY=ON \
  -DSEGSERVE_WERROR=OFF -DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER_LAUNCHER= >"$OUT/configure.log" 2>&1 \
  || { log "configure failed"; tail -40 "$OUT/configure.log"; exit 1; }
grep -E "LibTorch|ccache" "$OUT/configure.log" | tee -a "$OUT/steps.log"
cmake --build "$build_dir" --target gpu_check --parallel "$(nproc)" >"$OUT/build.log" 2>&1 \
  || { log "build failed"; grep -E "error|Error" "$OUT/build.log" | head -40; exit 1; }
log "built in $(( $(date +%s) - start )) s"

export LD_LIBRARY_PATH="$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$build_dir/bench/gpu/gpu_check" "${check_args[@]}" 2>&1 | tee "$OUT/cpp.csv"
cpp_status=${PIPESTATUS[0]}
log "gpu_check exit $cpp_status after $(( $(date +%s) - start )) s"
PYTHONUNBUFFERED=1 $PY bench/gpu/python_reference.py "${py_args[@]}" 2>&1 | tee "$OUT/py.csv"
log "python reference exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
$PY bench/gpu/report.py "$OUT/cpp.csv" "$OUT/py.csv" | tee "$OUT/gpu_report.md"
exit "$cpp_status"
