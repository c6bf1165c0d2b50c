#!/usr/bin/env bash
# File: scripts/fetch-torch-headers.sh — unpacks another Debian release's libtorch-dev (headers
# and CMake files only; nothing is installed) for scripts/torch-compile-check.py, to check that
# segserve still compiles against LibTorch 2.x. Development tool: no build, test or run step
# uses it. Usage: fetch-torch-headers.sh SUITE DEST   (SUITE: trixie = 2.6, sid = newest)
set -euo pipefail
suite="${1:?usage: $0 SUITE DEST}"
dest="${2:?usage: $0 SUITE DEST}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
  >"$work/sources.list"
opts=(-o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts=-
      -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o Debug::NoLocking=1)
apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" download libtorch-dev 2>&1 | grep -v unsandboxed || true)
dpkg -x "$work"/libtorch-dev_*.deb "$dest"
grep -h "define TORCH_VERSION " -A1 "$dest"/usr/include/torch/csrc/api/include/torch/version.h
