#!/usr/bin/env bash
# File: scripts/run.sh — the one run command (README): installs the Debian packages,
# builds segserve and segctl, and starts the server with embedded defaults
# (gRPC on 0.0.0.0:50051, metrics on 0.0.0.0:9090, state under ./var).
# Extra arguments are passed to segserve, e.g. scripts/run.sh --listen=127.0.0.1:50051
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh build
bash scripts/build.sh segserve segctl
mkdir -p var
exec "${BUILD_DIR:-build}/server/app/segserve" --data_dir=./var "$@"
