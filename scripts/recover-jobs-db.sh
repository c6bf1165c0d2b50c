#!/usr/bin/env bash
# File: scripts/recover-jobs-db.sh — rebuilds <data_dir>/jobs.db from a copy that failed its
# integrity check (segserve then answers job RPCs with FAILED_PRECONDITION and exports
# segserve_job_store_healthy 0; docs/RELIABILITY.md, Faults). Run it with segserve stopped.
#
# The damaged file (and its -wal/-shm) is moved aside to jobs.db.damaged-<time>, never
# deleted. Every readable row is copied into a fresh jobs.db: `sqlite3 .recover` where it
# works, else `.dump` with its final ROLLBACK turned into COMMIT (Debian bookworm's sqlite3
# 3.40.1 fails `.recover` with "SQL logic error" even on a sound file). The schema version
# (PRAGMA user_version) is carried over; neither tool copies it. Rows on destroyed pages are
# lost; jobs that were RUNNING are re-queued at the next start as after any crash.
#
# Usage: scripts/recover-jobs-db.sh DATA_DIR
set -euo pipefail

data_dir=${1:?usage: $0 DATA_DIR}
db="$data_dir/jobs.db"
command -v sqlite3 >/dev/null || { echo "recover-jobs-db: sqlite3 is not installed" >&2; exit 2; }
[[ -f "$db" ]] || { echo "recover-jobs-db: no $db" >&2; exit 2; }

damaged="$db.damaged-$(date +%Y%m%d-%H%M%S)"
mv "$db" "$damaged"
for suffix in -wal -shm; do
  if [[ -f "$db$suffix" ]]; then mv "$db$suffix" "$damaged$suffix"; fi
done
echo "recover-jobs-db: damaged file kept as $damaged"

version=$(sqlite3 "$damaged" 'PRAGMA user_version' 2>/dev/null || echo 1)
if sqlite3 "$damaged" .recover > "$damaged.sql" 2>/dev/null; then
  method=.recover
else
  sqlite3 "$damaged" .dump 2>/dev/null | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' \
    > "$damaged.sql"
  method=.dump
fi
sqlite3 "$db" < "$damaged.sql"
sqlite3 "$db" "PRAGMA user_version=${version:-1}"
check=$(sqlite3 "$db" 'PRAGMA integrity_check')
jobs=$(sqlite3 "$db" 'SELECT COUNT(*) FROM jobs' 2>/dev/null || echo 0)
rm -f "$damaged.sql"
if [[ "$check" != ok ]]; then
  echo "recover-jobs-db: the rebuilt $db fails its check: $check" >&2
  exit 1
fi
echo "recover-jobs-db: rebuilt $db with $method: $jobs jobs, schema version ${version:-1}"
