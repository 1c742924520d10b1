#!/usr/bin/env bash
# The OCI conformance suite (tests/tests/conformance) against berth-runc,
# runc and crun in turn; berth-runc is built first (release).
#
#   scripts/conformance.sh                    all three runtimes
#   scripts/conformance.sh --runtime-tools    also the external runtime-tools suite, for
#                                             information (needs ../shared; skipped otherwise)
#   scripts/conformance.sh -- FILTER...       extra arguments for the test harness
#
# BERTH_CONFORMANCE_RUNTIMES="berth-runc runc" picks the runtimes.
# BERTH_CONFORMANCE_RUN_SKIPPED=1 also runs the cases marked as known
# failures of a runtime (each prints its reason when skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

runtime_tools=0
harness_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime-tools) runtime_tools=1 ;;
    --) shift; harness_args=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "conformance.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

[ "$(id -u)" = 0 ] || { echo "conformance.sh: run as root (containers need namespaces, mounts and cgroups)" >&2; exit 1; }

echo "==> building berth-runc (release)"
cargo build --release -p berth-executor --bin berth-runc
bash scripts/link-release.sh

runtimes=${BERTH_CONFORMANCE_RUNTIMES:-berth-runc runc crun}
failed=()

echo
echo "==> test image and helper self-tests"
cargo test -p berth-tests --test image --test helpers || failed+=("helpers")
for rt in $runtimes; do
  echo
  echo "==> conformance suite against $rt"
  if ! BERTH_RUNTIME=$rt cargo test -p berth-tests --test conformance -- "${harness_args[@]}"; then
    failed+=("$rt")
  fi
done

if [ "$runtime_tools" = 1 ]; then
  echo
  if [ -f ../shared/conformance/runtime-tools.sh ]; then
    echo "==> runtime-tools validation suite against berth-runc (informational)"
    # No runtime passes it all here (44 of 58 is this host's ceiling, see
    # ../shared/conformance/README.md), so its verdict does not fail this script.
    bash ../shared/conformance/runtime-tools.sh target/x86_64-unknown-linux-gnu/release/berth-runc ||
      echo "runtime-tools: some programs failed (berth-runc passed 40 of 58 when this script was written)"
  else
    echo "==> runtime-tools: skipped (../shared/conformance/runtime-tools.sh is not here; it is not in CI)"
  fi
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "conformance: FAILED for: ${failed[*]}"
  exit 1
fi
echo "conformance: passed for: $runtimes"
