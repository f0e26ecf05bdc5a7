"""Python client of dagger-sandbox: isolated, containerized sandboxes driven through
``dagger-sandbox-bridge`` (JSON-RPC over stdio; ``docs/bridge-protocol.md``).

::

    from dagger_sandbox import Client, NotFoundError

    with Client() as client:                                  # starts the bridge
        with client.create(backend="docker", image="node:20-alpine3.22") as sb:
            sb.write_files({"package.json": "{}", "index.js": "console.log(1)"})
            r = sb.exec("node index.js", on_output=lambda stream, text: print(text, end=""))
            print(r.exit_code)                                # a non-zero exit is a result
    # leaving the blocks closes the sandbox and stops the bridge

:class:`Client` is blocking and thread-safe; :class:`AsyncClient` (module :mod:`.aio`) is the
asyncio version of the same API, where cancelling a task cancels its request. Every error is a
:class:`SandboxError` subclass with a stable ``code`` (:class:`NotFoundError` is ``NOT_FOUND``,
...); results are frozen dataclasses. Layout: :mod:`.errors`, :mod:`.types`, :mod:`.client` and
:mod:`.sandbox` (sync), :mod:`.aio` (asyncio); ``_wire`` is the protocol without I/O, ``_bridge``
the process helpers, ``_sync_transport``/``_async_transport`` the plumbing of each client.
"""

from __future__ import annotations

from ._bridge import find_bridge
from ._wire import PROTOCOL_VERSION, __version__
from .aio import AsyncClient, AsyncSandbox, ExecStream
from .client import Client
from .errors import (
    ERROR_CLASSES,
    BridgeError,
    BridgeExitedError,
    BridgeNotFoundError,
    BridgeProtocolError,
    BridgeStartError,
    ClientTimeoutError,
    ClosedError,
    EngineError,
    EngineUnavailableError,
    InternalError,
    InvalidArgumentError,
    InvalidParamsError,
    InvalidPathError,
    InvalidRequestError,
    MethodNotFoundError,
    NotFoundError,
    NotInitializedError,
    ParseError,
    RequestCancelledError,
    RestrictedPathError,
    RpcError,
    SandboxError,
    SandboxIOError,
    StoppedError,
    SandboxTimeoutError,
)
from .sandbox import ExecStream as SyncExecStream
from .sandbox import Sandbox
from .types import (
    CACHE_KINDS,
    HOST_CA,
    BackendInfo,
    CacheKind,
    Caches,
    CaCertificates,
    Content,
    DirEntry,
    ExecResult,
    OutputCallback,
    OutputChunk,
    SandboxInfo,
    Snapshot,
    StepReport,
    ValidateReport,
)

__all__ = [
    "CACHE_KINDS",
    "ERROR_CLASSES",
    "HOST_CA",
    "PROTOCOL_VERSION",
    "AsyncClient",
    "AsyncSandbox",
    "BackendInfo",
    "BridgeError",
    "BridgeExitedError",
    "BridgeNotFoundError",
    "BridgeProtocolError",
    "BridgeStartError",
    "CaCertificates",
    "CacheKind",
    "Caches",
    "Client",
    "ClientTimeoutError",
    "ClosedError",
    "Content",
    "DirEntry",
    "EngineError",
    "EngineUnavailableError",
    "ExecResult",
    "ExecStream",
    "InternalError",
    "InvalidArgumentError",
    "InvalidParamsError",
    "InvalidPathError",
    "InvalidRequestError",
    "MethodNotFoundError",
    "NotFoundError",
    "NotInitializedError",
    "OutputCallback",
    "OutputChunk",
    "ParseError",
    "RequestCancelledError",
    "RestrictedPathError",
    "RpcError",
    "Sandbox",
    "SandboxError",
    "SandboxIOError",
    "StoppedError",
    "SandboxInfo",
    "SandboxTimeoutError",
    "Snapshot",
    "StepReport",
    "SyncExecStream",
    "ValidateReport",
    "__version__",
    "find_bridge",
]
