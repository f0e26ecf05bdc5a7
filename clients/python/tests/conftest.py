"""Shared fixtures of the pytest suite: the bridge binary, skip-or-fail rules, clients per backend.

Run with ``bash scripts/python-test.sh`` from the repository root (it builds the bridge, makes the
venv and runs pytest). The bridge is ``$DAGGER_SANDBOX_BRIDGE`` or the repository's
``target/debug/dagger-sandbox-bridge``. The sandbox suites run once on the ``local`` backend and
once on ``docker`` (image ``dagger-sandbox-test/busybox:latest``, built by ``scripts/engine.sh``)
when the bridge reports Docker available; otherwise the Docker half is skipped with the reason.
``DAGGER_SANDBOX_REQUIRE_DOCKER=1`` turns a missing bridge, engine or image into a failure, so CI
cannot pass by skipping.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from dagger_sandbox import ERROR_CLASSES, BridgeNotFoundError, Client, Sandbox, SandboxError, find_bridge

REQUIRE_DOCKER = os.environ.get("DAGGER_SANDBOX_REQUIRE_DOCKER") == "1"
DOCKER_IMAGE = "dagger-sandbox-test/busybox:latest"
REPO = Path(__file__).resolve().parents[3]


def _bridge() -> Optional[Path]:
    try:
        return find_bridge()
    except BridgeNotFoundError:
        return None


BRIDGE = _bridge()


@pytest.fixture(scope="session")
def bridge() -> Path:
    """The bridge binary; its absence skips (or fails, under DAGGER_SANDBOX_REQUIRE_DOCKER=1)."""
    if BRIDGE is None:
        msg = "dagger-sandbox-bridge not found: `cargo build -p dagger-sandbox-bridge` or set DAGGER_SANDBOX_BRIDGE"
        if REQUIRE_DOCKER:
            pytest.fail(msg)
        pytest.skip(msg)
    return BRIDGE


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the bridges' stderr logs go."""
    return tmp_path_factory.mktemp("bridge-logs")


@pytest.fixture(scope="session")
def new_client(bridge: Path, log_dir: Path) -> Callable[..., Client]:
    """``new_client(name, **kw)``: a client whose bridge logs go to a file of its own."""

    def make(name: str, **kw: Any) -> Client:
        kw.setdefault("request_timeout", 120.0)
        return Client(bridge, stderr=log_dir / f"bridge-{name}-{time.monotonic_ns()}.log", **kw)

    return make


def docker_skip_reason(client: Client) -> Optional[str]:
    """Why the docker backend cannot run the suite here, or ``None``."""
    info = client.backend("docker")
    if info is None or not info.available:
        return f"docker backend not available: {info.detail if info else 'not reported by initialize'}"
    if shutil.which("docker"):
        p = subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE], capture_output=True, timeout=30)
        if p.returncode != 0:
            return f"image {DOCKER_IMAGE} missing: run `bash scripts/engine.sh --no-node`"
    return None


def skip_or_fail(reason: str) -> None:
    """Skips with ``reason``, or fails under DAGGER_SANDBOX_REQUIRE_DOCKER=1."""
    if REQUIRE_DOCKER:
        pytest.fail(f"DAGGER_SANDBOX_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


BACKENDS = {
    "local": ("process", {"backend": "local"}),
    "docker": ("container", {"backend": "docker", "image": DOCKER_IMAGE}),
}


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend_client(request: pytest.FixtureRequest, new_client: Callable[..., Client]) -> Iterator[tuple[str, Client]]:
    """``(backend, client)`` once per backend, shared by a test module; Docker missing skips."""
    name: str = request.param
    tap: "collections.deque[tuple[Any, ...]]" = collections.deque(maxlen=100_000)

    def on_message(m: dict[str, Any]) -> None:
        if m.get("method") == "exec/output":
            p = m.get("params", {})
            tap.append(("output", p.get("execId"), p.get("requestId")))
        elif "id" in m:
            r = m.get("result")
            tap.append(("response", m["id"], r.get("execId") if isinstance(r, dict) else None))

    client = new_client(name, on_message=on_message)
    client.tap = tap  # type: ignore[attr-defined]  # what the bridge wrote, for wire-order tests
    try:
        if name == "docker":
            reason = docker_skip_reason(client)
            if reason:
                skip_or_fail(reason)
        yield name, client
    finally:
        client.close()


@pytest.fixture(scope="module")
def docker_client(new_client: Callable[..., Client]) -> Iterator[Client]:
    """A client whose docker backend works (else skip or fail)."""
    client = new_client("docker-only")
    try:
        reason = docker_skip_reason(client)
        if reason:
            skip_or_fail(reason)
        yield client
    finally:
        client.close()


def close_quietly(sb: Sandbox) -> None:
    """Closes a sandbox, ignoring errors (cleanup of tests that may have closed it already)."""
    try:
        sb.close()
    except SandboxError:
        pass


def drain(q: Any) -> list[Any]:
    """Everything queued in ``q`` right now."""
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except Exception:
            return out


def assert_error(code: str, fn: Callable[[], Any], rpc_code: Optional[int] = None) -> SandboxError:
    """Calls ``fn`` and checks it raises the SandboxError subclass of ``code`` (and ``rpc_code``,
    when given: the JSON-RPC code the bridge answered with)."""
    try:
        fn()
    except SandboxError as e:
        assert e.code == code, str(e)
        assert type(e) is ERROR_CLASSES.get(code, SandboxError), f"{type(e).__name__} for {code}"
        if rpc_code is not None:
            assert e.rpc_code == rpc_code, str(e)
        return e
    raise AssertionError(f"expected SandboxError {code}, got no error")


def docker_containers(label: str) -> list[str]:
    """Ids of containers (running or not) with the given ``key=value`` label."""
    p = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, timeout=30)
    return p.stdout.split()


class SandboxSuite:
    """Base of the test classes that run once per backend: gives ``self.client``, ``self.BACKEND``,
    ``self.ISOLATION``, ``self.CREATE``, ``self.tmp`` and ``self.sandbox(**config)`` (closed after
    the test), and checks after each test that the client is still healthy."""

    client: Client
    BACKEND: str
    ISOLATION: str
    CREATE: dict[str, Any]
    tmp: Path

    @pytest.fixture(autouse=True)
    def _suite(self, backend_client: tuple[str, Client], tmp_path: Path) -> Iterator[None]:
        self.BACKEND, self.client = backend_client
        self.ISOLATION, self.CREATE = BACKENDS[self.BACKEND]
        self.tmp = tmp_path
        self.tap = self.client.tap  # type: ignore[attr-defined]
        self._made: list[Sandbox] = []
        yield
        for sb in self._made:
            close_quietly(sb)
        assert self.client.alive, f"the client died during the test: {self.client.stderr_tail}"
        assert drain(self.client.unmatched) == [], "messages that matched no request"

    def sandbox(self, **kw: Any) -> Sandbox:
        """A sandbox of this backend, closed after the test."""
        sb = self.client.create(**{**self.CREATE, **kw})
        self._made.append(sb)
        return sb
