"""The errors the client raises and the stable string codes they carry, shared by every module."""

from __future__ import annotations

from typing import Any, Optional

from .types import ExecResult

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
