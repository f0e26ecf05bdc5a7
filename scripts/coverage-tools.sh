#!/usr/bin/env bash
# Makes the line-coverage tools available: rustup's llvm-tools-preview component (llvm-profdata,
# llvm-cov) and cargo-llvm-cov from crates.io, pinned. Both are kept once installed (rustup's
# toolchain dir, ~/.cargo/bin), so only a fresh machine pays: about 2 minutes to build
# cargo-llvm-cov, a few seconds for the component.
set -euo pipefail
CARGO_LLVM_COV_VERSION=0.9.1

if ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then
  echo "== coverage: rustup component add llvm-tools-preview"
  rustup component add llvm-tools-preview
fi
if [ "$(cargo llvm-cov --version 2>/dev/null)" != "cargo-llvm-cov $CARGO_LLVM_COV_VERSION" ]; then
  echo "== coverage: cargo install cargo-llvm-cov $CARGO_LLVM_COV_VERSION"
  cargo install cargo-llvm-cov --version "$CARGO_LLVM_COV_VERSION" --locked
fi
