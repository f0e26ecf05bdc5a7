"""Durable sandboxes through the real bridge: stop and resume, and a persistent sandbox reached by
id from another client (another bridge process) through the daemon."""

import json
import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

from dagger_sandbox import Client, NotFoundError, StoppedError

from conftest import DOCKER_IMAGE as BUSYBOX, assert_error, docker_containers


def test_a_stopped_sandbox_raises_stopped_and_resumes_with_its_files(docker_client: Client) -> None:
    with docker_client.create(backend="docker", image=BUSYBOX) as sb:
        sb.write_file("kept.txt", "kept")
        sb.stop()
        with pytest.raises(StoppedError):
            sb.exec("true")
        sb.resume()
        assert sb.exec("cat kept.txt").stdout == "kept"


def test_a_persistent_sandbox_outlives_its_client_and_is_reached_by_id(
    docker_client: Client, new_client: Callable[..., Client], bridge: Path, tmp_path: Path
) -> None:
    cli = bridge.with_name("dagger-sandbox")
    if not cli.exists():
        pytest.skip(f"{cli} is missing: cargo build -p dagger-sandbox-cli")
    state = tmp_path / "state"
    env: dict[str, Any] = {"DAGGER_SANDBOX_BIN": str(cli), "DAGGER_SANDBOX_STATE_DIR": str(state)}
    try:
        first = new_client("persistent-1", env=env)
        sb = first.create(backend="docker", image=BUSYBOX, persistent=True)
        sb.write_file("note.txt", "from the first client")
        sid = sb.id
        first.close()  # the bridge exits; the sandbox stays with the daemon
        assert len(docker_containers(f"dev.dagger-sandbox.sandbox={sid}")) == 1
        second = new_client("persistent-2", env=env)
        try:
            back = second.connect(sid)
            assert back.exec("cat note.txt").stdout == "from the first client"
            back.close(delete=True)
            assert docker_containers(f"dev.dagger-sandbox.sandbox={sid}") == []
            assert_error("NOT_FOUND", lambda: second.connect("sbx-000000000000"))
            with pytest.raises(NotFoundError):
                second.connect("sbx-000000000000")
        finally:
            second.close()
    finally:
        info = state / "daemon.json"
        if info.exists():
            os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)
