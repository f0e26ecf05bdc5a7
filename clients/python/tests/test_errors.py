"""Typed errors, and a bridge that is missing, cannot start, dies mid-call, answers garbage or never
answers: each gives a typed error naming what happened (with the bridge's stderr), never a hang.
Also: closing a client closes its sandboxes."""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import DOCKER_IMAGE, docker_containers

import dagger_sandbox
from dagger_sandbox import (
    ERROR_CLASSES,
    BridgeError,
    BridgeExitedError,
    BridgeNotFoundError,
    BridgeProtocolError,
    BridgeStartError,
    Client,
    ClientTimeoutError,
    ClosedError,
    InvalidParamsError,
    NotFoundError,
    SandboxError,
)

#: The stable codes docs/bridge-protocol.md lists for error.data.code.
DOC_CODES = [
    "ENGINE_UNAVAILABLE",
    "TIMEOUT",
    "NOT_FOUND",
    "RESTRICTED_PATH",
    "INVALID_PATH",
    "INVALID_ARGUMENT",
    "CLOSED",
    "CANCELLED",
    "ENGINE_ERROR",
    "IO_ERROR",
    "STOPPED",
]


def test_every_documented_code_has_its_own_exception_class() -> None:
    for code in DOC_CODES:
        cls = ERROR_CLASSES[code]
        assert cls.CODE == code and issubclass(cls, SandboxError)
        err = dagger_sandbox.errors.error_from_wire({"code": -32000, "message": "m", "data": {"code": code}})
        assert type(err) is cls and (err.code, err.message, err.data) == (code, "m", {"code": code})
    assert len({ERROR_CLASSES[c] for c in DOC_CODES}) == len(DOC_CODES)
    # Every exported exception class is reachable from the package and carries its code.
    for name in dagger_sandbox.__all__:
        obj = getattr(dagger_sandbox, name)
        if isinstance(obj, type) and issubclass(obj, SandboxError):
            assert obj.CODE.isupper(), name


def test_bridge_errors_carry_code_message_and_data(new_client: Callable[..., Client]) -> None:
    with new_client("typed") as c:
        with pytest.raises(NotFoundError) as nf:
            c.request("sandbox/readFile", {"sandboxId": "sbx-000000000000", "path": "x"})
        assert (nf.value.code, nf.value.rpc_code, nf.value.data) == ("NOT_FOUND", -32000, {"code": "NOT_FOUND"})
        assert "sbx-000000000000" in nf.value.message
        with pytest.raises(InvalidParamsError) as ip:
            c.create(backend="local", no_such_key=1)
        assert ip.value.code == "INVALID_PARAMS" and "noSuchKey" in ip.value.message


# ---- a bridge that cannot be found or started -----------------------------------------------------


def test_missing_bridge_is_bridge_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BridgeNotFoundError) as e:
        Client(tmp_path / "no-such-bridge")
    assert str(tmp_path / "no-such-bridge") in e.value.message and e.value.code == "BRIDGE_NOT_FOUND"
    monkeypatch.setenv("DAGGER_SANDBOX_BRIDGE", str(tmp_path / "also-missing"))
    with pytest.raises(BridgeNotFoundError) as e:
        Client()
    assert "$DAGGER_SANDBOX_BRIDGE" in e.value.message and "also-missing" in e.value.message


def test_bridge_that_cannot_start_is_bridge_start_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "bridge-no-x"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(BridgeStartError) as e:
        Client(not_executable)
    assert "Permission denied" in e.value.message and str(not_executable) in e.value.message
    garbage = tmp_path / "bridge-garbage"
    garbage.write_bytes(b"\x00\x01 not a program")
    garbage.chmod(0o755)
    with pytest.raises(BridgeStartError) as e:
        Client(garbage)
    assert "Exec format error" in e.value.message


def test_bridge_that_exits_at_start_quotes_its_stderr(bridge: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BridgeExitedError) as e:
        Client(bridge, args=["--no-such-flag"])
    assert time.monotonic() - started < 10
    assert "exited with status 1" in e.value.message
    assert 'unknown argument "--no-such-flag"' in e.value.stderr_tail
    assert 'unknown argument "--no-such-flag"' in str(e.value)


# ---- a bridge that dies mid-call --------------------------------------------------------------------


def test_bridge_killed_mid_call_fails_the_call_and_later_ones(bridge: Path, tmp_path: Path) -> None:
    c = Client(bridge, env={"TMPDIR": str(tmp_path), "DAGGER_SANDBOX_LOG": "info"})
    try:
        sb = c.create(backend="local")
        errors: list[BaseException] = []

        def run() -> None:
            try:
                sb.exec("sleep 30")
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.5)
        started = time.monotonic()
        os.kill(c.pid, signal.SIGKILL)  # our own child, by pid
        t.join(timeout=15)
        assert not t.is_alive(), "the call hung after the bridge died"
        assert time.monotonic() - started < 10
        [err] = errors
        assert isinstance(err, BridgeExitedError) and err.code == "BRIDGE_EXITED"
        assert "sandbox/exec" in err.message and "was killed by signal 9 (SIGKILL)" in err.message
        assert err.returncode == -signal.SIGKILL
        with pytest.raises(BridgeExitedError):
            sb.read_file("x")
        with pytest.raises(BridgeExitedError):
            c.create(backend="local")
    finally:
        started = time.monotonic()
        c.close()
        assert time.monotonic() - started < 10
    assert sb.closed


# ---- a bridge that answers garbage or nothing ---------------------------------------------------------

FAKE_BRIDGE = """#!{python}
# A stand-in for dagger-sandbox-bridge that misbehaves on purpose: MODE says how.
import json, sys, time
mode = {mode!r}
print("fake bridge: starting in mode " + mode, file=sys.stderr, flush=True)
for n, line in enumerate(sys.stdin):
    msg = json.loads(line)
    if mode == "silent":
        continue
    if mode == "garbage-at-once" or (mode == "garbage-later" and n > 0):
        print("fake bridge: about to write garbage", file=sys.stderr, flush=True)
        sys.stdout.write("this is not json at all\\n")
        sys.stdout.flush()
        time.sleep(60)
    version = "99" if mode == "wrong-version" else "1"
    result = {{"protocolVersion": version, "serverInfo": {{"name": "fake", "version": "0"}}, "backends": [], "capabilities": {{}}}}
    sys.stdout.write(json.dumps({{"jsonrpc": "2.0", "id": msg["id"], "result": result}}) + "\\n")
    sys.stdout.flush()
"""


def fake_bridge(tmp_path: Path, mode: str) -> Path:
    """A misbehaving bridge script (``garbage-at-once``, ``garbage-later``, ``silent``, ``wrong-version``)."""
    p = tmp_path / f"fake-bridge-{mode}"
    p.write_text(FAKE_BRIDGE.format(python=sys.executable, mode=mode))
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def test_garbage_at_start_is_a_protocol_error_with_stderr(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BridgeProtocolError) as e:
        Client(fake_bridge(tmp_path, "garbage-at-once"))
    assert time.monotonic() - started < 10, "the garbage must end the connection, not wait for the sleeping fake"
    assert e.value.code == "PROTOCOL_ERROR"
    assert "not JSON" in e.value.message and "this is not json at all" in e.value.message
    assert "fake bridge: about to write garbage" in e.value.stderr_tail


def test_garbage_mid_session_fails_the_call_and_drops_the_connection(tmp_path: Path) -> None:
    c = Client(fake_bridge(tmp_path, "garbage-later"))
    try:
        started = time.monotonic()
        with pytest.raises(BridgeProtocolError) as e:
            c.create(backend="local")
        assert time.monotonic() - started < 10
        assert "sandbox/create" in e.value.message and "this is not json at all" in e.value.message
        assert "about to write garbage" in e.value.stderr_tail
        assert not c.alive
        with pytest.raises(BridgeProtocolError):
            c.create(backend="local")
    finally:
        c.close()


def test_unsupported_protocol_version_is_a_protocol_error(tmp_path: Path) -> None:
    with pytest.raises(BridgeProtocolError) as e:
        Client(fake_bridge(tmp_path, "wrong-version"))
    assert "'99'" in e.value.message


def test_a_bridge_that_never_answers_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ClientTimeoutError) as e:
        Client(fake_bridge(tmp_path, "silent"), startup_timeout=1.0, cancel_grace=0.5)
    assert time.monotonic() - started < 10
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, BridgeError)
    assert "initialize" in e.value.message and "starting in mode silent" in e.value.stderr_tail


# ---- closing a client closes its sandboxes ------------------------------------------------------------


def test_closing_the_client_closes_its_sandboxes(docker_client: Client, new_client: Callable[..., Client]) -> None:
    c = new_client("close-all")
    sbs = [c.create(backend="docker", image=DOCKER_IMAGE) for _ in range(3)]
    sbs.append(sbs[0].fork())
    for sb in sbs:
        sb.write_file("x.txt", "1")
        assert docker_containers(f"dev.dagger-sandbox.sandbox={sb.id}"), sb.id
    assert {s.id for s in c.sandboxes} == {s.id for s in sbs}
    assert c.close() == 0
    for sb in sbs:
        assert sb.closed
        assert docker_containers(f"dev.dagger-sandbox.sandbox={sb.id}") == [], f"{sb.id} outlived its client"
        with pytest.raises(ClosedError):
            sb.read_file("x.txt")
    assert c.sandboxes == []
    with pytest.raises(BridgeExitedError):
        c.create(backend="local")


def test_sandbox_close_forgets_it_and_context_manager_of_client(new_client: Callable[..., Any]) -> None:
    with new_client("ctx") as c:
        a, b = c.create(backend="local"), c.create(backend="local")
        a.close()
        assert [s.id for s in c.sandboxes] == [b.id]
    assert b.closed and not c.alive and c.returncode == 0
