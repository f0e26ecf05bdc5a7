#!/usr/bin/env python3
"""Exec round trip of `true` through the stdio bridge on Docker, with the in-sandbox agent and
without it (DAGGER_SANDBOX_AGENT=off), interleaved; prints p50 and p99 in ms. Stdlib only.

    cargo build -p dagger-sandbox-bridge && bash scripts/agent-build.sh
    python3 bench/bridge-exec.py [--n 200] [--image dagger-sandbox-test/busybox:latest]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Bridge:
    """One bridge process with one Docker sandbox; one JSON line out, one line in."""

    def __init__(self, image: str, agent: bool) -> None:
        env = dict(os.environ)
        if not agent:
            env["DAGGER_SANDBOX_AGENT"] = "off"
        binary = os.environ.get("DAGGER_SANDBOX_BRIDGE", str(ROOT / "target/debug/dagger-sandbox-bridge"))
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.n = 0
        self.call("initialize", {"protocolVersion": "1"})
        create = {"backend": "docker", "image": image, "fallback": False}
        self.sid = self.call("sandbox/create", create)["sandboxId"]

    def call(self, method: str, params: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.n += 1
        msg = {"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            reply = json.loads(self.proc.stdout.readline())
            if reply.get("id") == self.n:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def exec_true(self) -> float:
        start = time.perf_counter()
        r = self.call("sandbox/exec", {"sandboxId": self.sid, "command": "true"})
        assert r["exitCode"] == 0, r
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self.call("sandbox/close", {"sandboxId": self.sid})
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def quantile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, int(len(s) * q + 0.999999) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--image", default="dagger-sandbox-test/busybox:latest")
    args = ap.parse_args()
    fast, api = Bridge(args.image, True), Bridge(args.image, False)
    for _ in range(5):
        fast.exec_true(), api.exec_true()
    times: dict[str, list[float]] = {"agent": [], "no agent": []}
    for _ in range(args.n):
        times["agent"].append(fast.exec_true())
        times["no agent"].append(api.exec_true())
    fast.close(), api.close()
    print(f"bridge exec of `true` on Docker, n={args.n}, ms")
    print("| path | p50 | p99 |")
    print("| --- | --- | --- |")
    for name, t in times.items():
        print(f"| bridge, {name} | {quantile(t, 0.5):.2f} | {quantile(t, 0.99):.2f} |")


if __name__ == "__main__":
    main()
