#!/usr/bin/env bash
# File: scripts/build.sh — configures and builds segserve into ./build (or $BUILD_DIR).
# Usage: scripts/build.sh [ninja targets...]   (default: everything)
# Parallelism is capped at ~1 GB of RAM per job (torch translation units) and the core
# count; override with JOBS=N.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build}"
if [ -z "${JOBS:-}" ]; then
  mem_gb=$(awk '/MemAvailable/ {print int($2 / 1024 / 1024)}' /proc/meminfo)
  JOBS=$(nproc)
  [ "$mem_gb" -lt "$JOBS" ] && JOBS=$(( mem_gb > 0 ? mem_gb : 1 ))
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" --parallel "$JOBS" ${1:+--target "$@"}
