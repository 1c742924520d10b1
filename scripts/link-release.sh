#!/usr/bin/env bash
# Our release binaries are static and built for an explicit target (see
# .cargo/config.toml), so cargo puts them in target/x86_64-unknown-linux-gnu/release.
# This links each one into target/release too, where runc-style instructions
# (and ../shared/conformance/runtime-tools.sh target/release/berth-runc) expect them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/release
for bin in berth-runc containerd-shim-berth-v2 berth-fixture berth-bench berth-maxrss berth-probe; do
  if [ -x "target/x86_64-unknown-linux-gnu/release/$bin" ]; then
    ln -sfn "../x86_64-unknown-linux-gnu/release/$bin" "target/release/$bin"
  fi
done
