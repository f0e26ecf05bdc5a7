#!/usr/bin/env bash
# Builds the in-sandbox agent as a static binary (it must run in any image: glibc, musl or none)
# into target/agent/, where dagger-sandbox finds it (crates/core/src/backend/docker/agent/place.rs).
# Its own target dir and flags, so the workspace's build (and coverage instrumentation) is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
unset CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER LLVM_PROFILE_FILE CARGO_LLVM_COV CARGO_LLVM_COV_SHOW_ENV CARGO_LLVM_COV_TARGET_DIR
CARGO_TARGET_DIR=target/agent RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -p dagger-sandbox-agent --locked --target x86_64-unknown-linux-gnu "$@"
echo "agent: $PWD/target/agent/x86_64-unknown-linux-gnu/debug/dagger-sandbox-agent"
