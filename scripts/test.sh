#!/usr/bin/env bash
# README command 2: install what the tests need (apt, idempotent) and run
# every test: formatting, lints, unit tests, the OCI conformance suite
# against berth-runc, runc and crun, and the end-to-end tests against a
# private containerd.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (tests create namespaces, mounts and cgroups)" >&2; exit 1; }

step "installing test dependencies"
bash scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "building release binaries"
cargo build --release --workspace --bins
bash scripts/link-release.sh

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "unit and crate tests (executor, ttrpc-api, shim, ...)"
cargo test --workspace --exclude berth-tests --exclude berth-integration

step "conformance suite"
bash scripts/conformance.sh

step "integration tests (containerd 1.6, ctr, runc, crun)"
cargo test -p berth-integration -- --test-threads=2

step "all tests passed"
