"""Shared fixtures of the bridge test modules (binary, skip-or-fail rules, clients, base classes); not collected.

Run from the repository root::

    python3 -m unittest discover -s examples/python -v

The bridge is ``$DAGGER_SANDBOX_BRIDGE`` or ``target/debug/dagger-sandbox-bridge``; without it
every test module is skipped (``cargo build -p dagger-sandbox-bridge`` first). The sandbox suites
run once on the ``local`` backend and once on ``docker`` (image
``dagger-sandbox-test/busybox:latest``, built by ``scripts/engine.sh``) when ``initialize`` reports
Docker available; otherwise the Docker half is skipped with the reason.
``DAGGER_SANDBOX_REQUIRE_DOCKER=1`` turns a missing bridge, engine or image into a failure, so CI
cannot pass by skipping.

Each test module calls :func:`remove_log_dir` from its ``tearDownModule``.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dagger_sandbox_client import (  # noqa: E402
    BridgeClient,
    Sandbox,
    SandboxError,
    default_bridge_path,
)

BRIDGE = default_bridge_path()
REQUIRE_DOCKER = os.environ.get("DAGGER_SANDBOX_REQUIRE_DOCKER") == "1"
DOCKER_IMAGE = "dagger-sandbox-test/busybox:latest"

if not BRIDGE.exists() and not REQUIRE_DOCKER:
    raise unittest.SkipTest(
        f"SKIPPED: dagger-sandbox-bridge not found at {BRIDGE}; build it with "
        "`cargo build -p dagger-sandbox-bridge` or set DAGGER_SANDBOX_BRIDGE"
    )

_log_dir: Optional[Path] = None


def log_dir() -> Path:
    """A private temporary directory for bridge logs, made on first use (and again after
    :func:`remove_log_dir`, since the next test module needs one too)."""
    global _log_dir
    if _log_dir is None:
        _log_dir = Path(tempfile.mkdtemp(prefix="dagger-sandbox-pytest-"))
    return _log_dir


def remove_log_dir() -> None:
    """Removes the log directory (each test module calls it from ``tearDownModule``)."""
    global _log_dir
    if _log_dir is not None:
        shutil.rmtree(_log_dir, ignore_errors=True)
        _log_dir = None


def new_client(name: str, **kw: Any) -> BridgeClient:
    """A client whose bridge logs go to a file (quoted in errors if the bridge dies)."""
    kw.setdefault("request_timeout", 120.0)
    return BridgeClient(BRIDGE, stderr=log_dir() / f"bridge-{name}-{time.monotonic_ns()}.log", **kw)


def close_quietly(sb: Sandbox) -> None:
    try:
        sb.close()
    except SandboxError:
        pass


def drain(q: "Any") -> list:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except Exception:
            return out


class SandboxSuite:
    """Fixtures of the sandbox API tests, which run once per backend: a mixin of test methods
    subclasses this, and each concrete ``unittest.TestCase`` combines it with :class:`LocalBackend`
    or :class:`DockerBackend`."""

    BACKEND = ""
    ISOLATION = ""
    CREATE: dict = {}
    client: BridgeClient
    tap: "collections.deque[tuple]"

    # unittest.TestCase methods, for type checkers
    assertEqual: Callable[..., None]
    assertTrue: Callable[..., None]
    assertIn: Callable[..., None]
    addCleanup: Callable[..., None]

    @classmethod
    def setUpClass(cls) -> None:
        tap: "collections.deque[tuple]" = collections.deque(maxlen=100_000)
        cls.tap = tap

        def on_message(m: dict) -> None:
            if m.get("method") == "exec/output":
                p = m.get("params", {})
                tap.append(("output", p.get("execId"), p.get("requestId")))
            elif "id" in m:
                r = m.get("result")
                tap.append(("response", m["id"], r.get("execId") if isinstance(r, dict) else None))

        cls.client = new_client(cls.BACKEND, on_message=on_message)
        cls.addClassCleanup(cls.client.close)
        cls.check_backend()

    @classmethod
    def check_backend(cls) -> None:
        pass

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"sbx-{self.BACKEND}-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def tearDown(self) -> None:
        self.assertEqual(self.client.protocol_violations, [], "the bridge wrote non-protocol lines to stdout")
        self.assertEqual(drain(self.client.unmatched), [], "messages that matched no request")

    def sandbox(self, **kw: Any) -> Sandbox:
        sb = self.client.create(**{**self.CREATE, **kw})
        self.addCleanup(close_quietly, sb)
        return sb

    def assert_error(self, code: str, fn: Callable[[], Any], rpc_code: int = -32000) -> SandboxError:
        try:
            fn()
        except SandboxError as e:
            self.assertEqual((e.code, e.rpc_code), (code, rpc_code), str(e))
            return e
        raise AssertionError(f"expected SandboxError {code}, got no error")


class LocalBackend(SandboxSuite):
    """The ``local`` backend (always available)."""

    BACKEND = "local"
    ISOLATION = "process"
    CREATE = {"backend": "local"}


class DockerBackend(SandboxSuite):
    """The ``docker`` backend with the local busybox test image; a missing engine or image skips
    the class, or fails it under ``DAGGER_SANDBOX_REQUIRE_DOCKER=1``."""

    BACKEND = "docker"
    ISOLATION = "container"
    CREATE = {"backend": "docker", "image": DOCKER_IMAGE}

    @classmethod
    def check_backend(cls) -> None:
        info = cls.client.backend("docker")
        reason = None
        if info is None or not info.available:
            reason = f"docker backend not available: {info.detail if info else 'not reported by initialize'}"
        elif shutil.which("docker"):
            p = subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE], capture_output=True, timeout=30)
            if p.returncode != 0:
                reason = f"image {DOCKER_IMAGE} missing: run `bash scripts/engine.sh --no-node`"
        if reason is None:
            return
        cls.client.close()
        if REQUIRE_DOCKER:
            raise AssertionError(f"DAGGER_SANDBOX_REQUIRE_DOCKER=1 but {reason}")
        raise unittest.SkipTest(f"SKIPPED: {reason}")
