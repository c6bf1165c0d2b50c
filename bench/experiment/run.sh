#!/usr/bin/env bash
# File: bench/experiment/run.sh — what an experiment costs beyond its trainings, and how fast
# its shift grid is evaluated, in one run on one server (loopback, fresh data dir):
#   1. the `quick` preset on a generated set (resnet18 L0+L1 x 3 seeds x 8 epochs,
#      brightness/contrast/saturation at levels 1..5 = 15 shifted test sets per model,
#      per-model susceptibility at each kind's strongest level), followed to the end; its wall
#      time is the preset's time budget on this machine;
#   2. `segctl bench` on one of its models at the same image size: plain served inference.
# From the job store (sqlite3) and each child's result (finish_timing, finalize.h) it prints:
#   - the experiment's wall time, the sum of its children's wall times, the part of those that
#     is training (epochs with their validation and checkpoints) and the rest, phase by phase:
#     in-domain test evaluation, the shift grid, susceptibility, reference statistics, and what
#     is left (scheduling, data-set opening, registration, the aggregation and report);
#   - images/s of the shift grid (shift + forward + IoU through the serving executor), of the
#     unshifted test evaluation, and of plain inference; the ratios of the first two to it.
# Usage: bench/experiment/run.sh [BUILD_DIR] [IMAGES] [SIZE] [EPOCHS] [SEEDS]
#   defaults: build 240 128 (the quick-start set) and the preset's epochs and seeds; a
#   Release build (scripts/build.sh with BUILD_DIR). Small values check the script itself.
set -euo pipefail
build=${1:-build}
images=${2:-240}
size=${3:-128}
overrides=()
[ -n "${4:-}" ] && overrides+=(--epochs "$4")
[ -n "${5:-}" ] && overrides+=(--seeds "$5")
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
segctl() { "$build/client/segctl/segctl" --server "127.0.0.1:$port" --timeout 600 "$@"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
echo "build: $build; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
"$build/server/app/segserve" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$work/var" --port_file="$work/ports.json" --bootstrap=false --auth_disabled \
  --threads=2 --log_level=warning &
pid=$!
for _ in $(seq 300); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
port=$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$work/ports.json")
segctl health --wait 60 >/dev/null
segctl datasets generate --name bench --n "$images" --size "$size" --seed 1 --wait >/dev/null

echo "experiment: --preset quick ${overrides[*]} on $images generated images of ${size}x${size}"
segctl experiment run --dataset bench --preset quick "${overrides[@]}" --model-name bench \
  --wait >"$work/experiment.txt"
model=$(sqlite3 "$work/var/jobs.db" \
  "SELECT json_extract(result_json, '$.model_name') FROM jobs WHERE kind='TRAIN' AND state='SUCCEEDED' LIMIT 1")
plain=$(segctl bench --model "$model" --concurrency 8 --duration 15 --warmup 3 --size "$size" |
  sed -n 's/^images\/s \([0-9.]*\).*/\1/p')

sqlite3 -json "$work/var/jobs.db" \
  "SELECT id, kind, state, parent_id, created_ms, started_ms, finished_ms, spec_json, result_json FROM jobs
   WHERE kind IN ('EXPERIMENT', 'TRAIN')" >"$work/jobs.json"
python3 - "$work/jobs.json" "$plain" <<'EOF'
import json, sys
jobs = json.load(open(sys.argv[1]))
plain = float(sys.argv[2])
exp = next(j for j in jobs if j["kind"] == "EXPERIMENT")
kids = [j for j in jobs if j["parent_id"] == exp["id"]]
assert kids and all(k["state"] == "SUCCEEDED" for k in kids), [k["state"] for k in kids]
spec = json.loads(exp["spec_json"])
print(f"spec: encoders {spec['encoders']}, levels {spec['prune_levels']}, seeds {spec['seeds']}, "
      f"epochs {spec['train']['epochs']}, shifts {spec['shifts']} x {spec['shift_levels']}")
wall = (exp["finished_ms"] - exp["created_ms"]) / 1e3
kid_wall = sum(k["finished_ms"] - k["started_ms"] for k in kids) / 1e3
phase = {p: 0.0 for p in ("test_seconds", "cross_domain_seconds", "susceptibility_seconds",
                          "reference_seconds", "test_images", "cross_domain_images")}
for k in kids:
    t = json.loads(k["result_json"])["finish_timing"]
    for p in phase:
        phase[p] += t[p]
finish = sum(phase[p] for p in ("test_seconds", "cross_domain_seconds", "susceptibility_seconds",
                                "reference_seconds"))
training = kid_wall - finish
rest = wall - training - finish
print(f"children: {len(kids)}")
print(f"experiment wall {wall:.1f} s ({wall / 60:.1f} min); sum of children {kid_wall:.1f} s; training {training:.1f} s")
print(f"overhead beyond the trainings: {wall - training:.1f} s ({(wall - training) / training:.1%} of training)")
for name, key in (("in-domain test evaluation", "test_seconds"),
                  ("shift grid (15 sets per model)", "cross_domain_seconds"),
                  ("susceptibility", "susceptibility_seconds"),
                  ("reference statistics", "reference_seconds")):
    print(f"  {name}: {phase[key]:.1f} s ({phase[key] / training:.1%})")
print(f"  scheduling, registration, aggregation and the rest: {rest:.1f} s ({rest / training:.1%})")
grid = phase["cross_domain_images"] / phase["cross_domain_seconds"]
test = phase["test_images"] / phase["test_seconds"]
print(f"shift grid: {phase['cross_domain_images']:.0f} images in {phase['cross_domain_seconds']:.1f} s = {grid:.1f} images/s")
print(f"unshifted test evaluation: {test:.1f} images/s")
print(f"plain inference (segctl bench, concurrency 8): {plain:.1f} images/s")
print(f"ratio shift grid / plain inference: {grid / plain:.2f}; test evaluation / plain: {test / plain:.2f}")
EOF
