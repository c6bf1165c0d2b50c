#!/usr/bin/env bash
# File: bench/scale/blob.sh — the model registry's blob backends in one run
# (scale_blob_bench: register and fetch a ~100 MB ResNet34 checkpoint on the file store,
# PostgreSQL + blob directory, PostgreSQL + large objects; seconds and peak RSS growth).
# Starts a private PostgreSQL (lib.sh: default durability, Unix socket), runs, stops it.
# Usage: bench/scale/blob.sh [BUILD_DIR] [scale_blob_bench args...]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
shift || true
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap pg_stop EXIT
bench_header
pg_start
pg_describe
"$build/bench/scale/scale_blob_bench" --postgres "$PG_CONNINFO" "$@"
