"""The asyncio client's plumbing: the bridge on asyncio subprocess streams, a reader task, futures,
and task cancellation mapped to ``$/cancelRequest``."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Optional, Union

from . import _wire
from ._bridge import StderrTail, bridge_env, find_bridge, popen_kwargs, start_error
from ._session import Options, Session
from .errors import BridgeError, BridgeExitedError, BridgeProtocolError, SandboxError, error_from_wire

#: The reader's line limit: far above any message (a 64 MiB file read travels as ~86 MiB of
#: base64); asyncio's default of 64 KiB would break on the first large file.
LINE_LIMIT = 1 << 30

#: Called with the ``params`` of each ``exec/output`` notification of a request; may return an
#: awaitable, which the reader awaits (backpressure: the bridge waits while it is not done).
AsyncNotificationCallback = Callable[[dict[str, Any]], Union[None, Awaitable[None]]]


@dataclass
class _Pending:
    future: "asyncio.Future[Any]"
    method: str
    on_notification: Optional[AsyncNotificationCallback] = None


class AsyncTransport(Session):
    """One bridge process on asyncio streams, for any number of tasks of one event loop.

    :meth:`_spawn` starts the bridge; a reader task resolves the future of each request by id
    and feeds ``exec/output`` notifications to the request's callback; a second task keeps the
    stderr tail. When the bridge exits or writes anything that is not the protocol, every pending
    and later call fails with a :class:`BridgeError` naming what happened. The arguments are
    documented on :class:`dagger_sandbox.Client`.
    """

    def __init__(self, options: Options) -> None:
        super().__init__()
        self._options = options
        self.request_timeout = options.request_timeout
        self.cancel_grace = options.cancel_grace
        self._on_message = options.on_message
        self.bridge_path: Optional[Path] = None
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._abandoned: set[int] = set()
        self._dead: Optional[BridgeError] = None
        self._closing = False
        self._stderr = StderrTail(None)
        self._tasks: list["asyncio.Task[None]"] = []
        self._drain_lock: Optional[asyncio.Lock] = None  # made in _spawn: on Python < 3.10 a lock binds to a loop

    async def _spawn(self) -> None:
        path = find_bridge(self._options.bridge_path)
        self.bridge_path = path
        self._drain_lock = asyncio.Lock()
        self._stderr = StderrTail(self._options.stderr)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                str(path),
                *self._options.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=bridge_env(self._options.env),
                limit=LINE_LIMIT,
                **popen_kwargs(),
            )
        except OSError as e:
            self._stderr.close()
            raise start_error(path, e) from e
        self._tasks = [
            asyncio.create_task(self._read_stderr(), name=f"bridge-stderr-{self.pid}"),
            asyncio.create_task(self._read_loop(), name=f"bridge-reader-{self.pid}"),
        ]

    # ---- state ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The bridge's process id (the client must be started)."""
        assert self._proc is not None, "the client is not started"
        return self._proc.pid

    @property
    def returncode(self) -> Optional[int]:
        """The bridge's exit status, ``None`` while it runs (or before start)."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """True while the bridge answers and no shutdown was requested."""
        return self._proc is not None and self._dead is None and not self._closing

    # ---- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_notification: Optional[AsyncNotificationCallback] = None,
        allow_closing: bool = False,
    ) -> Any:
        """Sends a request and waits for its result.

        Cancelling the awaiting task sends ``$/cancelRequest`` (the bridge kills a running
        command) and re-raises :class:`asyncio.CancelledError`, so ``asyncio.wait_for`` and
        ``asyncio.timeout`` work as expected. ``timeout`` (default :attr:`request_timeout`) is
        the same as a sync client's: cancel, wait :attr:`cancel_grace` for the bridge's answer,
        raise :class:`ClientTimeoutError` (or return a result that arrived just in time).
        """
        if self._proc is None:
            raise BridgeExitedError(f"the client is not started; cannot send {method} (use `async with` or start())")
        if self._dead is not None:
            raise self._dead_error(f"cannot send {method}")
        if self._closing and not allow_closing:
            raise BridgeExitedError(f"the client is closed; cannot send {method}")
        rid = next(self._ids)
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(fut, method, on_notification)
        if timeout is None:
            timeout = self.request_timeout
        timed_out = False
        try:
            await self._write(_wire.request(rid, method, params))
            done, _ = await asyncio.wait({fut}, timeout=timeout)
            if done:
                return fut.result()
            timed_out = True
            self._write_nowait(_wire.cancel(rid))
            done, _ = await asyncio.wait({fut}, timeout=self.cancel_grace)
        except asyncio.CancelledError:
            self._abandon(rid)
            raise
        except BaseException:
            self._pending.pop(rid, None)
            raise
        if not done:
            self._abandon(rid)
        return self._outcome(method, rid, timeout, fut.result, bool(done), timed_out)

    async def notify(self, method: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """Sends a notification (a message without ``id``)."""
        await self._write(_wire.notification(method, params))

    # ---- internals --------------------------------------------------------------------------

    def _abandon(self, rid: int) -> None:
        """Forgets a request whose caller stopped waiting and cancels it on the bridge."""
        if self._pending.pop(rid, None) is not None:
            self._abandoned.add(rid)
            try:
                self._write_nowait(_wire.cancel(rid))
            except SandboxError:
                pass

    def _write_nowait(self, data: bytes) -> None:
        """Queues a line on the pipe (whole: one ``write`` call never interleaves with another)."""
        if self._dead is not None:
            raise self._dead_error("cannot write")
        assert self._proc is not None and self._proc.stdin is not None
        if self._proc.stdin.is_closing():
            raise BridgeExitedError("the bridge's stdin is closed (the client is shutting down)")
        self._proc.stdin.write(data)

    async def _write(self, data: bytes) -> None:
        self._write_nowait(data)
        assert self._proc is not None and self._proc.stdin is not None and self._drain_lock is not None
        try:
            async with self._drain_lock:
                await self._proc.stdin.drain()
        except (ConnectionError, OSError) as e:
            raise BridgeExitedError(
                f"could not write to the bridge (pid {self.pid}): {e}", stderr_tail=self._stderr.text()
            ) from e

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(65536):
            self._stderr.feed(chunk)

    async def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while True:
            try:
                raw = await stdout.readline()
            except ValueError as e:  # a line past LINE_LIMIT
                await self._fail(BridgeProtocolError(f"the bridge wrote a line over {LINE_LIMIT} bytes: {e}"), kill=True)
                return
            except (ConnectionError, OSError) as e:
                await self._fail(BridgeExitedError(f"reading the bridge's stdout failed: {e}"))
                return
            if not raw:
                break
            if not raw.strip():
                continue
            try:
                msg = _wire.decode(raw)
            except BridgeProtocolError as e:
                await self._fail(e, kill=True)
                return
            if self._on_message is not None:
                try:
                    self._on_message(msg)
                except Exception:  # a debugging tap must never stop the reader
                    pass
            if "method" in msg:
                await self._dispatch_notification(msg)
            else:
                self._dispatch_response(msg)
        rc = await self._wait_exit(3)
        if len(self._tasks) > 0:
            await asyncio.wait({self._tasks[0]}, timeout=2)  # the stderr tail with the last words
        await self._fail(self._exit_error(self.pid, rc, self._closing))

    def _dispatch_response(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        pending = self._pending.pop(rid, None) if isinstance(rid, int) and not isinstance(rid, bool) else None
        if pending is None:
            self._abandoned.discard(rid)  # type: ignore[arg-type]
            return
        if pending.future.done():
            return
        if "error" in msg:
            pending.future.set_exception(error_from_wire(msg["error"]))
        else:
            pending.future.set_result(msg["result"])

    async def _dispatch_notification(self, msg: dict[str, Any]) -> None:
        rid = _wire.output_request_id(msg)
        pending = self._pending.get(rid) if isinstance(rid, int) else None
        if pending is None or pending.on_notification is None:
            return
        try:
            r = pending.on_notification(msg["params"])
            if inspect.isawaitable(r):
                await r
        except Exception as e:  # the callback failed: stop the command, report the exception
            if not pending.future.done():
                pending.future.set_exception(e)
            self._abandon(rid)

    async def _wait_exit(self, timeout: float) -> Optional[int]:
        assert self._proc is not None
        try:
            return await asyncio.wait_for(self._proc.wait(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _fail(self, err: BridgeError, kill: bool = False) -> None:
        """Ends the connection: every pending call fails with ``err``."""
        if kill:
            assert self._proc is not None
            if self._proc.returncode is None:
                self._proc.kill()  # it broke the protocol: nothing it says can be trusted
            await self._wait_exit(2)
            await asyncio.wait({self._tasks[0]}, timeout=0.5)
            if not err.stderr_tail:
                err = type(err)(err.message, stderr_tail=self._stderr.text())
        if self._dead is None:
            self._dead = err
        pending = list(self._pending.items())
        self._pending.clear()
        for rid, p in pending:
            if not p.future.done():
                p.future.set_exception(self._dead_error(f"{p.method} (id {rid}) failed"))

    async def _terminate(self, timeout: float = 5.0) -> Optional[int]:
        """Closes stdin, waits up to ``timeout`` seconds for the exit, kills after that, reaps."""
        self._closing = True
        if self._proc is None:
            return None
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        if await self._wait_exit(timeout) is None:
            self._proc.kill()
            await self._proc.wait()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._stderr.close()
        return self._proc.returncode
