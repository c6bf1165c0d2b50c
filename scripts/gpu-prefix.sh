#!/usr/bin/env bash
# File: scripts/gpu-prefix.sh — prepares, on the CPU machine, what the GPU check needs beside
# the source tree: Debian bookworm's Abseil, nlohmann-json and OpenSSL headers and libraries,
# unpacked (dpkg -x, no install) into .gpu/prefix (git-ignored, a few MB). The GPU machine has
# CUDA, CMake, ninja and a PyTorch wheel (its LibTorch) but no network, so these travel with
# the tree: the device tool's `carry: [".gpu"]`. Then run scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libabsl-dev libabsl20220623 nlohmann-json3-dev libssl-dev libssl3)
dest=.gpu
rm -rf "$dest"
mkdir -p "$dest/debs" "$dest/prefix"
(cd "$dest/debs" && apt-get download "${PKGS[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
for deb in "$dest"/debs/*.deb; do dpkg -x "$deb" "$dest/prefix"; done
# Shared libraries only: the static archives are most of the size.
rm -rf "$dest/debs" "$dest/prefix/usr/share/doc" "$dest/prefix/usr/share/man"
find "$dest/prefix" -name "*.a" -delete
echo "gpu-prefix: $(du -sh "$dest" | cut -f1) in $dest (${PKGS[*]})"
