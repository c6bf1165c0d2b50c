#!/bin/sh
# Figures for docs/PERFORMANCE.md "Susceptibility": two set sizes (memory must not follow the
# set size), interleaved analysis/plain rounds. Usage: bench/susceptibility/run.sh BUILD_DIR
set -eu
BUILD=${1:-build}
lscpu | grep 'Model name'
nproc
date -u +%Y-%m-%d
"$BUILD/bench/susceptibility/susceptibility_bench" --images 48 --size 128 --rounds 3
"$BUILD/bench/susceptibility/susceptibility_bench" --images 192 --size 128 --rounds 1
