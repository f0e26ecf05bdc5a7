#!/usr/bin/env python3
"""Per-call overhead of the Python clients over a direct bridge round trip.

Times N small ``sandbox/readFile`` calls three ways, each on a bridge process of its own with a
sandbox on the same backend: a direct round trip (one JSON line written to the bridge's stdin, one
line read back, in this thread: the floor), the sync :class:`Client`, and the :class:`AsyncClient`.
The three run in interleaved blocks so that machine noise hits them alike. Prints p50 and p99 of
each and the clients' overhead over the direct round trip.

    python clients/python/bench/overhead.py [--n 500] [--backend local|docker]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from typing import Any

from dagger_sandbox import AsyncClient, Client, find_bridge

BLOCK = 50


class Direct:
    """The bridge with nothing in between: one line out, one line in."""

    def __init__(self, create: dict[str, Any]) -> None:
        self.proc = subprocess.Popen([str(find_bridge())], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.n = 0
        self.call("initialize", {"protocolVersion": "1"})
        self.sid = self.call("sandbox/create", create)["sandboxId"]

    def call(self, method: str, params: dict[str, Any]) -> Any:
        self.n += 1
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}).encode() + b"\n")
        self.proc.stdin.flush()
        msg = json.loads(self.proc.stdout.readline())
        assert msg["id"] == self.n and "result" in msg, msg
        return msg["result"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) in microseconds."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500, help="calls per way (default 500)")
    ap.add_argument("--backend", default="local", choices=["local", "docker"])
    ap.add_argument("--image", default="dagger-sandbox-test/busybox:latest")
    args = ap.parse_args()
    create: dict[str, Any] = {"backend": args.backend}
    if args.backend == "docker":
        create["image"] = args.image
    times: dict[str, list[float]] = {"direct": [], "sync Client": [], "AsyncClient": []}

    direct = Direct(create)
    direct.call("sandbox/writeFile", {"sandboxId": direct.sid, "path": "f.txt", "content": "x" * 100})
    client = Client()
    sb = client.create(create)
    sb.write_file("f.txt", "x" * 100)
    loop = asyncio.new_event_loop()
    aclient = loop.run_until_complete(AsyncClient().start())
    asb = loop.run_until_complete(aclient.create(create))
    loop.run_until_complete(asb.write_file("f.txt", "x" * 100))

    async def async_block(k: int) -> list[float]:
        out = []
        for _ in range(k):
            t = time.perf_counter()
            await asb.read_file("f.txt")
            out.append(time.perf_counter() - t)
        return out

    # Warm up each way, then interleave blocks.
    for _ in range(20):
        direct.call("sandbox/readFile", {"sandboxId": direct.sid, "path": "f.txt"})
        sb.read_file("f.txt")
    loop.run_until_complete(async_block(20))
    done = 0
    while done < args.n:
        k = min(BLOCK, args.n - done)
        for _ in range(k):
            t = time.perf_counter()
            direct.call("sandbox/readFile", {"sandboxId": direct.sid, "path": "f.txt"})
            times["direct"].append(time.perf_counter() - t)
        for _ in range(k):
            t = time.perf_counter()
            sb.read_file("f.txt")
            times["sync Client"].append(time.perf_counter() - t)
        times["AsyncClient"].extend(loop.run_until_complete(async_block(k)))
        done += k

    direct.close()
    client.close()
    loop.run_until_complete(aclient.close())
    loop.close()

    base50, base99 = pct(times["direct"], 50), pct(times["direct"], 99)
    print(f"readFile of 100 bytes, backend {args.backend}, n={args.n} per way (microseconds)")
    print(f"{'way':<14}{'p50':>10}{'p99':>10}{'mean':>10}{'overhead p50':>15}{'overhead p99':>15}")
    for name, xs in times.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        extra = ("", "") if name == "direct" else (f"{p50 - base50:+.0f}", f"{p99 - base99:+.0f}")
        print(f"{name:<14}{p50:>10.0f}{p99:>10.0f}{statistics.fmean(xs) * 1e6:>10.0f}{extra[0]:>15}{extra[1]:>15}")


if __name__ == "__main__":
    main()
