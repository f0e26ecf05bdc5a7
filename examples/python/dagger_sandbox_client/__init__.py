"""A small, typed, stdlib-only Python client for ``dagger-sandbox-bridge``.

``dagger-sandbox-bridge`` exposes the whole dagger-sandbox API (create a sandbox, run commands,
move files in and out, fork, close) as JSON-RPC 2.0 over stdio, one JSON message per line; the
protocol is specified in ``docs/bridge-protocol.md``. This package spawns the bridge, speaks that
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
``<repo>/target/debug/dagger-sandbox-bridge`` relative to this package
(``cargo build -p dagger-sandbox-bridge``).

Layout: :mod:`.errors` (``SandboxError``, code names), :mod:`.types` (result dataclasses, type
aliases), :mod:`.transport` (process, reader thread, request plumbing), :mod:`.client`
(``BridgeClient``), :mod:`.sandbox` (``Sandbox``). ``python3 -m dagger_sandbox_client [backend]``
(from ``examples/python``) is a smoke check.
"""

from __future__ import annotations

from .client import PROTOCOL_VERSION, BridgeClient, __version__
from .errors import RPC_CODE_NAMES, BridgeExitedError, SandboxError
from .sandbox import Sandbox
from .transport import default_bridge_path
from .types import BackendInfo, Content, DirEntry, ExecResult, NotificationCallback, OutputCallback, PathLike

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
