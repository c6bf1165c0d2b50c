#!/usr/bin/env bash
# File: scripts/install-deps.sh — installs every Debian bookworm package segserve needs.
# One list, used by the README commands, CI and docker/Dockerfile. Idempotent and
# non-interactive. Usage: install-deps.sh [build|runtime|test]   (default: test)
set -euo pipefail

profile="${1:-test}"

# Libraries the binaries link against at run time. libplplot17 + plplot-driver-cairo: segctl's
# PNG figures (client/plot); the cairo driver is a plugin PLplot loads from its driver
# directory at run time, and draws text with fonts-dejavu-core through fontconfig.
RUNTIME_PKGS=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libtorch1.13 libopencv-core406
  libopencv-imgproc406 libopencv-imgcodecs406 libabsl20220623 libprometheus-cpp-core1.0
  libprometheus-cpp-pull1.0 libsqlite3-0 libopenblas0-pthread libssl3 ca-certificates
  libpq5 libnifti2-2 libznz3 libplplot17 plplot-driver-cairo fonts-dejavu-core
)
# Everything needed to build segserve and segctl (plplot-driver-cairo: the figure tests draw).
BUILD_PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libtorch-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libabsl-dev prometheus-cpp-dev libsqlite3-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libssl-dev libcli11-dev zlib1g-dev libpq-dev libnifti2-dev
  libopenblas0-pthread libplplot-dev plplot-driver-cairo fonts-dejavu-core
)
# Reference implementations and probes used only by tests and benchmarks (python3-pip: the
# Python client's offline `pip install` test); clang and its
# runtimes for the sanitizer + libFuzzer build the tests run in (scripts/test.sh);
# postgresql-15: the private PostgreSQL the job-store tests start (tests/testing/
# postgres_server.h; its initdb/pg_ctl, run as the package's `postgres` user when root).
TEST_PKGS=(
  python3 python3-torch python3-torchvision python3-numpy python3-grpcio python3-protobuf
  python3-pip curl procps sqlite3 prometheus openssl clang libclang-rt-14-dev llvm postgresql-15
)

case "$profile" in
  runtime) pkgs=("${RUNTIME_PKGS[@]}") ;;
  build) pkgs=("${BUILD_PKGS[@]}") ;;
  test) pkgs=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  *) echo "usage: $0 [build|runtime|test]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages for '$profile' present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
