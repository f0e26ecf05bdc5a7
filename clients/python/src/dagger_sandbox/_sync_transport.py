"""The sync client's plumbing: the bridge process, its reader threads, request ids, futures, cancel."""

from __future__ import annotations

import itertools
import queue
import subprocess
import threading
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from . import _wire
from ._bridge import StderrTail, bridge_env, find_bridge, popen_kwargs, start_error
from ._session import Options, Session
from .errors import BridgeError, BridgeExitedError, BridgeProtocolError, SandboxError, error_from_wire
from .types import NotificationCallback


@dataclass
class _Pending:
    future: "Future[Any]"
    method: str
    on_notification: Optional[NotificationCallback] = None


class SyncTransport(Session):
    """One bridge process and the JSON-RPC traffic with it, for any number of threads.

    A reader thread hands every response to the ``Future`` of the request with its id and every
    ``exec/output`` notification to the callback registered for its ``requestId``; a second
    thread keeps the tail of the bridge's stderr. Writes are serialized by a lock, one line per
    write. If the bridge exits or writes anything that is not the protocol, every pending and
    later call fails with a :class:`BridgeError` that names what happened and quotes the stderr
    tail. The options are documented on :class:`dagger_sandbox.Client`.
    """

    def __init__(self, options: Options) -> None:
        super().__init__()
        path = find_bridge(options.bridge_path)
        self.bridge_path: Path = path
        self.request_timeout = options.request_timeout
        self.cancel_grace = options.cancel_grace
        self._on_message = options.on_message
        #: Responses that match no pending request (answers to :meth:`send_raw` lines, ``id: null``
        #: errors) and notifications nobody asked for; bounded (the oldest are kept, later dropped).
        self.unmatched: "queue.Queue[dict[str, Any]]" = queue.Queue(maxsize=1000)

        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: dict[Any, _Pending] = {}
        self._abandoned: set[Any] = set()
        self._dead: Optional[BridgeError] = None
        self._closing = False
        self._stderr = StderrTail(options.stderr)
        try:
            self._proc = subprocess.Popen(
                [str(path), *options.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=bridge_env(options.env),
                **popen_kwargs(),
            )
        except OSError as e:
            self._stderr.close()
            raise start_error(path, e) from e
        self._stderr_thread = threading.Thread(target=self._read_stderr, name=f"bridge-stderr-{self.pid}", daemon=True)
        self._stderr_thread.start()
        self._reader = threading.Thread(target=self._read_loop, name=f"bridge-reader-{self.pid}", daemon=True)
        self._reader.start()

    # ---- state ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The bridge's process id."""
        return self._proc.pid

    @property
    def returncode(self) -> Optional[int]:
        """The bridge's exit status, ``None`` while it runs."""
        return self._proc.poll()

    @property
    def alive(self) -> bool:
        """True while the bridge answers and no shutdown was requested."""
        return self._dead is None and not self._closing

    # ---- requests ---------------------------------------------------------------------------

    def submit(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        on_notification: Optional[NotificationCallback] = None,
        allow_closing: bool = False,
    ) -> tuple[int, "Future[Any]"]:
        """Sends a request without waiting: returns ``(id, future)``; the future's result is the
        response's ``result``, an error response sets the matching :class:`SandboxError`. Stop it
        with :meth:`cancel` (``future.cancel()`` cannot stop a request already sent).

        ``on_notification`` is called on the reader thread with the ``params`` of every
        ``exec/output`` notification of this request, in order, before the future completes. It
        must be quick; if it raises, the request is cancelled and the exception set on the future.
        """
        fut: "Future[Any]" = Future()
        fut.set_running_or_notify_cancel()
        with self._state_lock:
            if self._dead is not None:
                raise self._dead_error(f"cannot send {method}")
            if self._closing and not allow_closing:
                raise BridgeExitedError(f"the client is closed; cannot send {method}")
            rid = next(self._ids)
            self._pending[rid] = _Pending(fut, method, on_notification)
        try:
            self._write(_wire.request(rid, method, params))
        except BaseException:
            with self._state_lock:
                self._pending.pop(rid, None)
            raise
        return rid, fut

    def request(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_notification: Optional[NotificationCallback] = None,
        allow_closing: bool = False,
    ) -> Any:
        """Sends a request and waits for its result.

        When ``timeout`` seconds (default :attr:`request_timeout`; ``None`` waits as long as the
        bridge runs) pass, ``$/cancelRequest`` is sent, the bridge's answer is awaited for
        :attr:`cancel_grace` seconds (a running command is killed first), and
        :class:`ClientTimeoutError` is raised, unless the request finished just in time: then its
        result is returned. An interrupt (``KeyboardInterrupt``) also cancels the request.
        """
        rid, fut = self.submit(method, params, on_notification=on_notification, allow_closing=allow_closing)
        if timeout is None:
            timeout = self.request_timeout
        # futures.wait, not fut.result(timeout): a SandboxTimeoutError from the bridge is a
        # TimeoutError too, and must not be mistaken for this call's own timeout.
        timed_out = False
        try:
            done, _ = futures.wait([fut], timeout=timeout)
            if not done:
                timed_out = True
                self._cancel_quietly(rid)
                done, _ = futures.wait([fut], timeout=self.cancel_grace)
        except BaseException:  # an interrupt (KeyboardInterrupt): cancel the request, re-raise
            self._abandon(rid)
            raise
        if not done:
            self._abandon(rid)
        return self._outcome(method, rid, timeout, fut.result, bool(done), timed_out)

    def notify(self, method: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """Sends a notification (a message without ``id``)."""
        self._write(_wire.notification(method, params))

    def cancel(self, request_id: int) -> None:
        """Sends ``$/cancelRequest``: the request then fails with ``CANCELLED``."""
        self._write(_wire.cancel(request_id))

    def send_raw(self, line: bytes) -> None:
        """Writes ``line`` exactly as given (for protocol tests); answers land in :attr:`unmatched`."""
        self._write(bytes(line))

    def close_stdin(self) -> None:
        """Closes the bridge's stdin: a clean shutdown (sandboxes closed, then exit 0)."""
        with self._write_lock:
            if self._proc.stdin and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass

    # ---- shutdown ---------------------------------------------------------------------------

    def _terminate(self, timeout: float = 5.0) -> Optional[int]:
        """Closes stdin, waits up to ``timeout`` seconds for the exit, kills after that, reaps."""
        with self._state_lock:
            self._closing = True
        self.close_stdin()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        self._stderr_thread.join(timeout=5)
        for f in (self._proc.stdout, self._proc.stderr):
            if f is not None:
                f.close()
        self._stderr.close()
        return self._proc.returncode

    # ---- internals --------------------------------------------------------------------------

    def _abandon(self, rid: int) -> None:
        """Forgets a request whose caller stopped waiting; cancels it on the bridge."""
        with self._state_lock:
            if self._pending.pop(rid, None) is not None:
                self._abandoned.add(rid)
        self._cancel_quietly(rid)

    def _cancel_quietly(self, rid: int) -> None:
        try:
            self.cancel(rid)
        except SandboxError:
            pass

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            if self._dead is not None:
                raise self._dead_error("cannot write")
            stdin = self._proc.stdin
            if stdin is None or stdin.closed:
                raise BridgeExitedError("the bridge's stdin is closed (the client is shutting down)")
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError) as e:
                raise BridgeExitedError(
                    f"could not write to the bridge (pid {self.pid}): {e}", stderr_tail=self._stderr.text()
                ) from e

    def _read_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        for chunk in iter(lambda: stderr.read1(65536), b""):  # type: ignore[attr-defined]
            self._stderr.feed(chunk)

    def _read_loop(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            for raw in iter(stdout.readline, b""):
                if raw.strip() and not self._handle_line(raw):
                    return
        except (OSError, ValueError) as e:
            self._fail(BridgeExitedError(f"reading the bridge's stdout failed: {e}"))
            return
        self._on_eof()

    def _handle_line(self, raw: bytes) -> bool:
        """Dispatches one line; False when it broke the protocol (the connection is dropped)."""
        try:
            msg = _wire.decode(raw)
        except BridgeProtocolError as e:
            self._fail(e, kill=True)
            return False
        if self._on_message is not None:
            try:
                self._on_message(msg)
            except Exception:  # a debugging tap must never stop the reader
                pass
        if "method" in msg:
            self._dispatch_notification(msg)
        else:
            self._dispatch_response(msg)
        return True

    def _put_unmatched(self, msg: dict[str, Any]) -> None:
        try:
            self.unmatched.put_nowait(msg)
        except queue.Full:
            pass

    def _dispatch_response(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        hashable = isinstance(rid, (int, str)) and not isinstance(rid, bool)
        with self._state_lock:
            pending = self._pending.pop(rid, None) if hashable else None
            if pending is None and hashable and rid in self._abandoned:
                self._abandoned.discard(rid)
                return
        if pending is None:
            self._put_unmatched(msg)
        elif "error" in msg:
            pending.future.set_exception(error_from_wire(msg["error"]))
        else:
            pending.future.set_result(msg["result"])

    def _dispatch_notification(self, msg: dict[str, Any]) -> None:
        rid = _wire.output_request_id(msg)
        with self._state_lock:
            pending = self._pending.get(rid) if isinstance(rid, (int, str)) else None
            if pending is None and rid in self._abandoned:
                return
        if pending is None or pending.on_notification is None:
            self._put_unmatched(msg)
            return
        try:
            pending.on_notification(msg["params"])
        except BaseException as e:  # the callback failed: stop the command, report the exception
            with self._state_lock:
                if self._pending.pop(rid, None) is not None:
                    self._abandoned.add(rid)
            pending.future.set_exception(e)
            # Not on this thread: a writer holding the write lock may be waiting for us to read.
            threading.Thread(target=self._cancel_quietly, args=(rid,), daemon=True).start()

    def _on_eof(self) -> None:
        try:
            rc: Optional[int] = self._proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            rc = None
        self._stderr_thread.join(timeout=2)  # so that the tail holds the bridge's last words
        self._fail(self._exit_error(self.pid, rc, self._closing))

    def _fail(self, err: BridgeError, kill: bool = False) -> None:
        """Ends the connection: every pending call fails with ``err``."""
        if kill:
            self._stderr_thread.join(timeout=0.5)
            if not err.stderr_tail:
                err = type(err)(err.message, stderr_tail=self._stderr.text())
            self._proc.kill()  # it broke the protocol: nothing it says can be trusted
        with self._state_lock:
            if self._dead is None:
                self._dead = err
            pending = list(self._pending.items())
            self._pending.clear()
        for rid, p in pending:
            if not p.future.done():
                p.future.set_exception(self._dead_error(f"{p.method} (id {rid}) failed"))
