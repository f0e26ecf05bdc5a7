"""Client, the sync (blocking, thread-safe) connection to one bridge: the session and its sandboxes."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from . import _wire
from ._bridge import StderrSink
from ._session import Options
from ._sync_transport import SyncTransport
from .errors import SandboxError
from .sandbox import Sandbox
from .types import CaCertificates, Caches, PathLike, SandboxInfo, Snapshot, ValidateReport


class Client(SyncTransport):
    """A connection to one ``dagger-sandbox-bridge`` process, shared by any number of sandboxes
    and threads.

    The constructor starts the bridge and sends ``initialize`` (waiting at most
    ``startup_timeout`` seconds). Use it as a context manager, or call :meth:`close`: that closes
    every sandbox the client made (their engine resources are freed), then the bridge exits.

    Args:
        bridge_path: the binary; default: ``$DAGGER_SANDBOX_BRIDGE``, ``dagger-sandbox-bridge`` on
            ``PATH``, or the debug build of the repository this package was installed from.
        args: extra command-line arguments (e.g. ``["--max-line-bytes", "1048576"]``).
        env: variables for the bridge process, merged over ``os.environ`` (``None`` removes one).
            ``DAGGER_SANDBOX_LOG=debug`` turns on its stderr logs.
        stderr: where the bridge's stderr goes besides the tail kept for error messages: a path
            (appended to) or a binary file object; default: only the tail is kept.
        request_timeout: default client-side limit in seconds for every request (``None``: none).
        startup_timeout: limit in seconds for the bridge to answer ``initialize``.
        cancel_grace: seconds to wait for the bridge's answer after ``$/cancelRequest``.
        client_name: ``clientInfo.name`` sent with ``initialize``.
        on_message: a debugging tap, called on the reader thread with every message the bridge
            writes, in order, before it is dispatched.

    Raises:
        BridgeNotFoundError, BridgeStartError, BridgeExitedError, BridgeProtocolError,
        ClientTimeoutError: the bridge could not be found, started or initialized.
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
        client_name: str = "dagger-sandbox-python",
        on_message: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> None:
        super().__init__(
            Options(bridge_path, args, env, stderr, request_timeout, cancel_grace, on_message),
        )
        self._sandboxes: dict[str, Sandbox] = {}
        self._sandboxes_lock = threading.Lock()
        try:
            self._record_initialize(
                self.request("initialize", _wire.initialize_params(client_name), timeout=startup_timeout)
            )
        except BaseException as e:
            self._terminate(timeout=2)
            raise self._with_tail(e, self.returncode) from None

    # ---- sandboxes ----------------------------------------------------------------------------

    def create(
        self,
        config: Optional[Mapping[str, Any]] = None,
        /,
        *,
        ca_certificates: Optional[CaCertificates] = None,
        caches: Optional[Caches] = None,
        **kwargs: Any,
    ) -> Sandbox:
        """Creates a sandbox (``sandbox/create``); a ``with`` block on it closes it.

        Config keys are those of ``docs/configuration.md`` (``backend``, ``image``, ``template``,
        ``workdir``, ``timeout_ms``, ``env``, ``restricted_paths``, ``network``, ...), in ``config``
        or as keyword arguments, snake_case or camelCase. Unknown keys raise
        :class:`InvalidParamsError`. Typed: ``ca_certificates`` (:data:`HOST_CA` or PEM file paths,
        for networks that intercept TLS) and ``caches`` (``True`` or kinds from :data:`CACHE_KINDS`);
        a missing CA file or an unknown cache raises :class:`InvalidArgumentError`.
        ``persistent=True`` creates it through the daemon (started when none runs, ``state_dir``
        and ``ttl_seconds`` for it), so it outlives this process; reach it again with :meth:`connect`.
        """
        params = _wire.create_params(config, {**kwargs, **_wire.typed_config(ca_certificates, caches)})
        return self._adopt(self.request("sandbox/create", params))

    def create_from_snapshot(self, reference: str, config: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> Sandbox:
        """A sandbox with the files, env and workdir of the snapshot ``reference`` (its id or name),
        on the snapshot's backend (``sandbox/fromSnapshot``). Config keys as for :meth:`create`,
        without ``image`` or ``template``; its ``env`` is added over the snapshot's and brings back
        the secrets the snapshot did not keep."""
        return self._adopt(self.request("sandbox/fromSnapshot", _wire.from_snapshot_params(reference, config, kwargs)))

    def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot on the engines that answer, oldest first (``snapshot/list``)."""
        return [Snapshot.from_wire(s) for s in self.request("snapshot/list", {})["snapshots"]]

    def inspect_snapshot(self, reference: str) -> Snapshot:
        """The snapshot with this id or name; :class:`NotFoundError` when none has it."""
        return Snapshot.from_wire(self.request("snapshot/inspect", {"snapshot": reference}))

    def delete_snapshot(self, reference: str) -> Snapshot:
        """Deletes a snapshot and its data; returns what was deleted. Sandboxes made from it keep
        running. :class:`NotFoundError` when there is no such snapshot."""
        return Snapshot.from_wire(self.request("snapshot/delete", {"snapshot": reference}))

    def connect(self, sandbox_id: str, state_dir: Optional[str] = None, **handle: Any) -> Sandbox:
        """A handle on a sandbox the daemon owns, by id, from any process (``sandbox/connect``):
        one made with ``create(persistent=True)`` or through the daemon's API. ``handle`` holds
        settings of this handle only (``timeout_ms``, ``restricted_paths``, ``output_cap_bytes``,
        ``env``). Closing the handle leaves the sandbox to the daemon; ``close(delete=True)``
        deletes it."""
        return self._adopt(self.request("sandbox/connect", _wire.connect_params(sandbox_id, state_dir, handle)))

    def validate_project(
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
        """The main job in one call (``project/validate``): a fresh sandbox, the host project copied
        in without ``node_modules`` and ``.git``, ``install`` then ``test`` (default ``npm install``
        / ``npm test`` with a ``package.json``; ``""`` skips a step), the sandbox removed. A failing
        step is a report with ``passed`` false; a project that cannot be run raises
        :class:`InvalidArgumentError`. Config keys as for :meth:`create`."""
        typed = _wire.typed_config(ca_certificates, caches)
        params = _wire.validate_params(project_dir, install, test, step_timeout_ms, config, {**kwargs, **typed})
        return ValidateReport.from_wire(self.request("project/validate", params))

    @property
    def sandboxes(self) -> list[Sandbox]:
        """The sandboxes of this client that are not closed yet."""
        with self._sandboxes_lock:
            return list(self._sandboxes.values())

    def _adopt(self, result: Mapping[str, Any]) -> Sandbox:
        sb = Sandbox(self, SandboxInfo.from_wire(result))
        with self._sandboxes_lock:
            self._sandboxes[sb.id] = sb
        return sb

    def _forget(self, sb: Sandbox) -> None:
        with self._sandboxes_lock:
            self._sandboxes.pop(sb.id, None)

    # ---- shutdown -----------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> Optional[int]:
        """Closes every sandbox of this client and stops the bridge: sends ``shutdown`` (the bridge
        closes each sandbox, then exits), waits up to ``timeout`` seconds, kills it after that.
        Returns the bridge's exit status. Idempotent; sandboxes are marked closed even when the
        bridge already died."""
        with self._state_lock:
            first = not self._closing
            self._closing = True
        if first:
            deadline = time.monotonic() + timeout
            if self._dead is None:
                try:
                    self.request("shutdown", None, timeout=timeout, allow_closing=True)
                except SandboxError:
                    pass
            for sb in self.sandboxes:
                sb._mark_closed()
            return self._terminate(max(0.5, deadline - time.monotonic()))
        self._reader.join(timeout=timeout)
        return self._proc.returncode

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.alive else f"closed({self._proc.returncode})"
        return f"<Client pid={self.pid} {state} {self.bridge_path}>"
