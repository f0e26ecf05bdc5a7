"""What the sync and the asyncio client share above the I/O: their options, the session state
(``initialize``), the errors that end a connection or a wait, and the sandbox handle's basics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar

from . import _wire
from ._bridge import StderrSink, StderrTail, describe_exit
from .errors import BridgeError, BridgeExitedError, ClientTimeoutError, ClosedError, SandboxError
from .types import BackendInfo, PathLike, SandboxInfo


@dataclass
class Options:
    """How to start and talk to a bridge; the fields are documented on :class:`dagger_sandbox.Client`."""

    bridge_path: Optional[PathLike] = None
    args: Sequence[str] = ()
    env: Optional[Mapping[str, Optional[str]]] = None
    stderr: StderrSink = None
    request_timeout: Optional[float] = None
    cancel_grace: float = 15.0
    on_message: Optional[Callable[[dict[str, Any]], None]] = None


class Session:
    """Connection state and error helpers of a transport, whichever I/O it uses."""

    _dead: Optional[BridgeError] = None
    _stderr: StderrTail
    cancel_grace: float

    def __init__(self) -> None:
        #: The raw ``initialize`` result.
        self.initialize_result: dict[str, Any] = {}
        #: The backends the bridge reported, available or not, with the reason in ``detail``.
        self.backends: list[BackendInfo] = []
        #: ``serverInfo`` (``name``, ``version``) of the bridge.
        self.server_info: dict[str, Any] = {}
        #: ``capabilities`` of the bridge (``streaming``, ``cancel``, ``maxLineBytes``, ...).
        self.capabilities: dict[str, Any] = {}
        #: The protocol version agreed on in ``initialize``.
        self.protocol_version: Optional[str] = None

    def _record_initialize(self, result: Mapping[str, Any]) -> None:
        """Keeps the ``initialize`` result; raises if the bridge speaks another protocol."""
        self.backends = _wire.backends(result)
        self.initialize_result = dict(result)
        self.server_info = result.get("serverInfo") or {}
        self.capabilities = result.get("capabilities") or {}
        self.protocol_version = result["protocolVersion"]

    def backend(self, name: str) -> Optional[BackendInfo]:
        """The ``initialize`` entry for backend ``name``, or ``None``."""
        return next((b for b in self.backends if b.name == name), None)

    def backend_available(self, name: str) -> bool:
        """Whether the bridge reported backend ``name`` as available."""
        b = self.backend(name)
        return bool(b and b.available)

    @property
    def stderr_tail(self) -> str:
        """The first and last lines the bridge wrote to stderr."""
        return self._stderr.text()

    def _with_tail(self, e: BaseException, returncode: Optional[int]) -> BaseException:
        """``e``, or a copy quoting the stderr tail when it is a BridgeError without one."""
        if isinstance(e, BridgeError) and not e.stderr_tail and self.stderr_tail:
            return type(e)(e.message, stderr_tail=self.stderr_tail, returncode=returncode)
        return e

    def _dead_error(self, what: str) -> BridgeError:
        """A fresh copy of the error that ended the connection, prefixed with ``what``."""
        dead = self._dead
        assert dead is not None
        err = type(dead)(f"{what}: {dead.message}", returncode=dead.returncode)
        err.stderr_tail = dead.stderr_tail
        return err

    def _exit_error(self, pid: int, returncode: Optional[int], closing: bool) -> BridgeExitedError:
        """The error for a bridge whose stdout ended."""
        if closing:
            return BridgeExitedError(f"the bridge exited after shutdown (status {returncode})", returncode=returncode)
        return BridgeExitedError(
            f"the bridge (pid {pid}) {describe_exit(returncode)}", stderr_tail=self.stderr_tail, returncode=returncode
        )

    def _outcome(
        self, method: str, rid: int, timeout: Optional[float], result: Callable[[], Any], done: bool, timed_out: bool
    ) -> Any:
        """What a request's wait ends with: its result, its error, or :class:`ClientTimeoutError`
        when the client-side ``timeout`` passed (the bridge's ``CANCELLED`` answer to our own
        ``$/cancelRequest`` included)."""
        if not done:
            raise ClientTimeoutError(
                f"{method} (id {rid}) got no answer within {timeout} s, nor within {self.cancel_grace} s "
                "after $/cancelRequest",
                stderr_tail=self.stderr_tail,
            )
        try:
            return result()
        except SandboxError as e:
            if e.code != "CANCELLED" or not timed_out:
                raise
            raise ClientTimeoutError(
                f"{method} (id {rid}) took longer than {timeout} s: cancelled (a running command was killed)"
            ) from None


C = TypeVar("C")


class SandboxBase(Generic[C]):
    """What a sandbox handle is, sync or async: ``id``, ``info`` (:class:`SandboxInfo`),
    ``workdir`` (kept current by ``set_workdir``), ``closed``, and its ``client``."""

    def __init__(self, client: C, info: SandboxInfo) -> None:
        self.client = client
        self.info = info
        self.id: str = info.id
        self.workdir: str = info.workdir
        self.closed = False

    @property
    def backend(self) -> str:
        """``docker``, ``dagger`` or ``local``."""
        return self.info.backend

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<{type(self).__name__} {self.id} backend={self.backend} workdir={self.workdir}{state}>"

    def _params(self, params: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """The params of a request on this sandbox; raises :class:`ClosedError` once it is closed."""
        if self.closed:
            raise ClosedError(f"sandbox {self.id} is closed")
        return {"sandboxId": self.id, **(params or {})}
