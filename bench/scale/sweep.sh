#!/usr/bin/env bash
# File: bench/scale/sweep.sh — a sweep of 4 tiny trainings (resnet18, prune levels 0..3)
# through the distributed path against the single box, in one run:
#   single   one segserve, SQLite, --training_slots=1 (the single-box default);
#   dist1    a --roles=serve front + 1 --roles=train replica, one PostgreSQL, one data dir;
#   dist2    the same with 2 train replicas;
#   single2  one segserve, SQLite, --training_slots=2 (the same concurrency as dist2 on one
#            process: separates what distribution costs from what concurrency gains).
# Every replica runs --threads=1 (one core per worker: on 2 cores, 2 workers of 2 threads
# would only oversubscribe). Each configuration gets a fresh data dir (and database), the
# same generated data set, and the sweep is submitted to the front with --wait; wall time
# is from submit to segctl's return on the sweep's terminal state. Per child, from the
# workers' logs: run time (started -> succeeded), the epochs' own time (train + val +
# checkpoint writes, as the training log reports them), the rest of the run (setup, test
# evaluation, registration), and the dispatch gap (the worker idle with the child queued:
# from the submit or the worker's previous finish to the child's start).
# Run directories keep their checkpoints (--keep_run_checkpoints=all; deleting them is not
# timed) so that the bytes a run writes to the shared dir per epoch (latest.ckpt,
# latest.optim, best.ckpt when val IoU improved) and at registration (models/<name>/<v>/)
# are printed.
# Usage: bench/scale/sweep.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
repeats=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
SEGSERVE="$build/server/app/segserve"
segctl="$build/client/segctl/segctl"
work=$(mktemp -d /tmp/segserve_bench_sweep_XXXXXX)
cleanup() {
  replicas_stop
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

bench_header
pg_start
sweep_args=(--dataset tiny --encoders resnet18 --prune-levels 0,1,2,3 --epochs 2
  --max-steps-per-epoch 2 --crop-size 64 --batch-size 4)
echo "sweep: segctl submit-train ${sweep_args[*]} --wait"
common=(--threads=1 --keep_run_checkpoints=all)

# run_config NAME: starts NAME's replicas in a fresh dir, generates the data set, times the
# sweep, stops them, prints the per-child analysis.
run_config() {
  local name=$1 rep=$2
  local dir="$work/$name-$rep"
  mkdir -p "$dir"
  local front
  case $name in
    single | single2)
      local slots=1
      [ "$name" = single2 ] && slots=2
      replica_start box "$dir" "${common[@]}" --training_slots=$slots
      front=${REPLICA_ADDR[box]}
      ;;
    dist1 | dist2)
      pg_createdb "sweep_${name}_$rep"
      local database="--database=$PG_CONNINFO dbname=sweep_${name}_$rep"
      replica_start front "$dir" "${common[@]}" --roles=serve "$database"
      replica_start trainer-a "$dir" "${common[@]}" --roles=train --training_slots=1 "$database"
      [ "$name" = dist2 ] &&
        replica_start trainer-b "$dir" "${common[@]}" --roles=train --training_slots=1 "$database"
      front=${REPLICA_ADDR[front]}
      ;;
  esac
  "$segctl" --server "$front" --timeout 600 datasets generate --name tiny --n 16 --size 64 \
    --seed 3 --wait >/dev/null
  local t0 t1 out
  t0=$(now_s)
  out=$("$segctl" --server "$front" --timeout 600 submit-train "${sweep_args[@]}" --wait)
  t1=$(now_s)
  replicas_stop
  local run_dir
  run_dir=$(dirname "$(ls "$dir"/runs/job-*/latest.optim | head -1)")
  echo "files of one child: $(cd "$run_dir" && for f in latest.ckpt latest.optim best.ckpt; do
    printf '%s %s bytes, ' "$f" "$(stat -c %s "$f")"; done)registered version $(du -sb \
    "$(ls -d "$dir"/models/*/1 | head -1)" | cut -f1) bytes"
  if ! echo "$out" | grep -q SUCCEEDED; then
    echo "$name: the sweep did not succeed:" >&2
    echo "$out" >&2
    return 1
  fi
  /usr/bin/python3 - "$name" "$rep" "$t0" "$t1" "$dir"/log-*.txt <<'EOF'
import re, sys, datetime
name, rep, t0, t1, logs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
stamp = re.compile(r'^[DIWE] (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ')
def ts(line):
    m = stamp.match(line)
    return datetime.datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S.%f').replace(
        tzinfo=datetime.timezone.utc).timestamp() if m else None
jobs = {}  # id -> dict(worker, start, end, train, val, ckpt)
for log in logs:
    worker = log.rsplit('log-', 1)[1][:-4]
    for line in open(log, errors='replace'):
        t = ts(line)
        m = re.search(r'job (job-\w+) \(TRAIN\) started', line)
        if m and t:
            jobs.setdefault(m.group(1), {'ckpt': 0.0})
            jobs[m.group(1)].update(worker=worker, start=t)
        m = re.search(r'job (job-\w+) succeeded', line)
        if m and t and m.group(1) in jobs and 'start' in jobs[m.group(1)]:
            jobs[m.group(1)]['end'] = t
        m = re.search(r'training (job-\w+): epoch \d+/\d+ .*train ([\d.e+-]+) s, val ([\d.e+-]+) s, '
                      r'checkpoints ([\d.e+-]+) s', line)
        if m and m.group(1) in jobs:
            j = jobs[m.group(1)]
            j['train'], j['val'] = float(m.group(2)), float(m.group(3))
            j['ckpt'] += float(m.group(4))
kids = sorted((j for j in jobs.values() if 'end' in j), key=lambda j: j['start'])
# Each worker's slots (single2: one process, 2 slots) take the queued children in order:
# a child goes to the slot that became free first, and waited from then (or the submit).
slots = 2 if name == 'single2' else 1
free = {}  # worker -> when each of its slots became free
rows = []
for j in kids:
    times = free.setdefault(j['worker'], [t0] * slots)
    times.sort()
    gap = j['start'] - max(t0, times[0])
    times[0] = j['end']
    run = j['end'] - j['start']
    epochs = j.get('train', 0) + j.get('val', 0) + j['ckpt']
    rows.append((j['worker'], run, epochs, run - epochs, gap, j['ckpt']))
wall = t1 - t0
n = len(rows)
mean = lambda i: sum(r[i] for r in rows) / n if n else 0
print(f"RESULT {name} {rep} wall={wall:.2f} children={n} run={mean(1):.3f} epochs={mean(2):.3f} "
      f"rest={mean(3):.3f} gap={mean(4):.3f} ckpt={mean(5):.3f} tail={t1 - max(j['end'] for j in kids):.3f}")
for w, run, epochs, rest, gap, ckpt in rows:
    print(f"  child on {w}: run {run:.3f} s = epochs {epochs:.3f} s (checkpoint writes "
          f"{ckpt:.3f} s) + rest {rest:.3f} s; "
          f"dispatch gap {gap:.3f} s")
EOF
}

results=()
for rep in $(seq "$repeats"); do
  for name in single dist1 dist2 single2; do
    run_config "$name" "$rep" >"$work/result.txt"
    cat "$work/result.txt"
    results+=("$(sed -n 's/^RESULT //p' "$work/result.txt")")
  done
done
echo
echo "| configuration | repeat | sweep wall (s) | children | mean child run (s) | of which epochs (s) | rest of run (s) | of the epochs, checkpoint writes (s) | mean dispatch gap (s) | last finish -> segctl returns (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do
  set -- $r
  v() { echo "$@" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  echo "| $1 | $2 | $(v wall $r) | $(v children $r) | $(v run $r) | $(v epochs $r) | $(v rest $r) | $(v ckpt $r) | $(v gap $r) | $(v tail $r) |"
done
