"""The asyncio client against the real bridge: the API, streaming, task cancellation mapped to
``$/cancelRequest``, many sandboxes on one bridge, a dying or garbage-writing bridge, and close."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any, Coroutine

import pytest
from conftest import BACKENDS, DOCKER_IMAGE, docker_containers
from test_errors import fake_bridge

from dagger_sandbox import (
    AsyncClient,
    BridgeExitedError,
    BridgeNotFoundError,
    BridgeProtocolError,
    Client,
    ClientTimeoutError,
    ClosedError,
    DirEntry,
    InvalidArgumentError,
    NotFoundError,
    OutputChunk,
    SandboxTimeoutError,
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Runs one test body on a fresh event loop (no pytest plugin needed)."""
    return asyncio.run(coro)


@pytest.fixture
def backend(backend_client: tuple[str, Client], bridge: Path, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """``(name, create config)`` per backend (Docker missing: skipped or failed by backend_client)."""
    name, _ = backend_client
    return name, dict(BACKENDS[name][1])


def new_async(bridge: Path, tmp_path: Path, **kw: Any) -> AsyncClient:
    kw.setdefault("request_timeout", 120.0)
    return AsyncClient(bridge, stderr=tmp_path / f"bridge-{time.monotonic_ns()}.log", **kw)


def test_async_api_round_trip(backend: tuple[str, dict[str, Any]], bridge: Path, tmp_path: Path) -> None:
    name, create = backend

    async def body() -> None:
        async with new_async(bridge, tmp_path) as c:
            assert c.backend_available("local") and c.protocol_version == "1"
            async with c.create(**create) as sb:
                assert (sb.backend, sb.workdir) == (name, "/workspace")
                await sb.write_file("a/b.txt", "héllo")
                await sb.write_file("bin.dat", bytes(range(256)), mode=0o600)
                assert await sb.write_files({"m/1.txt": "1", "m/2.txt": b"\x00\x01"}) == 2
                assert await sb.read_file("a/b.txt") == "héllo"
                assert await sb.read_bytes("bin.dat") == bytes(range(256))
                assert await sb.list_directory("m") == [DirEntry("1.txt", "file", 1), DirEntry("2.txt", "file", 2)]
                assert await sb.exists("a/b.txt") and not await sb.exists("a/zz")
                r = await sb.exec("cat a/b.txt; echo err >&2; exit 4", stdin="ignored")
                assert (r.exit_code, r.stdout, r.stderr, r.ok) == (4, "héllo", "err\n", False)
                assert await sb.set_workdir("w") == "/workspace/w"
                await sb.with_env(ROLE="parent")
                fk = await sb.fork()
                assert ((await fk.exec('printf %s "$ROLE"')).stdout, fk.workdir) == ("parent", "/workspace/w")
                await fk.write_file("only-fork", "f")
                with pytest.raises(NotFoundError):
                    await sb.read_file("only-fork")
                await fk.close()
                with pytest.raises(ClosedError):
                    await fk.read_file("only-fork")
                await sb.delete_file("/workspace/a")
                assert not await sb.exists("/workspace/a/b.txt")
                with pytest.raises(InvalidArgumentError):
                    await sb.read_file("/workspace/bin.dat")
                host = tmp_path / "host"
                (host / "src").mkdir(parents=True)
                (host / "src" / "i.js").write_text("1")
                (host / "node_modules").mkdir()
                await sb.refresh_from_host(host, "/workspace/p", exclude=["node_modules"])
                assert [e.name for e in await sb.list_directory("/workspace/p")] == ["src"]
                await sb.export_directory("/workspace/p", tmp_path / "out")
                assert (tmp_path / "out" / "src" / "i.js").read_text() == "1"
            assert sb.closed

    run(body())


def test_exec_stream_yields_output_while_the_command_runs(backend: tuple[str, dict[str, Any]], bridge: Path, tmp_path: Path) -> None:
    _, create = backend

    async def body() -> None:
        async with new_async(bridge, tmp_path) as c, c.create(**create) as sb:
            seen: list[tuple[float, OutputChunk]] = []
            async with sb.exec_stream("echo first; sleep 1; echo second; echo err >&2") as out:
                async for chunk in out:
                    seen.append((time.monotonic(), chunk))
            done = time.monotonic()
            assert out.result is not None and out.result.exit_code == 0
            assert "".join(ch.data for _, ch in seen if ch.stream == "stdout") == out.result.stdout == "first\nsecond\n"
            assert "".join(ch.data for _, ch in seen if ch.stream == "stderr") == "err\n"
            assert done - seen[0][0] > 0.5, "the first chunk must arrive while the command still runs"
            # A coroutine callback is awaited in order.
            got: list[str] = []

            async def on_output(stream: str, text: str) -> None:
                await asyncio.sleep(0)
                got.append(text)

            r = await sb.exec("for i in 1 2 3; do echo $i; done", on_output=on_output)
            assert "".join(got) == r.stdout == "1\n2\n3\n"
            # An error of the command is raised by the iteration, with the output so far.
            with pytest.raises(SandboxTimeoutError) as e:
                await sb.exec_stream("echo partial; sleep 30", timeout_ms=1000).wait()
            assert e.value.partial is not None and e.value.partial.stdout == "partial\n"

    run(body())


def test_task_cancel_sends_cancel_request_and_kills_the_command(backend: tuple[str, dict[str, Any]], bridge: Path, tmp_path: Path) -> None:
    _, create = backend
    answers: list[dict[str, Any]] = []

    async def body() -> None:
        async with new_async(bridge, tmp_path, on_message=answers.append) as c, c.create(**create) as sb:
            started = time.monotonic()
            task = asyncio.create_task(sb.exec("echo go; sleep 2; touch late; sleep 30"))
            await asyncio.sleep(0.7)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # wait_for and a stream left early cancel the same way.
            with pytest.raises(asyncio.TimeoutError):  # the builtin TimeoutError from 3.11 on
                await asyncio.wait_for(sb.exec("sleep 2; touch late2; sleep 30"), 0.5)
            async with sb.exec_stream("echo s; sleep 2; touch late3; sleep 30") as out:
                async for _ in out:
                    break
            await asyncio.sleep(max(0.0, started + 4.0 - time.monotonic()))
            assert (await sb.exec("ls late late2 late3 2>&1 | grep -c 'No such'")).stdout == "3\n", "cancelled commands must be killed"
            # The client-side timeout: cancel, then a typed TimeoutError.
            with pytest.raises(ClientTimeoutError) as e:
                await sb.exec("sleep 30", timeout=0.5)
            assert isinstance(e.value, TimeoutError)
            assert (await sb.exec("echo alive")).stdout == "alive\n"
        cancelled = [m for m in answers if m.get("error", {}).get("code") == -32800]
        assert len(cancelled) == 4, "the bridge must have answered each $/cancelRequest with -32800"

    run(body())


def test_many_sandboxes_and_tasks_share_one_bridge(backend: tuple[str, dict[str, Any]], bridge: Path, tmp_path: Path) -> None:
    _, create = backend

    async def body() -> None:
        async with new_async(bridge, tmp_path) as c:
            sbs = await asyncio.gather(*(c.create(**create) for _ in range(5)))
            assert len({s.id for s in sbs}) == 5 and len(c.sandboxes) == 5

            async def job(i: int) -> str:
                sb = sbs[i % 5]
                if i % 2:
                    await sb.write_file(f"f{i}", f"content {i}")
                    return await sb.read_file(f"f{i}")
                return (await sb.exec(f"echo job{i}")).stdout

            results = await asyncio.gather(*(job(i) for i in range(50)))
            assert results == [f"content {i}" if i % 2 else f"job{i}\n" for i in range(50)]
            pid = c.pid
        assert all(s.closed for s in sbs) and c.returncode == 0 and pid > 0

    run(body())


def test_async_close_closes_its_sandboxes(docker_client: Client, bridge: Path, tmp_path: Path) -> None:
    async def body() -> None:
        c = await new_async(bridge, tmp_path).start()
        sbs = [await c.create(backend="docker", image=DOCKER_IMAGE) for _ in range(2)]
        sbs.append(await sbs[0].fork())
        for sb in sbs:
            assert docker_containers(f"dev.dagger-sandbox.sandbox={sb.id}")
        assert await c.close() == 0
        for sb in sbs:
            assert sb.closed
            assert docker_containers(f"dev.dagger-sandbox.sandbox={sb.id}") == [], f"{sb.id} outlived its client"
            with pytest.raises(ClosedError):
                await sb.exec("true")

    run(body())


def test_async_bad_bridges(bridge: Path, tmp_path: Path) -> None:
    async def body() -> None:
        with pytest.raises(BridgeNotFoundError):
            await AsyncClient(tmp_path / "missing").start()
        with pytest.raises(BridgeExitedError) as ex:
            await AsyncClient(bridge, args=["--no-such-flag"]).start()
        assert "unknown argument" in ex.value.stderr_tail
        with pytest.raises(BridgeProtocolError) as pe:
            await AsyncClient(fake_bridge(tmp_path, "garbage-at-once")).start()
        assert "this is not json at all" in pe.value.message and "about to write garbage" in pe.value.stderr_tail
        with pytest.raises(ClientTimeoutError):
            await AsyncClient(fake_bridge(tmp_path, "silent"), startup_timeout=0.5, cancel_grace=0.5).start()
        # Killed mid-call: the pending call and later ones fail, naming the signal.
        async with new_async(bridge, tmp_path, env={"TMPDIR": str(tmp_path)}) as c:
            sb = await c.create(backend="local")
            task = asyncio.create_task(sb.exec("sleep 30"))
            await asyncio.sleep(0.5)
            os.kill(c.pid, signal.SIGKILL)  # our own child, by pid
            with pytest.raises(BridgeExitedError) as de:
                await asyncio.wait_for(task, 10)
            assert "was killed by signal 9 (SIGKILL)" in de.value.message
            with pytest.raises(BridgeExitedError):
                await sb.read_file("x")

    started = time.monotonic()
    run(body())
    assert time.monotonic() - started < 30


def test_async_calls_need_a_started_client(bridge: Path) -> None:
    async def body() -> None:
        c = AsyncClient(bridge)
        with pytest.raises(BridgeExitedError) as e:
            await c.request("sandbox/readFile", {"sandboxId": "x", "path": "y"})
        assert "not started" in e.value.message
        await c.close()

    run(body())
