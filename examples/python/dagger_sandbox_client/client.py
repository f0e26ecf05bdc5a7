"""BridgeClient, the public connection object: the protocol session (initialize, shutdown) and sandbox creation."""

from __future__ import annotations

import time
from typing import IO, Any, Callable, Mapping, Optional, Sequence, Union

from .errors import SandboxError
from .sandbox import Sandbox
from .transport import BridgeTransport
from .types import BackendInfo, PathLike

__version__ = "0.1.0"

#: The protocol version this client speaks (``initialize.protocolVersion``).
PROTOCOL_VERSION = "1"


def _camel(key: str) -> str:
    """``timeout_ms`` -> ``timeoutMs``; keys without ``_`` are returned unchanged."""
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class BridgeClient(BridgeTransport):
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
        self.client_name = client_name
        self.initialize_result: dict = {}
        self.server_info: dict = {}
        self.backends: list[BackendInfo] = []
        self.capabilities: dict = {}
        self.protocol_version: Optional[str] = None

        super().__init__(
            bridge_path,
            args,
            env,
            stderr=stderr,
            request_timeout=request_timeout,
            cancel_grace=cancel_grace,
            on_message=on_message,
        )

        if auto_initialize:
            try:
                self.initialize()
            except BaseException:
                self._terminate()
                raise

    # ---- session ---------------------------------------------------------------------------

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

    def __enter__(self) -> "BridgeClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited({self._proc.returncode})"
        return f"<BridgeClient pid={self._proc.pid} {state} {self.bridge_path}>"

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
