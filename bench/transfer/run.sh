#!/usr/bin/env bash
# File: bench/transfer/run.sh — weights in and out (issue 15): `segctl models import`
# (Models.ImportStream) and `segctl models export` (Models.Export) of an smp resnet34 L0
# U-net state dict (~98 MB, random weights from tests/model/reference_unet.py), over
# loopback, against the same work done in-process by Debian's python3-torch (torch.load,
# load_state_dict(strict=True), torch.save of the same file). Reports MB/s per run and the
# server's peak resident memory (VmHWM) above its resident memory before the first import,
# as a multiple of the file size. Usage: bench/transfer/run.sh [BUILD_DIR] [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build-rel}" && pwd)
runs=${2:-3}
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
segctl="$build/client/segctl/segctl"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
echo "build: $build ($(git -C "$root" rev-parse --short HEAD))"
/usr/bin/python3 "$root/tests/integration/model_transfer_test.py" make "$work"
file="$work/r34.pt"
bytes=$(stat -c %s "$file")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "file: smp Unet(resnet34) L0 state dict, $bytes bytes ($mb MB)"

"$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
  --log_level=warning &
server_pid=$!
for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
addr="127.0.0.1:$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")"
rss_kb() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$server_pid/status"; }
base_kb=$(rss_kb VmRSS)

seconds() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }
echo
echo "| step | run | seconds | MB/s |"
echo "|---|---|---|---|"
for i in $(seq "$runs"); do
  t=$(seconds "$segctl" --server "$addr" --timeout 600 models import --file "$file" \
        --name r34 --encoder resnet34 --prune-level 0 --classes 2)
  echo "| segctl models import | $i | $t | $(awk -v m="$mb" -v t="$t" 'BEGIN { printf "%.1f", m / t }') |"
done
import_peak_kb=$(rss_kb VmHWM)
for i in $(seq "$runs"); do
  t=$(seconds "$segctl" --server "$addr" --timeout 600 models export "r34:$i" --out "$work/out$i.pt")
  echo "| segctl models export | $i | $t | $(awk -v m="$mb" -v t="$t" 'BEGIN { printf "%.1f", m / t }') |"
  cmp -s "$file" "$work/out$i.pt" && same="byte-identical" || same="differs"
done
peak_kb=$(rss_kb VmHWM)
for i in $(seq "$runs"); do
  t=$(seconds /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, '$root/tests/model')
import reference_unet
m = reference_unet.Unet('resnet34', 0, 3, 2)
m.load_state_dict(torch.load('$file'), strict=True)
torch.save(m.state_dict(), '$work/py.pt')")
  echo "| python3 -c: import torch, torch.load + load_state_dict(strict=True) + torch.save (process start included) | $i | $t | $(awk -v m="$mb" -v t="$t" 'BEGIN { printf "%.1f", m / t }') |"
done
echo
awk -v b="$base_kb" -v i="$import_peak_kb" -v p="$peak_kb" -v f="$bytes" 'BEGIN {
  printf "server resident memory: %.0f MB before; peak %.0f MB after the imports (+%.0f MB = %.2fx the file), %.0f MB after the exports (+%.0f MB = %.2fx)\n",
    b / 1024, i / 1024, (i - b) / 1024, (i - b) * 1024 / f, p / 1024, (p - b) / 1024, (p - b) * 1024 / f }'
echo "last export vs the imported file: $same (torch.save from Python vs LibTorch's pickle_save: same tensors, different zip layout expected)"
