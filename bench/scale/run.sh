#!/usr/bin/env bash
# File: bench/scale/run.sh — the job store of the distributed mode on PostgreSQL against
# the single-box SQLite store, in one run (scale_store_bench: submit jobs/s, Claim latency
# with 1 and 4 workers, RenewLease latency). Starts a private PostgreSQL (lib.sh:
# default durability, Unix socket), runs the binary, stops it.
# Usage: bench/scale/run.sh [BUILD_DIR] [scale_store_bench args...]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
shift || true
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap pg_stop EXIT
bench_header
pg_start
pg_describe
echo "SQLite: WAL, synchronous=FULL, a file under /tmp (same disk as the PostgreSQL data dir)"
"$build/bench/scale/scale_store_bench" --postgres "$PG_CONNINFO" "$@"
