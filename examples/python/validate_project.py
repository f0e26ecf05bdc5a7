#!/usr/bin/env python3
"""Validate a project directory in a throwaway sandbox, through ``dagger-sandbox-bridge``.

Copies DIR into a fresh sandbox at ``/workspace`` (without ``node_modules`` and ``.git``), runs
an install step (if given) and a test step (default ``npm test``), streams their output live with
a prefix, prints a verdict table, and exits 0 only if every step passed. The sandbox is always
closed, whatever happens.

    pip install ./clients/python      # once, from the repository root
    python3 validate_project.py ./my-app --backend docker --install "npm ci" --test "npm test"

Exit status: 0 every step passed; 1 a step failed (non-zero exit or timeout); 2 the sandbox could
not be set up (bad arguments, no bridge, engine error).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional, TextIO

from dagger_sandbox import Client, ExecResult, Sandbox, SandboxError, SandboxTimeoutError

WORKSPACE = "/workspace"
EXCLUDE = ["node_modules", ".git"]
TAIL_LINES = 3


@dataclass
class StepOutcome:
    """What one step did: ``exit_code`` is ``None`` when it never produced a result."""

    step: str
    status: str  # "pass", "FAIL", "TIMEOUT", "ERROR", "skipped"
    exit_code: Optional[int]
    duration_ms: Optional[int]
    output: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class PrefixPrinter:
    """Prints streamed chunks line by line with a prefix (chunks may split lines)."""

    def __init__(self, prefix: str, out: TextIO = sys.stdout) -> None:
        self.prefix = prefix
        self.out = out
        self.partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self.lock = threading.Lock()

    def __call__(self, stream: str, text: str) -> None:
        with self.lock:
            buf = self.partial.get(stream, "") + text
            *lines, rest = buf.split("\n")
            self.partial[stream] = rest
            for line in lines:
                self._emit(stream, line)

    def _emit(self, stream: str, line: str) -> None:
        mark = "|" if stream == "stdout" else "!"
        self.out.write(f"{self.prefix} {mark} {line}\n")
        self.out.flush()

    def flush(self) -> None:
        with self.lock:
            for stream, rest in self.partial.items():
                if rest:
                    self._emit(stream, rest)
            self.partial = {"stdout": "", "stderr": ""}


def tail(text: str, n: int = TAIL_LINES) -> str:
    """The last ``n`` non-empty lines of ``text``, joined with `` / ``."""
    lines = [line for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-n:])


def run_step(sb: Sandbox, name: str, command: str, timeout_ms: Optional[int]) -> StepOutcome:
    """Runs one step with live output and turns the result (or a TIMEOUT) into an outcome."""
    print(f"==> {name}: {command}", flush=True)
    printer = PrefixPrinter(f"[{name}]")
    started = time.monotonic()
    try:
        r: ExecResult = sb.exec(command, timeout_ms=timeout_ms, on_output=printer)
    except SandboxError as e:
        printer.flush()
        partial = e.partial if isinstance(e, SandboxTimeoutError) else None
        out = (partial.stdout + partial.stderr) if partial else e.message
        status = "TIMEOUT" if isinstance(e, SandboxTimeoutError) else "ERROR"
        ms = partial.duration_ms if partial else int((time.monotonic() - started) * 1000)
        print(f"==> {name}: {e.code}: {e.message}", flush=True)
        return StepOutcome(name, status, None, ms, out)
    printer.flush()
    return StepOutcome(name, "pass" if r.ok else "FAIL", r.exit_code, r.duration_ms, r.stdout + r.stderr)


def print_table(outcomes: list[StepOutcome], out: TextIO = sys.stdout) -> None:
    """The verdict table: step, status, exit code, duration, last lines of output."""
    rows = [("step", "status", "exit", "ms", "last output")]
    for o in outcomes:
        rows.append(
            (
                o.step,
                o.status,
                "-" if o.exit_code is None else str(o.exit_code),
                "-" if o.duration_ms is None else str(o.duration_ms),
                tail(o.output)[:100],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        out.write("  ".join(r[j].ljust(widths[j]) for j in range(4)) + "  " + r[4] + "\n")
        if i == 0:
            out.write("  ".join("-" * w for w in widths) + "  " + "-" * 11 + "\n")
    out.flush()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Run a project's install and test steps in a sandbox.")
    ap.add_argument("dir", help="project directory on this host")
    ap.add_argument("--image", help="image to start from (docker), e.g. node:20-alpine3.22")
    ap.add_argument("--backend", default="auto", choices=["auto", "docker", "dagger", "local"])
    ap.add_argument("--install", help="install command, e.g. 'npm ci' (default: no install step)")
    ap.add_argument("--test", default="npm test", help="test command (default: npm test)")
    ap.add_argument("--network", action="store_true", help="give commands network access")
    ap.add_argument("--timeout-ms", type=int, default=None, help="per-step timeout in ms")
    ap.add_argument("--bridge", help="path of dagger-sandbox-bridge (default: $DAGGER_SANDBOX_BRIDGE, then PATH)")
    args = ap.parse_args(argv)

    if not os.path.isdir(args.dir):
        print(f"error: {args.dir} is not a directory", file=sys.stderr)
        return 2

    config: dict = {"backend": args.backend, "network": args.network}
    if args.image:
        config["image"] = args.image

    outcomes: list[StepOutcome] = []
    try:
        with Client(args.bridge) as client, client.create(**config) as sb:
            print(f"sandbox {sb.id}: backend={sb.backend} isolation={sb.info.isolation} workdir={sb.workdir}")
            if sb.info.fallback_reason:
                print(f"WARNING: fell back to {sb.backend}: {sb.info.fallback_reason}", file=sys.stderr)
            sb.refresh_from_host(args.dir, WORKSPACE, exclude=EXCLUDE)
            sb.set_workdir(WORKSPACE)
            steps = ([("install", args.install)] if args.install else []) + [("test", args.test)]
            for name, command in steps:
                if outcomes and not outcomes[-1].passed:
                    outcomes.append(StepOutcome(name, "skipped", None, None, ""))
                    continue
                outcomes.append(run_step(sb, name, command, args.timeout_ms))
    except SandboxError as e:
        print(f"error: {e}", file=sys.stderr)
        if outcomes:
            print_table(outcomes)
        return 2

    print()
    print_table(outcomes)
    ok = all(o.passed for o in outcomes)
    print(f"\nverdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
