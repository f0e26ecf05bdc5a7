"""Snapshots through the real bridge, on local and docker: take one, change the sandbox, start a
sandbox from it and find the old files, env and workdir; list, inspect, delete; typed errors; and
the async client the same way."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from dagger_sandbox import Client, InvalidArgumentError, NotFoundError, Snapshot
from dagger_sandbox.aio import AsyncClient

from conftest import BACKENDS, DOCKER_IMAGE, docker_skip_reason, skip_or_fail


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_snapshot_restores_files_env_and_workdir(backend: str, new_client: Callable[..., Client], tmp_path: Path) -> None:
    client = new_client(f"snap-{backend}", env={"DAGGER_SANDBOX_SNAPSHOT_DIR": str(tmp_path)})
    try:
        if backend == "docker" and (reason := docker_skip_reason(client)):
            skip_or_fail(reason)
        _, config = BACKENDS[backend]
        sb = client.create(config)
        sb.write_files({"a.txt": "v1", "app/b.txt": "b"})
        sb.set_workdir("app")
        sb.with_env(MODE="snap", SVC_PASSWORD="pw-value")
        name = f"py-{backend}-{os.getpid()}"
        snap = sb.snapshot(name)
        assert isinstance(snap, Snapshot)
        assert (snap.name, snap.backend, snap.workdir, snap.source) == (name, backend, "/workspace/app", sb.id)
        assert dict(snap.env) == {"MODE": "snap"} and snap.secret_env == ("SVC_PASSWORD",)
        assert snap.size and snap.size > 0
        sb.write_file("/workspace/a.txt", "v2")
        sb.delete_file("b.txt")

        restored = client.create_from_snapshot(name, env={"SVC_PASSWORD": "given"})
        assert restored.backend == backend and restored.workdir == "/workspace/app"
        assert restored.read_file("/workspace/a.txt") == "v1"
        assert restored.read_file("b.txt") == "b"
        assert restored.exec('echo "$MODE $SVC_PASSWORD"').stdout == "snap given\n"
        assert sb.read_file("/workspace/a.txt") == "v2"

        assert any(s.id == snap.id for s in client.list_snapshots())
        assert client.inspect_snapshot(name).id == snap.id
        with pytest.raises(InvalidArgumentError):
            sb.snapshot(name)
        with pytest.raises(InvalidArgumentError):
            client.create_from_snapshot(name, image=DOCKER_IMAGE)
        assert client.delete_snapshot(snap.id).id == snap.id
        with pytest.raises(NotFoundError):
            client.inspect_snapshot(snap.id)
        with pytest.raises(NotFoundError):
            client.create_from_snapshot(name)
        restored.close()
        sb.close()
    finally:
        client.close()
    assert list(tmp_path.iterdir()) == [], "nothing left in the snapshots directory"


def test_the_async_client_takes_restores_and_deletes(bridge: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncClient(bridge, env={"DAGGER_SANDBOX_SNAPSHOT_DIR": str(tmp_path)}) as client:
            async with client.create(backend="local") as sb:
                await sb.write_file("x.txt", "kept")
                snap = await sb.snapshot()
                assert snap.name is None
                async with client.create_from_snapshot(snap.id) as again:
                    assert await again.read_file("x.txt") == "kept"
                assert [s.id for s in await client.list_snapshots() if s.id == snap.id] == [snap.id]
                assert (await client.inspect_snapshot(snap.id)).id == snap.id
                assert (await client.delete_snapshot(snap.id)).id == snap.id

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []
