#!/usr/bin/env bash
# Runs every test of the project on this machine, a fresh one included: makes a Docker engine and
# the local test images available (scripts/engine.sh), checks formatting and lints, then runs the
# unit tests, the conformance suite against every backend (it prints a count per backend, and a
# SKIPPED line for a backend that cannot run here), the integration tests (the stdio bridge binary
# under hostile input among them), the chaos test (kill -9 of daemon, dockerd and a bridge client
# mid-workload, then nothing leaked), a property-based run of the daemon's OpenAPI document with
# schemathesis (scripts/schemathesis.sh: every check, against a real daemon on Docker; installs
# schemathesis with pip into a venv kept in /var/tmp), the Python client's tests against the real
# bridge, the MCP server under the official MCP Python SDK (scripts/mcp-test.sh), and the
# Node package (scripts/node-test.sh: debug addon build, node:test suite, tsc --strict type test,
# npm pack consumer check).
#
# DAGGER_SANDBOX_REQUIRE_DOCKER=1 (set by .ci/run) turns a missing Docker engine into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/engine.sh
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== chaos: kill -9 of the daemon, dockerd and a bridge client during a 20-sandbox workload"
# Alone, after every other Rust test: it stops and restarts the Docker engine (scripts/engine.sh).
cargo test -p dagger-sandbox-cli --test chaos --locked -- --ignored --nocapture
echo "== schemathesis: the daemon against its OpenAPI document"
bash scripts/schemathesis.sh
echo "== python package (clients/python)"
bash scripts/python-test.sh
bash scripts/go-test.sh  # the Go client: gofmt, go vet, go test -race against the bridge and Docker
echo "== mcp: the official MCP Python SDK over stdio and Streamable HTTP"
bash scripts/mcp-test.sh
echo "== node package"
bash scripts/browser.sh  # headless Chromium for the dashboard test in node-test.sh
bash scripts/node-test.sh
