#!/usr/bin/env bash
# File: scripts/run.sh — the one run command (README): installs the Debian packages,
# builds segserve and segctl, and starts the server with embedded defaults
# (gRPC on 0.0.0.0:50051, metrics on 0.0.0.0:9090, state under ./var).
# Without an --auth_* argument this is the local quick start: gRPC on loopback only
# (127.0.0.1:50051) with --auth_disabled. Extra arguments are passed to segserve, e.g.
#   scripts/run.sh --listen=0.0.0.0:50051 --auth_tokens_file=./var/tokens
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh build
bash scripts/build.sh segserve segctl
mkdir -p var
quick_start=(--listen=127.0.0.1:50051 --auth_disabled)
for arg in "$@"; do
  [[ "$arg" == --auth_* ]] && quick_start=()
done
exec "${BUILD_DIR:-build}/server/app/segserve" --data_dir=./var "${quick_start[@]}" "$@"
