"""The asyncio client: AsyncClient, AsyncSandbox and ExecStream, on the same protocol as the sync one.

::

    async with AsyncClient() as client:
        async with client.create(backend="docker") as sb:
            await sb.write_file("a.txt", "hi")
            async with sb.exec_stream("cat a.txt; sleep 1; echo done") as out:
                async for chunk in out:
                    print(chunk.stream, chunk.data, end="")
            print(out.result.exit_code)

Cancelling a task that awaits a call (``asyncio.wait_for``, ``asyncio.timeout``,
``task.cancel()``) sends ``$/cancelRequest``: the bridge kills the running command.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Awaitable, Callable, Generator, Mapping, Optional, Sequence, Union

from . import _wire
from ._async_transport import AsyncNotificationCallback, AsyncTransport
from ._bridge import StderrSink
from ._session import Options, SandboxBase
from .errors import NotFoundError, SandboxError
from .types import (
    CaCertificates,
    Caches,
    Content,
    DirEntry,
    ExecResult,
    OutputChunk,
    PathLike,
    SandboxInfo,
    Snapshot,
    ValidateReport,
)

#: ``callable(stream, text)`` for streamed output; may be a coroutine function (it is awaited).
AsyncOutputCallback = Callable[[str, str], Union[None, Awaitable[None]]]


class AsyncClient(AsyncTransport):
    """A connection to one ``dagger-sandbox-bridge`` process for the tasks of one event loop.

    ``async with AsyncClient(...) as client`` starts the bridge and sends ``initialize``; leaving
    the block closes every sandbox of the client and stops the bridge. Or ``client = await
    AsyncClient(...).start()`` and ``await client.close()``. The arguments are those of
    :class:`dagger_sandbox.Client`.
    """

    def __init__(
        self,
        bridge_path: Optional[PathLike] = None,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, Optional[str]]] = None,
        *,
        stderr: StderrSink = None,
        request_timeout: Optional[float] = None,
        startup_timeout: float = 30.0,
        cancel_grace: float = 15.0,
        client_name: str = "dagger-sandbox-python-asyncio",
        on_message: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> None:
        super().__init__(Options(bridge_path, args, env, stderr, request_timeout, cancel_grace, on_message))
        self._startup_timeout = startup_timeout
        self._client_name = client_name
        self._sandboxes: dict[str, AsyncSandbox] = {}

    async def start(self) -> "AsyncClient":
        """Starts the bridge and initializes the session; returns the client. Idempotent."""
        if self._proc is not None:
            return self
        await self._spawn()
        try:
            self._record_initialize(
                await self.request("initialize", _wire.initialize_params(self._client_name), timeout=self._startup_timeout)
            )
        except BaseException as e:
            await self._terminate(timeout=2)
            raise self._with_tail(e, self.returncode) from None
        return self

    def create(
        self,
        config: Optional[Mapping[str, Any]] = None,
        /,
        *,
        ca_certificates: Optional[CaCertificates] = None,
        caches: Optional[Caches] = None,
        **kwargs: Any,
    ) -> "_SandboxStart":
        """Creates a sandbox: ``sb = await client.create(...)`` or ``async with client.create(...)
        as sb`` (closed at the end of the block). Config keys as for :meth:`Client.create`."""
        params = _wire.create_params(config, {**kwargs, **_wire.typed_config(ca_certificates, caches)})
        return _SandboxStart(self._create(params))

    async def connect(self, sandbox_id: str, state_dir: Optional[str] = None, **handle: Any) -> "AsyncSandbox":
        """A handle on a sandbox the daemon owns, by id (``sandbox/connect``); see
        :meth:`Client.connect`."""
        return self._adopt(await self.request("sandbox/connect", _wire.connect_params(sandbox_id, state_dir, handle)))

    async def _create(self, params: Mapping[str, Any]) -> "AsyncSandbox":
        return self._adopt(await self.request("sandbox/create", params))

    def create_from_snapshot(
        self, reference: str, config: Optional[Mapping[str, Any]] = None, /, **kwargs: Any
    ) -> "_SandboxStart":
        """:meth:`Client.create_from_snapshot` for asyncio: awaitable, or ``async with``."""
        return _SandboxStart(self._from_snapshot(_wire.from_snapshot_params(reference, config, kwargs)))

    async def _from_snapshot(self, params: Mapping[str, Any]) -> "AsyncSandbox":
        return self._adopt(await self.request("sandbox/fromSnapshot", params))

    async def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot on the engines that answer, oldest first."""
        return [Snapshot.from_wire(s) for s in (await self.request("snapshot/list", {}))["snapshots"]]

    async def inspect_snapshot(self, reference: str) -> Snapshot:
        """The snapshot with this id or name; :class:`NotFoundError` when none has it."""
        return Snapshot.from_wire(await self.request("snapshot/inspect", {"snapshot": reference}))

    async def delete_snapshot(self, reference: str) -> Snapshot:
        """Deletes a snapshot and its data; returns what was deleted."""
        return Snapshot.from_wire(await self.request("snapshot/delete", {"snapshot": reference}))

    async def validate_project(
        self,
        project_dir: Any,
        config: Optional[Mapping[str, Any]] = None,
        /,
        *,
        install: Optional[str] = None,
        test: Optional[str] = None,
        step_timeout_ms: Optional[int] = None,
        ca_certificates: Optional[CaCertificates] = None,
        caches: Optional[Caches] = None,
        **kwargs: Any,
    ) -> ValidateReport:
        """:meth:`Client.validate_project` for asyncio; cancelling the task stops the running step
        and removes the sandbox."""
        typed = _wire.typed_config(ca_certificates, caches)
        params = _wire.validate_params(project_dir, install, test, step_timeout_ms, config, {**kwargs, **typed})
        return ValidateReport.from_wire(await self.request("project/validate", params))

    @property
    def sandboxes(self) -> list["AsyncSandbox"]:
        """The sandboxes of this client that are not closed yet."""
        return list(self._sandboxes.values())

    def _adopt(self, result: Mapping[str, Any]) -> "AsyncSandbox":
        sb = AsyncSandbox(self, SandboxInfo.from_wire(result))
        self._sandboxes[sb.id] = sb
        return sb

    async def close(self, timeout: float = 30.0) -> Optional[int]:
        """Closes every sandbox of this client and stops the bridge (``shutdown``, then waits up
        to ``timeout`` seconds, kills after that). Returns the exit status. Idempotent."""
        if self._closing or self._proc is None:
            self._closing = True
            return await self._terminate(timeout)
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._dead is None:
            try:
                await self.request("shutdown", None, timeout=timeout, allow_closing=True)
            except SandboxError:
                pass
        for sb in self.sandboxes:
            sb._mark_closed()
        return await self._terminate(max(0.5, deadline - loop.time()))

    async def __aenter__(self) -> "AsyncClient":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"<AsyncClient pid={pid} {'running' if self.alive else 'not running'}>"


class _SandboxStart:
    """The value of :meth:`AsyncClient.create`: await it, or use it with ``async with``."""

    def __init__(self, coro: Awaitable["AsyncSandbox"]) -> None:
        self._coro = coro
        self._sb: Optional[AsyncSandbox] = None

    def __await__(self) -> Generator[Any, None, "AsyncSandbox"]:
        return self._coro.__await__()

    async def __aenter__(self) -> "AsyncSandbox":
        self._sb = await self._coro
        return self._sb

    async def __aexit__(self, *exc: Any) -> None:
        if self._sb is not None:
            await self._sb.__aexit__(*exc)


class AsyncSandbox(SandboxBase[AsyncClient]):
    """One sandbox of an :class:`AsyncClient`; the methods of :class:`dagger_sandbox.Sandbox`,
    as coroutines, plus :meth:`exec_stream`. ``async with sb`` closes it at the end."""

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self.close()
        except Exception:
            if exc_type is None:
                raise

    async def _call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kw: Any) -> Any:
        return await self.client.request(method, self._params(params), **kw)

    def _mark_closed(self) -> None:
        self.closed = True
        self.client._sandboxes.pop(self.id, None)

    async def exec(
        self,
        command: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        stdin: Optional[Content] = None,
        on_output: Optional[AsyncOutputCallback] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """Runs ``sh -c command``; see :meth:`dagger_sandbox.Sandbox.exec`. ``on_output`` may be
        a coroutine function: the output waits for it."""
        params = _wire.exec_params(command, env=env, cwd=cwd, timeout_ms=timeout_ms, stdin=stdin, stream=bool(on_output))
        listener: Optional[AsyncNotificationCallback] = None
        if on_output is not None:
            cb = on_output

            def listener(p: dict[str, Any]) -> Union[None, Awaitable[None]]:
                return cb(p.get("stream", "stdout"), p.get("data", ""))

        return ExecResult.from_wire(await self._call("sandbox/exec", params, timeout=timeout, on_notification=listener))

    def exec_stream(
        self,
        command: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        stdin: Optional[Content] = None,
        buffer: int = 256,
    ) -> "ExecStream":
        """Runs ``sh -c command`` and yields its output as :class:`OutputChunk` s while it runs
        (``async with sb.exec_stream(cmd) as out: async for chunk in out``); ``out.result`` is
        the :class:`ExecResult` once the iteration ends. At most ``buffer`` chunks wait for the
        consumer; past that the bridge waits (this client's other calls too), so consume
        promptly. Leaving the block early cancels (kills) the command."""
        params = _wire.exec_params(command, env=env, cwd=cwd, timeout_ms=timeout_ms, stdin=stdin, stream=True)
        return ExecStream(self, params, buffer)

    async def write_file(self, path: str, content: Content, mode: Optional[int] = None) -> None:
        """Writes a file (parents created); see :meth:`dagger_sandbox.Sandbox.write_file`."""
        await self._call("sandbox/writeFile", _wire.write_file_params(path, content, mode))

    async def write_files(self, files: Mapping[str, Content], mode: Optional[int] = None) -> int:
        """Writes many files in one round trip (all or none); returns how many."""
        return int((await self._call("sandbox/writeFiles", _wire.write_files_params(files, mode))).get("written", 0))

    async def read_file(self, path: str) -> str:
        """Reads a UTF-8 text file."""
        return str((await self._call("sandbox/readFile", {"path": path}))["content"])

    async def read_bytes(self, path: str) -> bytes:
        """Reads a file byte-exact."""
        r = await self._call("sandbox/readFile", {"path": path, "encoding": "base64"})
        return _wire.read_bytes_result(path, r)

    async def delete_file(self, path: str) -> None:
        """Deletes a file or a directory (recursively)."""
        await self._call("sandbox/deleteFile", {"path": path})

    async def list_directory(self, path: Optional[str] = None) -> list[DirEntry]:
        """The entries of a directory (default: the workdir), sorted by name."""
        return _wire.entries(await self._call("sandbox/listDirectory", {"path": path} if path is not None else None))

    async def exists(self, path: str) -> bool:
        """Whether ``path`` exists (a listing of its parent)."""
        parent, name = _wire.exists_query(path)
        try:
            return any(e.name == name for e in await self.list_directory(parent))
        except NotFoundError:
            return False

    async def set_workdir(self, path: str) -> str:
        """Makes ``path`` (created if missing) the working directory; returns it absolute."""
        self.workdir = str((await self._call("sandbox/setWorkdir", {"path": path}))["workdir"])
        return self.workdir

    async def with_env(self, env: Optional[Mapping[str, str]] = None, /, **vars: str) -> "AsyncSandbox":
        """Sets variables for every later exec (all or none); returns the sandbox."""
        await self._call("sandbox/withEnv", {"env": {**(env or {}), **vars}})
        return self

    async def export_directory(self, container_path: str, host_path: PathLike) -> None:
        """Copies a sandbox directory out to ``host_path`` on this host."""
        await self._call(
            "sandbox/exportDirectory", {"containerPath": container_path, "hostPath": _wire.host_path(host_path)}
        )

    async def refresh_from_host(
        self, host_path: PathLike, container_path: str, exclude: Optional[Sequence[str]] = None
    ) -> None:
        """Copies a host directory into the sandbox, without the ``exclude`` globs."""
        await self._call("sandbox/refreshFromHost", _wire.refresh_params(host_path, container_path, exclude))

    async def fork(self) -> "AsyncSandbox":
        """An independent sandbox with the same files, env and workdir."""
        return self.client._adopt(await self._call("sandbox/fork"))

    async def snapshot(self, name: Optional[str] = None) -> Snapshot:
        """:meth:`Sandbox.snapshot` for asyncio."""
        return Snapshot.from_wire(await self._call("sandbox/snapshot", {} if name is None else {"name": name}))

    async def stop(self) -> None:
        """Frees CPU and memory, keeps the files; calls raise :class:`StoppedError` until resumed."""
        await self._call("sandbox/stop")

    async def resume(self) -> None:
        """Brings a stopped sandbox back with the same files, env and workdir."""
        await self._call("sandbox/resume")

    async def close(self, delete: bool = False) -> None:
        """Frees every engine resource of the sandbox. Idempotent. On a sandbox the daemon owns
        (persistent or connected) it frees only this handle, unless ``delete`` is true."""
        if self.closed:
            return
        if self.client.alive:
            await self._call("sandbox/close", {"delete": True} if delete else None)
        self._mark_closed()


class ExecStream:
    """The output of :meth:`AsyncSandbox.exec_stream`: an async iterator of :class:`OutputChunk`,
    then :attr:`result`. Errors of the command (``TIMEOUT``, ...) are raised by the iteration."""

    def __init__(self, sandbox: AsyncSandbox, params: Mapping[str, Any], buffer: int) -> None:
        self._sandbox = sandbox
        self._params = params
        self._queue: "asyncio.Queue[OutputChunk]" = asyncio.Queue(maxsize=max(1, buffer))
        self._task: Optional["asyncio.Task[Any]"] = None
        self._stopped = False
        #: The command's :class:`ExecResult`, once the iteration ended.
        self.result: Optional[ExecResult] = None

    async def _on_output(self, p: dict[str, Any]) -> None:
        if not self._stopped:
            await self._queue.put(OutputChunk(str(p.get("stream", "stdout")), str(p.get("data", ""))))

    def __aiter__(self) -> "ExecStream":
        return self

    async def __anext__(self) -> OutputChunk:
        if self._task is None:
            self._task = asyncio.ensure_future(
                self._sandbox._call("sandbox/exec", self._params, on_notification=self._on_output)
            )
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            if self._task.done():
                if self.result is None:
                    self.result = ExecResult.from_wire(self._task.result())
                raise StopAsyncIteration
            getter = asyncio.ensure_future(self._queue.get())
            try:
                await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                getter.cancel()
                await self.aclose()
                raise
            if getter.done():
                return getter.result()
            getter.cancel()

    async def wait(self) -> ExecResult:
        """Consumes the rest of the output and returns the result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    async def aclose(self) -> None:
        """Stops the command if it still runs (``$/cancelRequest``) and drops its output."""
        self._stopped = True
        while not self._queue.empty():
            self._queue.get_nowait()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.exception()  # retrieved: an abandoned stream's error is not "never retrieved"

    async def __aenter__(self) -> "ExecStream":
        return self

    async def __aexit__(
        self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.aclose()
