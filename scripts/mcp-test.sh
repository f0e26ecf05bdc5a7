#!/usr/bin/env bash
# Drives the MCP server with the official MCP Python SDK (the `mcp` package from PyPI, pinned) as a
# real client, over stdio (`dagger-sandbox mcp`) and over Streamable HTTP against a daemon
# (crates/mcp/tests/python/test_mcp.py). The SDK lives in a venv cached under /var/tmp.
# Needs Docker and the local test images (scripts/engine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

MCP_SDK_VERSION="2.3.0"
VENV="${DAGGER_SANDBOX_MCP_VENV:-/var/tmp/dagger-sandbox-venv-mcp}"
if ! "$VENV/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '$MCP_SDK_VERSION'" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "mcp==$MCP_SDK_VERSION"
fi
cargo build -p dagger-sandbox-cli --locked -q
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
export DAGGER_SANDBOX_BIN="${DAGGER_SANDBOX_BIN:-$target/debug/dagger-sandbox}"
"$VENV/bin/python" crates/mcp/tests/python/test_mcp.py
