"""MCP tool call overhead over a direct core call: `file_read` of a 1 KiB file through
`dagger-sandbox mcp` (stdio, the official MCP Python SDK as the client) next to
`Sandbox::read_file` called directly (examples/direct_read.rs), same backend and image, N=300.
Prints p50 and p99 in milliseconds side by side.

    scripts/mcp-test.sh  # once, for the venv and the binary
    /var/tmp/dagger-sandbox-venv-mcp/bin/python crates/mcp/benches/overhead.py [N] [backend] [image]
"""

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[3]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
BACKEND = sys.argv[2] if len(sys.argv) > 2 else "docker"
IMAGE = sys.argv[3] if len(sys.argv) > 3 else "dagger-sandbox-test/busybox:latest"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def direct() -> list[float]:
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "dagger-sandbox-mcp", "--example", "direct_read", "--", str(N), BACKEND, IMAGE],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return [u / 1000 for u in json.loads(out.strip().splitlines()[-1])["us"]]


async def via_mcp() -> list[float]:
    params = StdioServerParameters(
        command=str(ROOT / "target" / "debug" / "dagger-sandbox"), args=["mcp", "--backend", BACKEND, "--image", IMAGE]
    )
    async with Client(params) as c:
        sid = (await c.call_tool("sandbox_create", {})).structured_content["id"]
        await c.call_tool("file_write", {"sandbox": sid, "path": "bench.txt", "content": "x" * 1024})
        await c.call_tool("file_read", {"sandbox": sid, "path": "bench.txt"})  # warm-up
        ms = []
        for _ in range(N):
            t = time.perf_counter()
            r = await c.call_tool("file_read", {"sandbox": sid, "path": "bench.txt"})
            ms.append((time.perf_counter() - t) * 1000)
            assert not r.is_error
        await c.call_tool("sandbox_close", {"sandbox": sid})
        return ms


def main():
    d = direct()
    m = asyncio.run(via_mcp())
    print(f"file_read of 1 KiB, backend {BACKEND}, N={N}, milliseconds")
    print(f"{'':28} {'p50':>8} {'p99':>8}")
    print(f"{'direct Sandbox::read_file':28} {pct(d, 50):8.2f} {pct(d, 99):8.2f}")
    print(f"{'MCP file_read (stdio)':28} {pct(m, 50):8.2f} {pct(m, 99):8.2f}")
    print(f"{'overhead per call':28} {pct(m, 50) - pct(d, 50):8.2f} {pct(m, 99) - pct(d, 99):8.2f}")
    print(f"(mean direct {statistics.mean(d):.2f}, mcp {statistics.mean(m):.2f})")


if __name__ == "__main__":
    main()
