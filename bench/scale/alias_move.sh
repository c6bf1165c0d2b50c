#!/usr/bin/env bash
# File: bench/scale/alias_move.sh — how long after an alias moves on one replica a serving
# replica answers Segment through that alias with the new version. One PostgreSQL, one
# shared data dir; a --roles=serve front (registry follower every --registry_sync_seconds,
# following every model and alias) and a --roles=train replica where the versions are
# imported and the alias is moved (`segctl models alias`). Model "am" has versions 1 and 2
# (the same resnet18 L1 weights imported twice); each move flips alias am-live between
# am:1 and am:2. am:2, the newest version, stays loaded on the front anyway (the follower
# keeps a name's newest version), so a move to it waits only for the front to see the new
# alias table (aliases.json, or the registry tables with --database); a move to am:1 also waits for the follower to load it. Before the moves
# the front serves am-live = am:1 and am:2 by version. After each move
# `segctl segment --model am-live` runs against the front in a loop until its answer names
# the new version; the time is from just before the alias command to that answer (so it
# includes the alias command itself, printed apart), and the resolution is one segctl call
# (printed). Segment calls that fail during the moves are counted per direction, and their
# messages printed.
# KEEP_WORK=1 keeps the temp dir (replica logs log-*.txt, segment-errors.txt).
# Usage: bench/scale/alias_move.sh [BUILD_DIR] [MOVES] [SYNC_SECONDS...]   (default 10, 1 2)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
moves=${2:-10}
shift $(($# < 2 ? $# : 2))
syncs=(1 2)
[ $# -gt 0 ] && syncs=("$@")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
SEGSERVE="$build/server/app/segserve"
segctl="$build/client/segctl/segctl"
work=$(mktemp -d /tmp/segserve_bench_alias_XXXXXX)
cleanup() {
  replicas_stop
  pg_stop
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

bench_header
pg_start
(cd "$root" && /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, 'tests/model')
import reference_unet as r
torch.manual_seed(0)
m = r.Unet('resnet18', skip_prune_level=1, in_channels=3, classes=3)
torch.save(m.state_dict(), '$work/w.pt')
")
"$segctl" synth --out "$work/img" --n 1 --size 64 >/dev/null
image=$(ls "$work"/img/images/*.png | head -1)

# version_of FRONT: the version that answered a Segment through am-live, or "error".
version_of() {
  local out
  if out=$("$segctl" --server "$1" segment --model am-live --out "$work/masks" "$image" 2>&1); then
    echo "$out" | sed -n 's/.*(am:\([0-9]*\) .*/\1/p' | head -1
  else
    echo "$(now_s) $out" >>"$work/segment-errors.txt"
    echo error
  fi
}

summary=()
for sync in "${syncs[@]}"; do
  dir="$work/sync$sync"
  mkdir -p "$dir"
  pg_createdb "alias_$sync"
  database="--database=$PG_CONNINFO dbname=alias_$sync"
  replica_start front "$dir" --threads=1 --roles=serve --registry_sync_seconds="$sync" "$database"
  replica_start other "$dir" --threads=1 --roles=train --training_slots=1 "$database"
  front=${REPLICA_ADDR[front]}
  other=${REPLICA_ADDR[other]}
  for _ in 1 2; do
    "$segctl" --server "$other" models import --file "$work/w.pt" --name am --encoder resnet18 \
      --prune-level 1 --classes 3 >/dev/null
  done
  "$segctl" --server "$other" models alias am-live am:1 >/dev/null
  for _ in $(seq 600); do [ "$(version_of "$front")" = 1 ] && break; sleep 0.1; done
  [ "$(version_of "$front")" = 1 ] || { echo "the front never served am-live = am:1" >&2; exit 1; }
  for _ in $(seq 600); do
    "$segctl" --server "$front" segment --model am:2 --out "$work/masks" "$image" >/dev/null 2>&1 &&
      break
    sleep 0.1
  done
  : >"$work/segment-errors.txt"
  echo "== --registry_sync_seconds=$sync"
  current=1
  errors1=0
  errors2=0
  calls=0
  call_seconds=0
  to1=()
  to2=()
  for move in $(seq "$moves"); do
    target=$((3 - current))
    t0=$(now_s)
    "$segctl" --server "$other" models alias am-live "am:$target" >/dev/null
    t_alias=$(now_s)
    while true; do
      c0=$(now_s)
      v=$(version_of "$front")
      t1=$(now_s)
      calls=$((calls + 1))
      call_seconds=$(awk -v a="$call_seconds" -v b="$c0" -v c="$t1" 'BEGIN { print a + c - b }')
      if [ "$v" = error ]; then
        if [ "$target" = 1 ]; then errors1=$((errors1 + 1)); else errors2=$((errors2 + 1)); fi
      fi
      [ "$v" = "$target" ] && break
      if awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a > 60) }'; then
        echo "move $move: the front still answers $v after 60 s" >&2
        exit 1
      fi
    done
    took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    alias_cmd=$(awk -v a="$t0" -v b="$t_alias" 'BEGIN { printf "%.3f", b - a }')
    echo "move $move: am-live -> am:$target answered by the front after $took s (alias command $alias_cmd s)"
    if [ "$target" = 1 ]; then to1+=("$took"); else to2+=("$took"); fi
    current=$target
  done
  replicas_stop
  cat "$work/segment-errors.txt" >>"$work/all-segment-errors.txt"
  stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf "%d | %.3f | %.3f | %.3f", NR, a[1], m, a[NR] }'; }
  per_call=$(awk -v s="$call_seconds" -v n="$calls" 'BEGIN { printf "%.3f", s / n }')
  summary+=("| $sync | to am:2 (loaded already) | $(stats "${to2[@]}") | $per_call | $errors2 |")
  summary+=("| $sync | to am:1 (loaded on the move) | $(stats "${to1[@]}") | $per_call | $errors1 |")
done
echo
echo "| --registry_sync_seconds | move | moves | min (s) | median (s) | max (s) | one segctl segment call, mean (s) | failed Segment calls during these moves |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${summary[@]}"
if [ -s "$work/all-segment-errors.txt" ]; then
  echo
  echo "failed Segment calls during the moves (messages, counted):"
  grep -o "[A-Z_]*: model .*" "$work/all-segment-errors.txt" | sort | uniq -c
fi
