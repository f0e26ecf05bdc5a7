"""Sandbox, the sync handle of one sandbox: one method per ``sandbox/*`` request."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from . import _wire
from ._session import SandboxBase
from .errors import NotFoundError
from .types import Content, DirEntry, ExecResult, NotificationCallback, OutputCallback, OutputChunk, PathLike, Snapshot

if TYPE_CHECKING:
    from .client import Client


class Sandbox(SandboxBase["Client"]):
    """One sandbox of a :class:`Client`, made by :meth:`Client.create` or :meth:`fork`.

    Attributes: ``id``, ``info`` (:class:`SandboxInfo`: backend, isolation, image, ...),
    ``workdir`` (kept current by :meth:`set_workdir`), ``closed``.

    Paths are sandbox paths: relative ones resolve against the workdir. Every method raises a
    :class:`SandboxError` subclass on failure (:class:`NotFoundError`, :class:`ClosedError`, ...).
    Methods may be called from many threads at once. A ``with`` block closes the sandbox.
    """

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise

    def _call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kw: Any) -> Any:
        return self.client.request(method, self._params(params), **kw)

    def _mark_closed(self) -> None:
        self.closed = True
        self.client._forget(self)

    # ---- commands -----------------------------------------------------------------------------

    def exec(
        self,
        command: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        stdin: Optional[Content] = None,
        on_output: Optional[OutputCallback] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """Runs ``sh -c command`` and returns its :class:`ExecResult` (a non-zero exit is a result).

        Args:
            env: variables for this call only, on top of the sandbox's.
            cwd: working directory of this call (relative ones resolve against the workdir).
            timeout_ms: the sandbox-side limit: the command is killed and
                :class:`SandboxTimeoutError` raised, with the output so far in ``.partial``.
            stdin: text, or bytes.
            on_output: ``callable(stream, text)`` called live, in order, with each chunk of output
                (``stream`` is ``"stdout"`` or ``"stderr"``), all before this method returns. It
                runs on the client's reader thread: keep it quick. If it raises, the command is
                killed and the exception propagates from this call.
            timeout: a client-side limit in seconds: the command is cancelled (killed) and
                :class:`ClientTimeoutError` raised.
        """
        params = _wire.exec_params(command, env=env, cwd=cwd, timeout_ms=timeout_ms, stdin=stdin, stream=bool(on_output))
        listener: Optional[NotificationCallback] = None
        if on_output is not None:
            cb = on_output

            def listener(p: dict[str, Any]) -> None:
                cb(p.get("stream", "stdout"), p.get("data", ""))

        return ExecResult.from_wire(self._call("sandbox/exec", params, timeout=timeout, on_notification=listener))

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
        (``with sb.exec_stream(cmd) as out: for chunk in out``); ``out.result`` is the
        :class:`ExecResult` once the iteration ends, and errors of the command (``TIMEOUT``, ...)
        are raised by it. At most ``buffer`` chunks wait for the consumer; past that the bridge
        waits (this client's other calls too), so consume promptly. Leaving the block early
        cancels (kills) the command."""
        params = _wire.exec_params(command, env=env, cwd=cwd, timeout_ms=timeout_ms, stdin=stdin, stream=True)
        return ExecStream(self, params, buffer)

    # ---- files --------------------------------------------------------------------------------

    def write_file(self, path: str, content: Content, mode: Optional[int] = None) -> None:
        """Writes a file, parents created: ``str`` as UTF-8 text, ``bytes`` byte-exact; ``mode``
        is an integer such as ``0o755``."""
        self._call("sandbox/writeFile", _wire.write_file_params(path, content, mode))

    def write_files(self, files: Mapping[str, Content], mode: Optional[int] = None) -> int:
        """Writes many files in one round trip; returns how many. If any path is invalid or
        restricted, none is written."""
        return int(self._call("sandbox/writeFiles", _wire.write_files_params(files, mode)).get("written", 0))

    def read_file(self, path: str) -> str:
        """Reads a UTF-8 text file (a file that is not UTF-8 is :class:`InvalidArgumentError`:
        use :meth:`read_bytes`)."""
        return str(self._call("sandbox/readFile", {"path": path})["content"])

    def read_bytes(self, path: str) -> bytes:
        """Reads a file byte-exact."""
        return _wire.read_bytes_result(path, self._call("sandbox/readFile", {"path": path, "encoding": "base64"}))

    def delete_file(self, path: str) -> None:
        """Deletes a file or a directory (recursively); a missing path is :class:`NotFoundError`."""
        self._call("sandbox/deleteFile", {"path": path})

    def list_directory(self, path: Optional[str] = None) -> list[DirEntry]:
        """The entries of a directory (default: the workdir), sorted by name."""
        return _wire.entries(self._call("sandbox/listDirectory", {"path": path} if path is not None else None))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists (a listing of its parent)."""
        parent, name = _wire.exists_query(path)
        try:
            return any(e.name == name for e in self.list_directory(parent))
        except NotFoundError:
            return False

    # ---- state --------------------------------------------------------------------------------

    def set_workdir(self, path: str) -> str:
        """Makes ``path`` (created if missing) the working directory; returns it absolute."""
        self.workdir = str(self._call("sandbox/setWorkdir", {"path": path})["workdir"])
        return self.workdir

    def with_env(self, env: Optional[Mapping[str, str]] = None, /, **vars: str) -> "Sandbox":
        """Sets variables for every later exec (``with_env(CI="1")`` or ``with_env({"CI": "1"})``);
        if any name is invalid, none is set. Returns the sandbox, for chaining."""
        self._call("sandbox/withEnv", {"env": {**(env or {}), **vars}})
        return self

    # ---- host directories ---------------------------------------------------------------------

    def export_directory(self, container_path: str, host_path: PathLike) -> None:
        """Copies a sandbox directory out to ``host_path`` on this host (created if missing)."""
        self._call("sandbox/exportDirectory", {"containerPath": container_path, "hostPath": _wire.host_path(host_path)})

    def refresh_from_host(self, host_path: PathLike, container_path: str, exclude: Optional[Sequence[str]] = None) -> None:
        """Copies a host directory into the sandbox. ``exclude`` globs: a bare name such as
        ``node_modules`` matches anywhere, a pattern with ``/`` matches from ``host_path``."""
        self._call("sandbox/refreshFromHost", _wire.refresh_params(host_path, container_path, exclude))

    # ---- lifecycle ----------------------------------------------------------------------------

    def fork(self) -> "Sandbox":
        """An independent sandbox with the same files, env and workdir (owned by the same client)."""
        return self.client._adopt(self._call("sandbox/fork"))

    def snapshot(self, name: Optional[str] = None) -> Snapshot:
        """Saves the files, env and workdir as a snapshot (``name``: unique, optional) that outlives
        this sandbox, its client and this process; secret env values are kept by name only."""
        return Snapshot.from_wire(self._call("sandbox/snapshot", {} if name is None else {"name": name}))

    def stop(self) -> None:
        """Frees the sandbox's CPU and memory and keeps its files (``sandbox/stop``); calls raise
        :class:`StoppedError` until :meth:`resume`."""
        self._call("sandbox/stop")

    def resume(self) -> None:
        """Brings a stopped sandbox back with the same files, env and workdir (``sandbox/resume``)."""
        self._call("sandbox/resume")

    def close(self, delete: bool = False) -> None:
        """Frees every engine resource of the sandbox. Idempotent; a no-op once its client is
        closed (which closed it). On a sandbox the daemon owns (persistent or connected) it frees
        only this handle, unless ``delete`` is true."""
        if self.closed:
            return
        if self.client.alive:
            self._call("sandbox/close", {"delete": True} if delete else None)
        self._mark_closed()


_END = object()


class ExecStream:
    """The output of :meth:`Sandbox.exec_stream`: an iterator of :class:`OutputChunk`, then
    :attr:`result`; a context manager whose exit stops a command still running."""

    def __init__(self, sandbox: Sandbox, params: Mapping[str, Any], buffer: int) -> None:
        self._sandbox = sandbox
        self._params = params
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, buffer))
        self._stopped = threading.Event()
        self._request: Optional[tuple[int, "Future[Any]"]] = None
        #: The command's :class:`ExecResult`, once the iteration ended.
        self.result: Optional[ExecResult] = None

    def _put(self, item: Any) -> None:
        """Queues an item on the reader thread; gives up once the consumer stopped."""
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _on_output(self, p: dict[str, Any]) -> None:
        self._put(OutputChunk(str(p.get("stream", "stdout")), str(p.get("data", ""))))

    def __iter__(self) -> "ExecStream":
        return self

    def __next__(self) -> OutputChunk:
        if self._request is None:
            client = self._sandbox.client
            self._request = client.submit(
                "sandbox/exec", self._sandbox._params(self._params), on_notification=self._on_output
            )
            # Runs on the reader thread after every notification of the request was queued.
            self._request[1].add_done_callback(lambda _: self._put(_END))
        if self.result is not None:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # later calls end too
            self.result = ExecResult.from_wire(self._request[1].result())
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def wait(self) -> ExecResult:
        """Consumes the rest of the output and returns the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def close(self) -> None:
        """Stops the command if it still runs (``$/cancelRequest``) and drops its output."""
        self._stopped.set()
        if self._request is not None and not self._request[1].done():
            self._sandbox.client._abandon(self._request[0])

    def __enter__(self) -> "ExecStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
