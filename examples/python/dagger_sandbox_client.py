"""A small, typed, stdlib-only Python client for ``dagger-sandbox-bridge``.

``dagger-sandbox-bridge`` exposes the whole dagger-sandbox API (create a sandbox, run commands,
move files in and out, fork, close) as JSON-RPC 2.0 over stdio, one JSON message per line; the
protocol is specified in ``docs/bridge-protocol.md``. This module spawns the bridge, speaks that
protocol, and gives Python programs (AI agents, code-generation validators, test harnesses) a
blocking, thread-safe API on top of it::

    from dagger_sandbox_client import BridgeClient

    with BridgeClient() as client:                       # spawns the bridge, sends `initialize`
        with client.create(backend="docker", template="node", timeout_ms=300_000) as sb:
            sb.refresh_from_host("./my-app", "/workspace", exclude=["node_modules", ".git"])
            r = sb.exec("npm install && npm test", on_output=lambda s, t: print(t, end=""))
            print("exit", r.exit_code)                   # a non-zero exit is a result
    # leaving the `with` blocks closes the sandbox, sends `shutdown` and waits for the bridge

How it works: one reader thread reads the bridge's stdout line by line (``readline()`` on the pipe,
so there is no 64 KiB line limit) and hands every response to the ``concurrent.futures.Future`` of
the request with that id, and every ``exec/output`` notification to the callback registered for its
``requestId``. Writes are serialized by a lock, one line per ``write`` call, so any number of
threads may call the client at once; the bridge serves requests concurrently and may answer out of
order. If the bridge process dies, every pending call fails with :class:`BridgeExitedError`.

Errors from the bridge become :class:`SandboxError`, whose ``code`` is the stable string of the
sandbox API (``NOT_FOUND``, ``TIMEOUT``, ``CLOSED``, ...) or a name for a standard JSON-RPC code
(``PARSE_ERROR``, ``INVALID_PARAMS``, ...).

The bridge binary is found at the ``bridge_path`` argument, else ``$DAGGER_SANDBOX_BRIDGE``, else
``<repo>/target/debug/dagger-sandbox-bridge`` relative to this file
(``cargo build -p dagger-sandbox-bridge``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Optional, Sequence, Union

__all__ = [
    "PROTOCOL_VERSION",
    "BackendInfo",
    "BridgeClient",
    "BridgeExitedError",
    "DirEntry",
    "ExecResult",
    "Sandbox",
    "SandboxError",
    "default_bridge_path",
]

__version__ = "0.1.0"

#: The protocol version this client speaks (``initialize.protocolVersion``).
PROTOCOL_VERSION = "1"

#: Names for the standard JSON-RPC error codes the bridge uses, for errors that carry no
#: ``data.code`` of their own.
RPC_CODE_NAMES: dict[int, str] = {
    -32700: "PARSE_ERROR",
    -32600: "INVALID_REQUEST",
    -32601: "METHOD_NOT_FOUND",
    -32602: "INVALID_PARAMS",
    -32603: "INTERNAL_ERROR",
    -32002: "NOT_INITIALIZED",
    -32800: "CANCELLED",
    -32000: "SANDBOX_ERROR",
}

Content = Union[str, bytes, bytearray, memoryview]
OutputCallback = Callable[[str, str], None]
NotificationCallback = Callable[[dict], None]
PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------------------------
# Errors and result types
# --------------------------------------------------------------------------------------------


class SandboxError(Exception):
    """An error answered by the bridge (or detected by this client).

    Attributes:
        code: the stable string code: ``error.data.code`` when the bridge sent one (``NOT_FOUND``,
            ``TIMEOUT``, ``CLOSED``, ``CANCELLED``, ``RESTRICTED_PATH``, ...), else a name for the
            JSON-RPC code (``PARSE_ERROR``, ``INVALID_REQUEST``, ``METHOD_NOT_FOUND``,
            ``INVALID_PARAMS``, ``NOT_INITIALIZED``, ``CANCELLED``, ``INTERNAL_ERROR``).
            Client-side conditions use ``BRIDGE_EXITED``, ``CLIENT_TIMEOUT``,
            ``UNSUPPORTED_PROTOCOL`` and ``PROTOCOL_ERROR``.
        rpc_code: the JSON-RPC integer ``error.code`` (``None`` for client-side errors).
        message: the bridge's message.
        data: ``error.data`` as sent (``None`` when absent).
        partial: for ``TIMEOUT``, the partial exec result (camelCase dict: ``stdout``, ``stderr``,
            ``exitCode``, ...) printed before the command was killed; else ``None``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        rpc_code: Optional[int] = None,
        data: Any = None,
        partial: Optional[dict] = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.rpc_code = rpc_code
        self.data = data
        self.partial = partial

    @property
    def partial_result(self) -> Optional["ExecResult"]:
        """``partial`` as an :class:`ExecResult`, or ``None``."""
        return ExecResult.from_wire(self.partial) if isinstance(self.partial, dict) else None

    @classmethod
    def from_response(cls, error: Any) -> "SandboxError":
        """Builds the error for a JSON-RPC ``error`` object."""
        if not isinstance(error, dict):
            return cls("PROTOCOL_ERROR", f"malformed error object: {error!r}")
        rpc_code = error.get("code")
        message = str(error.get("message", ""))
        data = error.get("data")
        code: Optional[str] = None
        partial = None
        if isinstance(data, dict):
            if isinstance(data.get("code"), str):
                code = data["code"]
            if isinstance(data.get("partial"), dict):
                partial = data["partial"]
        if code is None:
            code = RPC_CODE_NAMES.get(rpc_code, f"RPC_ERROR_{rpc_code}") if isinstance(rpc_code, int) else "RPC_ERROR"
        return cls(code, message, rpc_code=rpc_code if isinstance(rpc_code, int) else None, data=data, partial=partial)


class BridgeExitedError(SandboxError):
    """The bridge process exited (or closed its stdout) while a call was pending or was made."""

    def __init__(self, message: str, *, returncode: Optional[int] = None) -> None:
        super().__init__("BRIDGE_EXITED", message)
        self.returncode = returncode


@dataclass(frozen=True)
class ExecResult:
    """The result of ``sandbox/exec``. A non-zero ``exit_code`` is a result, not an error.

    ``truncated`` is true when the output cap dropped bytes; ``stdout_dropped`` and
    ``stderr_dropped`` count them.
    """

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int
    truncated: bool = False
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    exec_id: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_wire(cls, r: Mapping[str, Any]) -> "ExecResult":
        """Builds a result from the bridge's camelCase object."""
        return cls(
            exit_code=int(r.get("exitCode", -1)),
            stdout=r.get("stdout", ""),
            stderr=r.get("stderr", ""),
            duration_ms=int(r.get("durationMs", 0)),
            truncated=bool(r.get("truncated", False)),
            stdout_dropped=int(r.get("stdoutDropped", 0)),
            stderr_dropped=int(r.get("stderrDropped", 0)),
            exec_id=r.get("execId"),
        )


@dataclass(frozen=True)
class DirEntry:
    """One entry of ``sandbox/listDirectory``: ``kind`` is ``file``, ``dir``, ``symlink`` or ``other``."""

    name: str
    kind: str
    size: int


@dataclass(frozen=True)
class BackendInfo:
    """One backend as reported by ``initialize``."""

    name: str
    available: bool
    isolation: Optional[str] = None
    detail: Optional[str] = None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def default_bridge_path() -> Path:
    """``$DAGGER_SANDBOX_BRIDGE``, else ``<repo>/target/debug/dagger-sandbox-bridge``."""
    env = os.environ.get("DAGGER_SANDBOX_BRIDGE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo / "target" / "debug" / "dagger-sandbox-bridge"


def _camel(key: str) -> str:
    """``timeout_ms`` -> ``timeoutMs``; keys without ``_`` are returned unchanged."""
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _encode_content(content: Content) -> dict[str, Any]:
    """``{"content": ...}`` for a str, ``{"content": base64, "encoding": "base64"}`` for bytes."""
    if isinstance(content, str):
        return {"content": content}
    if isinstance(content, (bytes, bytearray, memoryview)):
        return {"content": base64.b64encode(bytes(content)).decode("ascii"), "encoding": "base64"}
    raise TypeError(f"content must be str or bytes, not {type(content).__name__}")


@dataclass
class _Pending:
    future: "Future[Any]"
    method: str
    on_notification: Optional[NotificationCallback] = None
    started: float = field(default_factory=time.monotonic)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class BridgeClient:
    """A connection to one ``dagger-sandbox-bridge`` process.

    The process is spawned by the constructor and ``initialize`` is sent at once; its result is
    kept in :attr:`initialize_result`, :attr:`server_info`, :attr:`backends` and
    :attr:`capabilities`. Every method is thread-safe. Use it as a context manager, or call
    :meth:`close` (``shutdown``, then wait for the process, kill it after a timeout).

    Args:
        bridge_path: the binary; default :func:`default_bridge_path`.
        args: extra command-line arguments (e.g. ``["--max-line-bytes", "1048576"]``).
        env: variables for the bridge process, merged over ``os.environ`` (a ``None`` value
            removes a variable). ``DAGGER_SANDBOX_LOG=debug`` turns on its stderr logs.
        stderr: where the bridge's stderr goes: ``None`` passes it through to this process's
            stderr; a path (str or ``os.PathLike``) appends to that file (its tail is quoted in
            :class:`BridgeExitedError`); a file object or descriptor is used as is.
        request_timeout: default client-side timeout in seconds for every request that does not
            give its own (``None``: wait forever). When it expires, ``$/cancelRequest`` is sent.
        cancel_grace: seconds to wait for the bridge's answer after ``$/cancelRequest``.
        auto_initialize: send ``initialize`` on start (default). Turn off only to test the
            protocol itself.
        client_name: ``clientInfo.name`` sent with ``initialize``.
        on_message: a debugging tap called on the reader thread with every message the bridge
            writes, in order, before it is dispatched.
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
        auto_initialize: bool = True,
        client_name: str = "dagger-sandbox-python",
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
        self.client_name = client_name
        self._on_message = on_message

        #: Messages the bridge sent that match no pending request: responses with ``id: null``
        #: (parse errors, over-long lines, ...), responses to raw lines written with
        #: :meth:`send_raw`, and notifications no request registered for. ``get(timeout=...)``.
        self.unmatched: "queue.Queue[dict]" = queue.Queue()
        #: Lines on stdout that broke the framing rules (not JSON, not an object, no
        #: ``"jsonrpc": "2.0"``). The bridge must never produce any.
        self.protocol_violations: list[str] = []

        self.initialize_result: dict = {}
        self.server_info: dict = {}
        self.backends: list[BackendInfo] = []
        self.capabilities: dict = {}
        self.protocol_version: Optional[str] = None

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

        if auto_initialize:
            try:
                self.initialize()
            except BaseException:
                self._terminate()
                raise

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

    def initialize(self, protocol_version: str = PROTOCOL_VERSION) -> dict:
        """Sends ``initialize`` and records the result. Called by the constructor by default.

        Raises :class:`SandboxError` ``UNSUPPORTED_PROTOCOL`` if the bridge answers with a protocol
        version this client does not speak.
        """
        result = self.request(
            "initialize",
            {"protocolVersion": protocol_version, "clientInfo": {"name": self.client_name, "version": __version__}},
        )
        self.initialize_result = result
        self.protocol_version = result.get("protocolVersion")
        self.server_info = result.get("serverInfo") or {}
        self.capabilities = result.get("capabilities") or {}
        self.backends = [
            BackendInfo(
                name=b.get("name", ""),
                available=bool(b.get("available", False)),
                isolation=b.get("isolation"),
                detail=b.get("detail"),
            )
            for b in result.get("backends") or []
        ]
        if self.protocol_version != PROTOCOL_VERSION:
            raise SandboxError(
                "UNSUPPORTED_PROTOCOL",
                f"the bridge speaks protocol {self.protocol_version!r}, this client speaks {PROTOCOL_VERSION!r}",
            )
        return result

    def backend(self, name: str) -> Optional[BackendInfo]:
        """The ``initialize`` entry for backend ``name``, or ``None``."""
        return next((b for b in self.backends if b.name == name), None)

    def backend_available(self, name: str) -> bool:
        """Whether ``initialize`` reported backend ``name`` as available."""
        b = self.backend(name)
        return bool(b and b.available)

    def close(self, timeout: float = 20.0) -> Optional[int]:
        """Sends ``shutdown`` (which closes every sandbox), waits up to ``timeout`` seconds for the
        process to exit, kills it after that, and returns its exit status. Idempotent."""
        with self._state_lock:
            if self._closed:
                return self._proc.returncode
            self._closed = True
        deadline = time.monotonic() + timeout
        if self._dead is None:
            try:
                self._call("shutdown", None, timeout=timeout, allow_closing=True)
            except SandboxError:
                pass
        with self._state_lock:
            self._closing = True
        return self._terminate(max(0.5, deadline - time.monotonic()))

    shutdown = close

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

    def __enter__(self) -> "BridgeClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited({self._proc.returncode})"
        return f"<BridgeClient pid={self._proc.pid} {state} {self.bridge_path}>"

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

    # ---- sandboxes -------------------------------------------------------------------------

    def create(self, config: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> "Sandbox":
        """Creates a sandbox (``sandbox/create``).

        Config keys are those of ``docs/configuration.md``; give them camelCase in ``config`` or as
        keyword arguments in either spelling (``timeout_ms=...`` becomes ``timeoutMs``; the values
        of ``env`` and ``labels`` are passed unchanged). Unknown keys are refused by the bridge.
        """
        params: dict[str, Any] = {}
        for k, v in {**(config or {}), **kwargs}.items():
            params[_camel(k)] = v
        return Sandbox(self, self.request("sandbox/create", params))

    def attach(self, sandbox_id: str) -> "Sandbox":
        """A :class:`Sandbox` handle for an existing id (no request is sent)."""
        return Sandbox(self, {"sandboxId": sandbox_id})


# --------------------------------------------------------------------------------------------
# A sandbox
# --------------------------------------------------------------------------------------------


class Sandbox:
    """One sandbox of a :class:`BridgeClient`; made by :meth:`BridgeClient.create` or :meth:`fork`.

    Attributes: ``id``, ``backend`` (``docker``/``local``/...), ``isolation`` (``container`` or
    ``process``), ``workdir``, ``image``, ``fallback_reason`` (why ``auto`` fell back to
    ``local``, else ``None``), ``info`` (the raw create/fork result).

    Paths are sandbox paths: relative ones resolve against the workdir. Every method raises
    :class:`SandboxError` on failure. A ``with`` block closes the sandbox on exit.
    """

    def __init__(self, client: BridgeClient, info: Mapping[str, Any]) -> None:
        self.client = client
        self.info: dict = dict(info)
        self.id: str = info["sandboxId"]
        self.backend: Optional[str] = info.get("backend")
        self.isolation: Optional[str] = info.get("isolation")
        self.workdir: Optional[str] = info.get("workdir")
        self.image: Optional[str] = info.get("image")
        self.fallback_reason: Optional[str] = info.get("fallbackReason")
        self.closed = False

    def __repr__(self) -> str:
        return f"<Sandbox {self.id} backend={self.backend} isolation={self.isolation} workdir={self.workdir}>"

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.close()
        except SandboxError:
            if exc_type is None:
                raise

    def _call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kw: Any) -> Any:
        p: dict[str, Any] = {"sandboxId": self.id}
        if params:
            p.update(params)
        return self.client.request(method, p, **kw)

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
        """Runs ``sh -c command`` in the workdir and returns its :class:`ExecResult`.

        Args:
            env: variables for this call only (on top of the sandbox env).
            cwd: working directory for this call (relative to the workdir).
            timeout_ms: the bridge-side timeout; when it expires the command is killed and
                :class:`SandboxError` ``TIMEOUT`` is raised, with the output so far in ``.partial``.
            stdin: text, or bytes (sent base64).
            on_output: ``callable(stream, text)`` called live, in order, with each chunk
                (``stream`` is ``"stdout"`` or ``"stderr"``), all before this method returns. It
                runs on the client's reader thread: keep it quick.
            timeout: a client-side limit in seconds; when it passes, ``$/cancelRequest`` is sent
                and the resulting ``CANCELLED`` error is raised.
        """
        params: dict[str, Any] = {"command": command}
        if env is not None:
            params["env"] = dict(env)
        if cwd is not None:
            params["cwd"] = cwd
        if timeout_ms is not None:
            params["timeoutMs"] = int(timeout_ms)
        if stdin is not None:
            if isinstance(stdin, str):
                params["stdin"] = stdin
            else:
                params["stdin"] = base64.b64encode(bytes(stdin)).decode("ascii")
                params["stdinEncoding"] = "base64"
        listener: Optional[NotificationCallback] = None
        if on_output is not None:
            params["stream"] = True
            cb = on_output

            def listener(p: dict) -> None:
                cb(p.get("stream", "stdout"), p.get("data", ""))

        return ExecResult.from_wire(self._call("sandbox/exec", params, timeout=timeout, on_notification=listener))

    def write_file(self, path: str, content: Content, mode: Optional[int] = None) -> None:
        """Writes a file (parents are created). ``str`` goes as UTF-8 text, ``bytes`` as base64;
        ``mode`` is an integer such as ``0o755``."""
        params: dict[str, Any] = {"path": path, **_encode_content(content)}
        if mode is not None:
            params["mode"] = int(mode)
        self._call("sandbox/writeFile", params)

    def write_files(self, files: Mapping[str, Content], mode: Optional[int] = None) -> int:
        """Writes many files in one engine round trip; returns how many were written. If any path
        is invalid or restricted, none is written. ``mode`` applies to every file."""
        entries = []
        for path, content in files.items():
            e: dict[str, Any] = {"path": path, **_encode_content(content)}
            if mode is not None:
                e["mode"] = int(mode)
            entries.append(e)
        return int(self._call("sandbox/writeFiles", {"files": entries}).get("written", 0))

    def read_file(self, path: str) -> str:
        """Reads a UTF-8 text file. A file that is not valid UTF-8 is ``INVALID_ARGUMENT``: use
        :meth:`read_bytes`."""
        return self._call("sandbox/readFile", {"path": path})["content"]

    def read_bytes(self, path: str) -> bytes:
        """Reads a file byte-exact (it travels base64)."""
        r = self._call("sandbox/readFile", {"path": path, "encoding": "base64"})
        data = base64.b64decode(r["content"], validate=True)
        if "size" in r and r["size"] != len(data):
            raise SandboxError("PROTOCOL_ERROR", f"readFile {path}: size {r['size']} but {len(data)} bytes decoded")
        return data

    def delete_file(self, path: str) -> None:
        """Deletes a file or a directory (recursively). A missing path is ``NOT_FOUND``."""
        self._call("sandbox/deleteFile", {"path": path})

    def list_directory(self, path: Optional[str] = None) -> list[DirEntry]:
        """The entries of a directory (default: the workdir), sorted by name."""
        params = {"path": path} if path is not None else None
        r = self._call("sandbox/listDirectory", params)
        return [DirEntry(e["name"], e["kind"], int(e.get("size", 0))) for e in r.get("entries", [])]

    def set_workdir(self, path: str) -> str:
        """Makes ``path`` (created if missing) the working directory; returns it absolute."""
        wd = self._call("sandbox/setWorkdir", {"path": path})["workdir"]
        self.workdir = wd
        return wd

    def with_env(self, env: Optional[Mapping[str, str]] = None, /, **vars: str) -> "Sandbox":
        """Sets variables for every later exec: ``with_env(CI="1")`` or ``with_env({"CI": "1"})``.
        If any name is invalid, none is set. Returns the sandbox, for chaining."""
        merged = {**(env or {}), **vars}
        self._call("sandbox/withEnv", {"env": merged})
        return self

    def export_directory(self, container_path: str, host_path: PathLike) -> None:
        """Copies a sandbox directory out to ``host_path`` on this host (created if missing)."""
        self._call(
            "sandbox/exportDirectory",
            {"containerPath": container_path, "hostPath": os.path.abspath(os.fspath(host_path))},
        )

    def refresh_from_host(
        self, host_path: PathLike, container_path: str, exclude: Optional[Sequence[str]] = None
    ) -> None:
        """Copies a host directory into the sandbox. ``exclude`` globs: a bare name such as
        ``node_modules`` matches anywhere, a pattern with ``/`` matches from ``host_path``."""
        params: dict[str, Any] = {
            "hostPath": os.path.abspath(os.fspath(host_path)),
            "containerPath": container_path,
        }
        if exclude is not None:
            params["exclude"] = list(exclude)
        self._call("sandbox/refreshFromHost", params)

    def fork(self) -> "Sandbox":
        """An independent sandbox with the same files, env and workdir."""
        return Sandbox(self.client, self._call("sandbox/fork"))

    def close(self) -> None:
        """Frees every engine resource of the sandbox. Idempotent; a no-op once the bridge is
        gone (its exit closed every sandbox)."""
        if not self.client.alive:
            self.closed = True
            return
        self._call("sandbox/close")
        self.closed = True

    # ---- conveniences ----------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """True if ``path`` exists in the sandbox (via ``listDirectory`` of its parent)."""
        parent, _, name = path.rstrip("/").rpartition("/")
        try:
            entries = self.list_directory(parent if parent else ("/" if path.startswith("/") else None))
        except SandboxError as e:
            if e.code == "NOT_FOUND":
                return False
            raise
        return any(e.name == name for e in entries)


if __name__ == "__main__":  # a tiny smoke check: python3 dagger_sandbox_client.py
    with BridgeClient() as _c:
        print(json.dumps(_c.initialize_result, indent=2))
        with _c.create(backend=sys.argv[1] if len(sys.argv) > 1 else "auto") as _sb:
            print(_sb, _sb.exec("echo hello from $(uname -a)").stdout, end="")
