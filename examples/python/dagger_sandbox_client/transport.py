"""The bridge process and the JSON-RPC plumbing under the API: spawning, reader thread, ids, futures, cancel."""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Optional, Sequence, Union

from .errors import BridgeExitedError, SandboxError
from .types import NotificationCallback, PathLike


def default_bridge_path() -> Path:
    """``$DAGGER_SANDBOX_BRIDGE``, else ``debug/dagger-sandbox-bridge`` under cargo's target
    directory (``$CARGO_TARGET_DIR``, relative to the repo, or ``<repo>/target``)."""
    env = os.environ.get("DAGGER_SANDBOX_BRIDGE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / "dagger-sandbox-bridge"


@dataclass
class _Pending:
    future: "Future[Any]"
    method: str
    on_notification: Optional[NotificationCallback] = None
    started: float = field(default_factory=time.monotonic)


class BridgeTransport:
    """The process and message plumbing of a :class:`~dagger_sandbox_client.BridgeClient`.

    The constructor spawns the bridge and starts the reader thread, which reads its stdout line by
    line and hands every response to the ``Future`` of the request with that id, and every
    ``exec/output`` notification to the callback registered for its ``requestId``. Writes are
    serialized by a lock. If the process dies, every pending call fails with
    :class:`BridgeExitedError`. The arguments are those of ``BridgeClient`` (which documents them)
    minus what belongs to the protocol session (``auto_initialize``, ``client_name``).
    """

    def __init__(
        self,
        bridge_path: Optional[PathLike] = None,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, Optional[str]]] = None,
        *,
        stderr: Union[None, PathLike, IO[Any], int] = None,
        request_timeout: Optional[float] = None,
        cancel_grace: float = 15.0,
        on_message: Optional[Callable[[dict], None]] = None,
    ) -> None:
        path = Path(bridge_path) if bridge_path is not None else default_bridge_path()
        if not path.exists():
            raise FileNotFoundError(
                f"dagger-sandbox-bridge not found at {path}: build it with "
                "`cargo build -p dagger-sandbox-bridge`, or set DAGGER_SANDBOX_BRIDGE to its path"
            )
        self.bridge_path: Path = path
        self.request_timeout = request_timeout
        self.cancel_grace = cancel_grace
        self._on_message = on_message

        #: Messages the bridge sent that match no pending request: responses with ``id: null``
        #: (parse errors, over-long lines, ...), responses to raw lines written with
        #: :meth:`send_raw`, and notifications no request registered for. ``get(timeout=...)``.
        self.unmatched: "queue.Queue[dict]" = queue.Queue()
        #: Lines on stdout that broke the framing rules (not JSON, not an object, no
        #: ``"jsonrpc": "2.0"``). The bridge must never produce any.
        self.protocol_violations: list[str] = []

        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: dict[Any, _Pending] = {}
        self._abandoned: set[Any] = set()
        self._dead: Optional[BridgeExitedError] = None
        self._closing = False
        self._closed = False

        self._stderr_path: Optional[Path] = None
        self._stderr_file: Optional[IO[Any]] = None
        stderr_arg: Union[None, IO[Any], int]
        if isinstance(stderr, (str, os.PathLike)):
            self._stderr_path = Path(stderr)
            self._stderr_file = open(self._stderr_path, "ab")
            stderr_arg = self._stderr_file
        else:
            stderr_arg = stderr

        proc_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                proc_env.pop(k, None)
            else:
                proc_env[k] = v

        self._proc = subprocess.Popen(
            [str(path), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_arg,
            env=proc_env,
            bufsize=-1,
        )
        self._reader = threading.Thread(target=self._read_loop, name=f"bridge-reader-{self._proc.pid}", daemon=True)
        self._reader.start()

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The bridge's process id."""
        return self._proc.pid

    @property
    def returncode(self) -> Optional[int]:
        """The bridge's exit status, ``None`` while it runs."""
        return self._proc.poll()

    @property
    def process(self) -> "subprocess.Popen[bytes]":
        """The bridge's ``Popen`` object (for tests and diagnostics)."""
        return self._proc

    @property
    def alive(self) -> bool:
        """True while the bridge's stdout is open and no shutdown was requested."""
        return self._dead is None and not self._closing

    def _terminate(self, timeout: float = 5.0) -> Optional[int]:
        """Closes stdin (a clean shutdown for the bridge), waits, kills after ``timeout``."""
        with self._state_lock:
            self._closing = True
            self._closed = True
        try:
            with self._write_lock:
                if self._proc.stdin and not self._proc.stdin.closed:
                    self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        if self._proc.stdout is not None and not self._reader.is_alive():
            self._proc.stdout.close()
        if self._stderr_file is not None:
            self._stderr_file.close()
        return self._proc.returncode

    # ---- low level -------------------------------------------------------------------------

    def submit(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        on_notification: Optional[NotificationCallback] = None,
    ) -> tuple[int, "Future[Any]"]:
        """Sends a request without waiting: returns ``(id, future)``. The future's result is the
        response's ``result``; an error response sets a :class:`SandboxError` on it. To stop the
        request, use :meth:`cancel` with the id (``future.cancel()`` has no effect).

        ``on_notification`` is called on the reader thread with the ``params`` of every
        ``exec/output`` notification whose ``requestId`` is this request's id, in order, before the
        future completes. It must not block; if it raises, the request is cancelled and the
        exception is set on the future.
        """
        return self._submit(method, params, on_notification, allow_closing=False)

    def request(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_notification: Optional[NotificationCallback] = None,
    ) -> Any:
        """Sends a request and waits for its result.

        If ``timeout`` seconds (default :attr:`request_timeout`) pass without an answer,
        ``$/cancelRequest`` is sent and the bridge's answer is awaited for :attr:`cancel_grace`
        seconds: normally that is a ``CANCELLED`` error (``rpc_code`` -32800), raised as
        :class:`SandboxError`; if the request finished just before the cancel, its result is
        returned; if the bridge does not answer at all, ``CLIENT_TIMEOUT`` is raised.
        """
        return self._call(method, params, timeout=timeout, on_notification=on_notification)

    def notify(self, method: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """Sends a notification (a message without ``id``)."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = dict(params)
        self._write(msg)

    def cancel(self, request_id: Any) -> None:
        """Sends ``$/cancelRequest`` for ``request_id``; the request then fails with ``CANCELLED``."""
        self.notify("$/cancelRequest", {"id": request_id})

    def close_stdin(self) -> None:
        """Closes the bridge's stdin: a clean shutdown (every sandbox is closed, then the bridge
        exits 0); requests still in flight fail with ``CLOSED``. Use :meth:`close` afterwards to
        reap the process."""
        with self._write_lock:
            if self._proc.stdin and not self._proc.stdin.closed:
                self._proc.stdin.close()

    def send_raw(self, line: bytes) -> None:
        """Writes ``line`` to the bridge's stdin exactly as given (no newline is added). For
        protocol tests: the answers to such lines land in :attr:`unmatched`."""
        self._write_bytes(bytes(line))

    # ---- internals -------------------------------------------------------------------------

    def _submit(
        self,
        method: str,
        params: Optional[Mapping[str, Any]],
        on_notification: Optional[NotificationCallback],
        *,
        allow_closing: bool,
    ) -> tuple[int, "Future[Any]"]:
        fut: "Future[Any]" = Future()
        fut.set_running_or_notify_cancel()  # Future.cancel() cannot stop a sent request: use cancel(id)
        with self._state_lock:
            rid = next(self._ids)
            msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
            if params is not None:
                msg["params"] = dict(params)
            if self._dead is not None:
                raise self._dead_error()
            if (self._closing or self._closed) and not allow_closing:
                raise BridgeExitedError(f"the client is closed; cannot send {method}", returncode=self._proc.returncode)
            self._pending[rid] = _Pending(fut, method, on_notification)
        try:
            self._write(msg)
        except BaseException:
            with self._state_lock:
                self._pending.pop(rid, None)
            raise
        return rid, fut

    def _call(
        self,
        method: str,
        params: Optional[Mapping[str, Any]],
        *,
        timeout: Optional[float] = None,
        on_notification: Optional[NotificationCallback] = None,
        allow_closing: bool = False,
    ) -> Any:
        rid, fut = self._submit(method, params, on_notification, allow_closing=allow_closing)
        if timeout is None:
            timeout = self.request_timeout
        try:
            return fut.result(timeout=timeout)
        except FutureTimeoutError:
            pass
        # The client-side timeout expired: ask the bridge to cancel, then take its answer.
        try:
            self.cancel(rid)
        except SandboxError:
            pass
        try:
            return fut.result(timeout=self.cancel_grace)
        except FutureTimeoutError:
            with self._state_lock:
                if self._pending.pop(rid, None) is not None:
                    self._abandoned.add(rid)
            raise SandboxError(
                "CLIENT_TIMEOUT",
                f"{method} (id {rid}) got no answer within {timeout} s, nor within {self.cancel_grace} s "
                "after $/cancelRequest",
            ) from None

    def _write(self, msg: Mapping[str, Any]) -> None:
        line = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
        self._write_bytes(line)

    def _write_bytes(self, data: bytes) -> None:
        with self._write_lock:
            if self._dead is not None:
                raise self._dead_error()
            stdin = self._proc.stdin
            if stdin is None or stdin.closed:
                raise BridgeExitedError("the bridge's stdin is closed", returncode=self._proc.poll())
            try:
                stdin.write(data)
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as e:
                raise BridgeExitedError(
                    f"could not write to the bridge (pid {self._proc.pid}): {e}", returncode=self._proc.poll()
                ) from e

    def _read_loop(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            for raw in iter(stdout.readline, b""):
                self._handle_line(raw)
        except Exception as e:  # pragma: no cover - a broken pipe read
            self.protocol_violations.append(f"reader stopped: {e!r}")
        finally:
            self._on_eof()

    def _handle_line(self, raw: bytes) -> None:
        line = raw.rstrip(b"\n")
        if not line:
            self.protocol_violations.append("empty line on stdout")
            return
        try:
            msg = json.loads(line)
        except ValueError:
            self.protocol_violations.append(f"not JSON: {line[:200]!r}")
            return
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            self.protocol_violations.append(f"not a JSON-RPC 2.0 object: {line[:200]!r}")
            if not isinstance(msg, dict):
                return
        if self._on_message is not None:
            try:
                self._on_message(msg)
            except Exception as e:  # a debugging tap must never stop the reader
                self.protocol_violations.append(f"on_message raised {e!r}")
        if "method" in msg:
            if "id" not in msg:
                self._dispatch_notification(msg)
            else:
                self.unmatched.put(msg)  # a request from the bridge: not part of the protocol
            return
        if "id" in msg and ("result" in msg or "error" in msg):
            self._dispatch_response(msg)
            return
        self.protocol_violations.append(f"neither response nor notification: {line[:200]!r}")
        self.unmatched.put(msg)

    def _dispatch_response(self, msg: dict) -> None:
        rid = msg.get("id")
        hashable = isinstance(rid, (int, str)) and not isinstance(rid, bool)
        with self._state_lock:
            pending = self._pending.pop(rid, None) if hashable else None
            if pending is None and hashable and rid in self._abandoned:
                self._abandoned.discard(rid)
                return
        if pending is None:
            self.unmatched.put(msg)
            return
        if pending.future.done():
            return
        if "error" in msg:
            pending.future.set_exception(SandboxError.from_response(msg["error"]))
        else:
            pending.future.set_result(msg["result"])

    def _dispatch_notification(self, msg: dict) -> None:
        params = msg.get("params")
        rid = params.get("requestId") if isinstance(params, dict) else None
        pending = None
        if msg.get("method") == "exec/output" and isinstance(rid, (int, str)):
            with self._state_lock:
                pending = self._pending.get(rid)
        if pending is None or pending.on_notification is None:
            self.unmatched.put(msg)
            return
        if pending.future.done():
            return
        try:
            pending.on_notification(params)
        except BaseException as e:  # the callback failed: stop the command, report the exception
            pending.future.set_exception(e)
            with self._state_lock:
                if self._pending.pop(rid, None) is not None:
                    self._abandoned.add(rid)
            # Not on this thread: a writer holding the write lock may be waiting for us to read.
            threading.Thread(target=self._cancel_quietly, args=(rid,), daemon=True).start()

    def _cancel_quietly(self, rid: Any) -> None:
        try:
            self.cancel(rid)
        except SandboxError:
            pass

    def _dead_error(self) -> BridgeExitedError:
        assert self._dead is not None
        return BridgeExitedError(self._dead.message, returncode=self._dead.returncode)

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr_path is None:
            return ""
        try:
            with open(self._stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _on_eof(self) -> None:
        try:
            rc = self._proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            rc = None
        if self._closing or self._closed:
            reason = f"the bridge exited after shutdown (status {rc})"
        else:
            reason = f"the bridge (pid {self._proc.pid}) exited unexpectedly with status {rc}"
            if rc is None:
                reason = f"the bridge (pid {self._proc.pid}) closed its stdout"
        tail = self._stderr_tail()
        if tail:
            reason += f"; last stderr:\n{tail}"
        err = BridgeExitedError(reason, returncode=rc)
        with self._state_lock:
            self._dead = err
            pending = list(self._pending.values())
            self._pending.clear()
        for p in pending:
            if not p.future.done():
                p.future.set_exception(BridgeExitedError(f"{p.method} failed: {reason}", returncode=rc))
