#!/usr/bin/env bash
# File: scripts/container-test.sh — builds the CPU image (docker/Dockerfile) without a
# Docker engine and checks the container end to end:
#   debootstrap minbase bookworm -> podman import (the BASE) -> buildah bud --isolation
#   chroot -> podman run (runc, host network, lowered ulimits) -> gRPC health from the
#   host and inside (HEALTHCHECK) -> /metrics -> SIGTERM -> exit code 0.
# Heavy (it compiles segserve inside the image): runs only when SEGSERVE_CONTAINER_TEST=1.
# Needs root (debootstrap, rootful podman). Phase timings are printed at the end; the
# measured numbers are in docs/deploy.md.
# Env: CONTAINER_WORK (default /var/tmp/segserve-container: storage, base rootfs),
#      JOBS (compile jobs inside the build), KEEP_IMAGE=1 keeps the built image.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SEGSERVE_CONTAINER_TEST:-0}" != "1" ]; then
  echo "container-test: skipped (set SEGSERVE_CONTAINER_TEST=1; builds the image, ~20+ min on 2 cores)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "container-test: needs root (debootstrap, rootful podman)" >&2
  exit 1
fi

need=()
for t in buildah podman runc debootstrap curl python3; do
  command -v "$t" >/dev/null || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "container-test: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

WORK="${CONTAINER_WORK:-/var/tmp/segserve-container}"
mkdir -p "$WORK"
STO=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay)
BASE_IMG=localhost/debian:bookworm-minbase
IMG=localhost/segserve:cpu-test
NAME="segserve-ct-$$"
declare -A took
t0=$(date +%s)
phase_start=$t0
phase() { local now; now=$(date +%s); took[$1]=$(( now - phase_start )); phase_start=$now; }

cleanup() {
  podman "${STO[@]}" --runtime runc rm -f "$NAME" >/dev/null 2>&1 || true
  [ "${KEEP_IMAGE:-0}" = "1" ] || podman "${STO[@]}" rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# 1. Base image: a minimal bookworm made offline from the configured Debian mirror.
if ! podman "${STO[@]}" image exists "$BASE_IMG"; then
  mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | head -1 | sed 's/^URIs: *//')
  [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? +bookworm' /etc/apt/sources.list 2>/dev/null \
             | head -1 | awk '{print $2}')
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  echo "container-test: debootstrap minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman "${STO[@]}" import - "$BASE_IMG" >/dev/null
  rm -rf "$rootfs"
fi
phase base

# 2. The image, exactly as a platform team would build it (same Dockerfile, same context).
echo "container-test: buildah bud docker/Dockerfile (log: $WORK/build.log)"
if ! buildah "${STO[@]}" bud --isolation chroot --format docker --layers \
      --build-arg BASE="$BASE_IMG" --build-arg JOBS="${JOBS:-}" \
      -t "$IMG" -f docker/Dockerfile . >"$WORK/build.log" 2>&1; then
  tail -40 "$WORK/build.log"
  echo "container-test: FAIL: image build" >&2
  exit 1
fi
phase build
size=$(podman "${STO[@]}" image inspect --format '{{.Size}}' "$IMG")
echo "container-test: image $IMG $(( size / 1024 / 1024 )) MiB"
# The runtime profile of install-deps.sh must cover every shared library the binaries use.
missing_libs=$(podman "${STO[@]}" --runtime runc run --rm --network host \
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --entrypoint /usr/bin/ldd \
    "$IMG" /usr/local/bin/segserve /usr/local/bin/segctl | grep 'not found' || true)
if [ -n "$missing_libs" ]; then
  echo "$missing_libs"
  echo "container-test: FAIL: runtime image lacks libraries (scripts/install-deps.sh runtime)" >&2
  exit 1
fi

# 3. Run it on free loopback ports (host network: no CNI needed here).
read -r gport mport < <(python3 - <<'PY'
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
PY
)
# --health-interval=disable: no systemd here to run periodic checks; the HEALTHCHECK is
# run once below with `podman healthcheck run`. Podman still logs "unable to get systemd
# connection ... healthchecks" errors: harmless.
podman "${STO[@]}" --runtime runc run -d --name "$NAME" --network host \
  --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --health-interval=disable \
  -e SEGSERVE_ADDR="127.0.0.1:$gport" \
  "$IMG" --listen="127.0.0.1:$gport" --metrics_listen="127.0.0.1:$mport" --drain_seconds=5 \
  --auth_disabled >/dev/null

fail() {
  echo "container-test: FAIL: $*" >&2
  podman "${STO[@]}" --runtime runc logs "$NAME" 2>&1 | tail -20 >&2 || true
  exit 1
}

segctl_host="${BUILD_DIR:-build}/client/segctl/segctl"
if [ -x "$segctl_host" ]; then
  "$segctl_host" --server "127.0.0.1:$gport" health --wait 60 || fail "segctl health from the host"
  echo "container-test: host segctl health: SERVING"
else
  echo "container-test: no host segctl at $segctl_host; checking from inside only"
  for _ in $(seq 60); do
    podman "${STO[@]}" --runtime runc exec "$NAME" segctl health >/dev/null 2>&1 && break
    sleep 1
  done
fi
podman "${STO[@]}" --runtime runc exec "$NAME" segctl health >/dev/null || fail "segctl health inside"
# One Segment call from the host: import a small U-net's state dict (built by the host's
# Python reference, as a user's weights file would arrive) and segment a synthetic image.
if [ -x "$segctl_host" ] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  work=$(mktemp -d)
  /usr/bin/python3 -c "
import sys, torch
sys.path.insert(0, 'tests/model')
import reference_unet as r
torch.manual_seed(0)
torch.save(r.Unet('resnet18', skip_prune_level=1, in_channels=3, classes=3).state_dict(), '$work/w.pt')
"
  "$segctl_host" --server "127.0.0.1:$gport" models import --file "$work/w.pt" --name ct-l1 \
    --encoder resnet18 --prune-level 1 --classes 3 --load >/dev/null || fail "model import"
  "$segctl_host" synth --out "$work/smears" --n 1 --size 128 >/dev/null
  "$segctl_host" --server "127.0.0.1:$gport" segment --model ct-l1 --out "$work/masks" \
    "$work/smears/images" >/dev/null || fail "Segment from the host"
  [ -s "$work/masks/synth_00000.png" ] || fail "no mask written"
  echo "container-test: host Segment call: mask written"
  rm -rf "$work"
fi
podman "${STO[@]}" --runtime runc healthcheck run "$NAME" || fail "image HEALTHCHECK"
echo "container-test: image HEALTHCHECK: healthy"
uid=$(podman "${STO[@]}" --runtime runc exec "$NAME" id -u)
[ "$uid" = "10001" ] || fail "container runs as uid $uid, want 10001"
curl -sf "http://127.0.0.1:$mport/metrics" | grep -q '^segserve_grpc_requests_total' \
  || fail "/metrics lacks segserve_grpc_requests_total"
echo "container-test: /metrics ok, uid $uid"
phase run

# 4. Graceful stop: STOPSIGNAL SIGTERM must drain and exit 0 (137 would mean it was killed).
podman "${STO[@]}" --runtime runc stop -t 30 "$NAME" >/dev/null
code=$(podman "${STO[@]}" --runtime runc inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = "0" ] || fail "exit code after SIGTERM: $code (want 0)"
echo "container-test: SIGTERM -> exit 0"
phase stop

echo "container-test: PASS in $(( $(date +%s) - t0 )) s (base ${took[base]} s, build ${took[build]} s, run ${took[run]} s, stop ${took[stop]} s)"
