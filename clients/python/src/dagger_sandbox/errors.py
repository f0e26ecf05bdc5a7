"""The exceptions of the package: one class per stable error code, all under :class:`SandboxError`.

Catch a class (``except NotFoundError``) or compare ``err.code`` (``"NOT_FOUND"``): both are
stable. Three families share the base:

- the sandbox API's own codes, sent by the bridge in ``error.data.code`` (``NOT_FOUND``,
  ``TIMEOUT``, ``CLOSED``, ...; see ``docs/bridge-protocol.md``);
- JSON-RPC codes without a ``data.code`` (:class:`RpcError` and its subclasses: the bridge refused
  the request itself, e.g. an unknown parameter);
- conditions this client detects about the bridge process (:class:`BridgeError` and its
  subclasses: not found, could not start, exited, wrote garbage, did not answer in time), which
  carry the tail of the bridge's stderr.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from .types import ExecResult


class SandboxError(Exception):
    """Base of every error this package raises.

    Attributes:
        code: the stable string code (``NOT_FOUND``, ``BRIDGE_EXITED``, ...).
        message: what happened, in words.
        data: the bridge's ``error.data`` as sent (``None`` when absent or client-side).
        rpc_code: the JSON-RPC integer ``error.code`` (``None`` for client-side errors).
    """

    #: The code of instances of this class (a subclass per code overrides it).
    CODE: ClassVar[str] = "SANDBOX_ERROR"

    def __init__(
        self, message: str, *, code: Optional[str] = None, data: Any = None, rpc_code: Optional[int] = None
    ) -> None:
        self.code: str = code or self.CODE
        self.message = message
        self.data = data
        self.rpc_code = rpc_code
        super().__init__(f"{self.code}: {message}")


# ---- the sandbox API's stable codes (error.data.code) -------------------------------------------


class EngineUnavailableError(SandboxError):
    """No engine could run the sandbox (Docker or Dagger unreachable, backend unavailable)."""

    CODE = "ENGINE_UNAVAILABLE"


class SandboxTimeoutError(SandboxError, TimeoutError):
    """A command ran past its timeout and was killed; :attr:`partial` holds its output so far.

    Also a builtin :class:`TimeoutError`, so ``except TimeoutError`` catches it."""

    CODE = "TIMEOUT"

    @property
    def partial(self) -> Optional[ExecResult]:
        """What the command printed before it was killed (``error.data.partial``), or ``None``."""
        p = self.data.get("partial") if isinstance(self.data, dict) else None
        return ExecResult.from_wire(p) if isinstance(p, dict) else None


class NotFoundError(SandboxError):
    """A path, sandbox id or resource does not exist."""

    CODE = "NOT_FOUND"


class RestrictedPathError(SandboxError):
    """The path matches the sandbox's ``restrictedPaths``: writes and deletes are refused."""

    CODE = "RESTRICTED_PATH"


class InvalidPathError(SandboxError):
    """The path is malformed or would leave the sandbox."""

    CODE = "INVALID_PATH"


class InvalidArgumentError(SandboxError):
    """An argument the sandbox API refuses (bad config value, env name, non-UTF-8 text read, ...)."""

    CODE = "INVALID_ARGUMENT"


class ClosedError(SandboxError):
    """The sandbox (or the client that owned it) is closed."""

    CODE = "CLOSED"


class StoppedError(SandboxError):
    """The sandbox is stopped (its files kept, nothing running); :meth:`~Sandbox.resume` it."""

    CODE = "STOPPED"


class RequestCancelledError(SandboxError):
    """The request was cancelled with ``$/cancelRequest`` by someone other than this call."""

    CODE = "CANCELLED"


class EngineError(SandboxError):
    """The engine failed while running the operation."""

    CODE = "ENGINE_ERROR"


class SandboxIOError(SandboxError):
    """An I/O error on the host (e.g. writing an exported directory)."""

    CODE = "IO_ERROR"


# ---- JSON-RPC errors without a data.code --------------------------------------------------------


class RpcError(SandboxError):
    """The bridge refused the request at the JSON-RPC level (base of the classes below)."""

    CODE = "RPC_ERROR"


class ParseError(RpcError):
    """-32700: the bridge could not parse a line as UTF-8 JSON."""

    CODE = "PARSE_ERROR"


class InvalidRequestError(RpcError):
    """-32600: not a valid JSON-RPC 2.0 request (or a second ``initialize``)."""

    CODE = "INVALID_REQUEST"


class MethodNotFoundError(RpcError):
    """-32601: the bridge has no such method."""

    CODE = "METHOD_NOT_FOUND"


class InvalidParamsError(RpcError):
    """-32602: parameters missing, of the wrong type, or unknown; the message names the field."""

    CODE = "INVALID_PARAMS"


class NotInitializedError(RpcError):
    """-32002: a request before ``initialize``."""

    CODE = "NOT_INITIALIZED"


class InternalError(RpcError):
    """-32603: a bug in the bridge."""

    CODE = "INTERNAL_ERROR"


# ---- conditions of the bridge process, detected by this client ----------------------------------


class BridgeError(SandboxError):
    """Something went wrong with the bridge process itself (base of the classes below).

    Attributes:
        stderr_tail: the last lines the bridge wrote to stderr (``""`` if none), also quoted in
            the message.
    """

    CODE = "BRIDGE_ERROR"

    def __init__(self, message: str, *, stderr_tail: str = "", returncode: Optional[int] = None) -> None:
        self.stderr_tail = stderr_tail
        #: The bridge's exit status when it is known to have exited (negative: killed by a signal).
        self.returncode = returncode
        if stderr_tail:
            message = f"{message}; bridge stderr (tail):\n{stderr_tail}"
        super().__init__(message)


class BridgeNotFoundError(BridgeError):
    """No ``dagger-sandbox-bridge`` binary where it was looked for (the message lists where)."""

    CODE = "BRIDGE_NOT_FOUND"


class BridgeStartError(BridgeError):
    """The bridge binary exists but could not be started (not executable, wrong format, ...)."""

    CODE = "BRIDGE_START_FAILED"


class BridgeExitedError(BridgeError):
    """The bridge exited (or closed its stdout) while a call was pending, or before it was made."""

    CODE = "BRIDGE_EXITED"


class BridgeProtocolError(BridgeError):
    """The bridge wrote something that is not the protocol (not JSON, not JSON-RPC 2.0, an
    unsupported protocol version). The connection is dropped: nothing it says can be trusted."""

    CODE = "PROTOCOL_ERROR"


class ClientTimeoutError(BridgeError, TimeoutError):
    """The call's client-side ``timeout`` passed; ``$/cancelRequest`` was sent (the bridge kills
    a running command). Also a builtin :class:`TimeoutError`."""

    CODE = "CLIENT_TIMEOUT"


#: The class for each stable code, for :func:`error_from_wire` and for callers matching codes.
ERROR_CLASSES: dict[str, type[SandboxError]] = {
    cls.CODE: cls
    for cls in (
        EngineUnavailableError,
        SandboxTimeoutError,
        NotFoundError,
        RestrictedPathError,
        InvalidPathError,
        InvalidArgumentError,
        ClosedError,
        StoppedError,
        RequestCancelledError,
        EngineError,
        SandboxIOError,
        ParseError,
        InvalidRequestError,
        MethodNotFoundError,
        InvalidParamsError,
        NotInitializedError,
        InternalError,
    )
}

#: Codes for JSON-RPC errors that carry no ``data.code`` of their own.
RPC_CODE_NAMES: dict[int, str] = {
    -32700: "PARSE_ERROR",
    -32600: "INVALID_REQUEST",
    -32601: "METHOD_NOT_FOUND",
    -32602: "INVALID_PARAMS",
    -32603: "INTERNAL_ERROR",
    -32002: "NOT_INITIALIZED",
    -32800: "CANCELLED",
}


def error_from_wire(error: Any) -> SandboxError:
    """The exception for a JSON-RPC ``error`` object of a response."""
    if not isinstance(error, dict):
        return BridgeProtocolError(f"malformed error object in a response: {error!r:.200}")
    rpc_code = error.get("code") if isinstance(error.get("code"), int) else None
    message = str(error.get("message", ""))
    data = error.get("data")
    code = data.get("code") if isinstance(data, dict) and isinstance(data.get("code"), str) else None
    if code is None and rpc_code is not None:
        code = RPC_CODE_NAMES.get(rpc_code)
    cls = ERROR_CLASSES.get(code or "")
    if cls is None:
        cls = RpcError if code is None and rpc_code != -32000 else SandboxError
        code = code or (f"RPC_ERROR_{rpc_code}" if rpc_code not in (None, -32000) else "SANDBOX_ERROR")
    return cls(message, code=code, data=data, rpc_code=rpc_code)
