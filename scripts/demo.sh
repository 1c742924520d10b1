#!/usr/bin/env bash
# README command 1: build berth-runc and run a container from the bundled
# busybox test image on embedded defaults (no config file, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/demo.sh: run as root (containers need namespaces and cgroups)" >&2; exit 1; }
bash scripts/install-deps.sh --demo >/dev/null
cargo build --release --quiet -p berth-executor -p berth-tests --bins
bash scripts/link-release.sh
bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
id="berth-demo-$$"
cleanup() {
  target/x86_64-unknown-linux-gnu/release/berth-runc delete --force "$id" >/dev/null 2>&1 || true
  rm -rf "$bundle"
}
trap cleanup EXIT
target/x86_64-unknown-linux-gnu/release/berth-fixture bundle "$bundle" -- sh -c '
  echo "hello from a berth container"
  echo "hostname: $(hostname)   pid: $$   user: $(id)"
  echo "kernel:   $(uname -sr)"
  echo "rootfs:"; ls /
  echo "mounts:"; cut -d" " -f2,3 /proc/mounts | head -8'
echo "\$ berth-runc run --bundle $bundle $id"
target/x86_64-unknown-linux-gnu/release/berth-runc run --bundle "$bundle" "$id"
