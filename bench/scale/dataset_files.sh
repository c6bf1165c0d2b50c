#!/usr/bin/env bash
# File: bench/scale/dataset_files.sh — data-set files in PostgreSQL large objects
# (--blob_store=large_object): two segserve replicas on their own data dirs share a private
# PostgreSQL (lib.sh). A native set of about MB megabytes (bench/data/make_set.sh) is
# uploaded through replica A, which validates, publishes and stores its files in the
# database; the same upload is then retried through replica B, which has no copy and
# fetches the set (every file SHA-256 checked) before answering; a second retry through B
# reads its copy. Prints the seconds and MB/s of each step (the store and the fetch also
# as the replicas log them), B's peak resident memory (VmHWM) and the database's growth.
# Usage: bench/scale/dataset_files.sh [BUILD_DIR] [MB]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
mb=${2:-300}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
SEGSERVE="$build/server/app/segserve"
segctl="$build/client/segctl/segctl"
work=$(mktemp -d)
trap 'replicas_stop; pg_stop; rm -rf "$work"' EXIT
bench_header
read -r images total < <(bash "$here/../data/make_set.sh" "$segctl" "$work/set" "$mb")
echo "data set: $images images (1024x1024 RGB PNG) + masks, $total bytes"
pg_start
pg_describe
pg_createdb files
db_size() {
  "$PG_BIN/psql" -At -h "$PG_DIR" -U segserve -d files -c "SELECT pg_database_size('files')"
}
mkdir -p "$work/a" "$work/b"
flags=("--database=$PG_CONNINFO dbname=files" --blob_store=large_object --roles=serve
       --max_dataset_bytes=$(( total + 1000000 )))
replica_start a "$work/a" "${flags[@]}"
replica_start b "$work/b" "${flags[@]}"
size_before=$(db_size)
upload() {  # REPLICA -> seconds
  local s e
  sync
  s=$(now_s)
  "$segctl" --server "${REPLICA_ADDR[$1]}" datasets upload "$work/set" --name bench --quiet >/dev/null
  e=$(now_s)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}
t_store=$(upload a)
t_fetch=$(upload b)
t_copy=$(upload b)
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/${REPLICA_PID[b]}/status")
size_after=$(db_size)
awk -v t="$total" -v a="$t_store" -v b="$t_fetch" -v c="$t_copy" 'BEGIN {
  printf "A: upload, validate, publish, store in large objects: %.2f s = %.1f MB/s end to end\n", a, t / 1e6 / a;
  printf "B: the retry, fetching the set first: %.2f s = %.1f MB/s\n", b, t / 1e6 / b;
  printf "B: the retry again, from its copy: %.2f s\n", c }'
sed -n 's/.*data set bench: \(stored .*\)/A log: \1/p' "$work/a/log-a.txt"
sed -n 's/.*data set bench: \(fetched .*\)/B log: \1/p' "$work/b/log-b.txt"
echo "B memory: peak (VmHWM) $(( hwm / 1024 )) MB"
echo "database: $(( (size_after - size_before) / 1000000 )) MB larger for $(( total / 1000000 )) MB of files"
