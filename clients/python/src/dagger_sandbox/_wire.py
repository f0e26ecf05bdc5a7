"""The protocol without I/O: message encoding and decoding, and the params and results of every
method, so that the sync and the asyncio client speak exactly the same protocol."""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Mapping, Optional, Sequence

from .errors import BridgeProtocolError, InvalidArgumentError
from .types import CACHE_KINDS, HOST_CA, BackendInfo, CaCertificates, Caches, Content, DirEntry, PathLike

#: The protocol version this client speaks (``initialize.protocolVersion``).
PROTOCOL_VERSION = "1"

__version__ = "0.1.0"


def encode(msg: Mapping[str, Any]) -> bytes:
    """One message as a compact JSON line."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def request(rid: int, method: str, params: Optional[Mapping[str, Any]]) -> bytes:
    """A request line."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = dict(params)
    return encode(msg)


def notification(method: str, params: Optional[Mapping[str, Any]]) -> bytes:
    """A notification line (no ``id``)."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = dict(params)
    return encode(msg)


def cancel(rid: int) -> bytes:
    """The ``$/cancelRequest`` line for request ``rid``."""
    return notification("$/cancelRequest", {"id": rid})


def decode(raw: bytes) -> dict[str, Any]:
    """Parses one line the bridge wrote. Anything but a JSON-RPC 2.0 object raises
    :class:`BridgeProtocolError` quoting the start of the line (the caller adds the stderr tail)."""
    line = raw.rstrip(b"\r\n")
    try:
        msg = json.loads(line)
    except ValueError:
        raise BridgeProtocolError(f"the bridge wrote a line that is not JSON: {line[:200]!r}") from None
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        raise BridgeProtocolError(f"the bridge wrote a line that is not a JSON-RPC 2.0 object: {line[:200]!r}")
    if "method" not in msg and not ("id" in msg and ("result" in msg or "error" in msg)):
        raise BridgeProtocolError(f"the bridge wrote neither a response nor a notification: {line[:200]!r}")
    return msg


def output_request_id(msg: Mapping[str, Any]) -> Any:
    """The ``requestId`` of an ``exec/output`` notification, else ``None``."""
    params = msg.get("params")
    if msg.get("method") == "exec/output" and isinstance(params, dict):
        return params.get("requestId")
    return None


# ---- session ------------------------------------------------------------------------------------


def initialize_params(client_name: str) -> dict[str, Any]:
    """The params of ``initialize``."""
    return {"protocolVersion": PROTOCOL_VERSION, "clientInfo": {"name": client_name, "version": __version__}}


def backends(result: Mapping[str, Any]) -> list[BackendInfo]:
    """The backends an ``initialize`` result reports; raises :class:`BridgeProtocolError` if the
    bridge speaks another protocol version."""
    version = result.get("protocolVersion")
    if version != PROTOCOL_VERSION:
        raise BridgeProtocolError(f"the bridge speaks protocol {version!r}, this client speaks {PROTOCOL_VERSION!r}")
    return [
        BackendInfo(
            name=str(b.get("name", "")),
            available=bool(b.get("available", False)),
            isolation=b.get("isolation"),
            detail=b.get("detail"),
        )
        for b in result.get("backends") or []
    ]


def _camel(key: str) -> str:
    """``timeout_ms`` -> ``timeoutMs``; keys without ``_`` are returned unchanged."""
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def typed_config(ca_certificates: Optional[CaCertificates], caches: Optional[Caches]) -> dict[str, Any]:
    """The ``caCertificates`` and ``caches`` config keys from the typed arguments (``None`` leaves a
    key out): ``"host"`` or absolute paths, and ``True``/``False`` or a list of kinds. An unknown
    kind raises here; the bridge refuses a missing file with INVALID_ARGUMENT."""
    out: dict[str, Any] = {}
    if ca_certificates is not None:
        if isinstance(ca_certificates, str):
            if ca_certificates != HOST_CA:
                raise InvalidArgumentError(
                    f"ca_certificates must be {HOST_CA!r} or a list of PEM file paths, not the string {ca_certificates!r}"
                )
            out["caCertificates"] = HOST_CA
        else:
            paths = [os.fspath(p) for p in ca_certificates]
            if HOST_CA in paths:
                raise InvalidArgumentError(f"ca_certificates: {HOST_CA!r} cannot be mixed with file paths")
            out["caCertificates"] = [os.path.abspath(p) for p in paths]
    if caches is not None:
        if isinstance(caches, bool):
            out["caches"] = caches
        else:
            kinds = [str(k) for k in caches]
            unknown = [k for k in kinds if k not in CACHE_KINDS]
            if unknown:
                raise InvalidArgumentError(f"unknown cache {unknown[0]!r}; known: {', '.join(CACHE_KINDS)}")
            out["caches"] = kinds
    return out


def create_params(config: Optional[Mapping[str, Any]], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``sandbox/create`` params: config keys in either spelling (``timeout_ms`` or ``timeoutMs``);
    the values of ``env`` and ``labels`` pass unchanged. Unknown keys are refused by the bridge."""
    return {_camel(k): v for k, v in {**(config or {}), **kwargs}.items()}


def from_snapshot_params(reference: str, config: Optional[Mapping[str, Any]], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``sandbox/fromSnapshot`` params: the snapshot reference and the config as for create."""
    return {"snapshot": reference, "config": create_params(config, kwargs)}


def connect_params(sandbox_id: str, state_dir: Optional[str], handle: Mapping[str, Any]) -> dict[str, Any]:
    """``sandbox/connect`` params: the id, the daemon's state dir, the handle's own settings."""
    params: dict[str, Any] = {"sandboxId": sandbox_id}
    if state_dir is not None:
        params["stateDir"] = str(state_dir)
    if handle:
        params["config"] = {_camel(k): v for k, v in handle.items()}
    return params


def validate_params(
    project_dir: Any,
    install: Optional[str],
    test: Optional[str],
    step_timeout_ms: Optional[int],
    config: Optional[Mapping[str, Any]],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """``project/validate`` params; the sandbox config as for ``sandbox/create``."""
    p: dict[str, Any] = {"projectDir": str(project_dir), "config": create_params(config, kwargs)}
    if install is not None:
        p["install"] = install
    if test is not None:
        p["test"] = test
    if step_timeout_ms is not None:
        p["stepTimeoutMs"] = step_timeout_ms
    return p


# ---- sandbox methods ----------------------------------------------------------------------------


def _b64(data: Any) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def content_fields(content: Content) -> dict[str, Any]:
    """``{"content": text}`` for a str, ``{"content": base64, "encoding": "base64"}`` for bytes."""
    if isinstance(content, str):
        return {"content": content}
    if isinstance(content, (bytes, bytearray, memoryview)):
        return {"content": _b64(content), "encoding": "base64"}
    raise InvalidArgumentError(f"content must be str or bytes, not {type(content).__name__}")


def exec_params(
    command: str,
    *,
    env: Optional[Mapping[str, str]],
    cwd: Optional[str],
    timeout_ms: Optional[int],
    stdin: Optional[Content],
    stream: bool,
) -> dict[str, Any]:
    """``sandbox/exec`` params (without ``sandboxId``)."""
    p: dict[str, Any] = {"command": command}
    if env is not None:
        p["env"] = dict(env)
    if cwd is not None:
        p["cwd"] = cwd
    if timeout_ms is not None:
        p["timeoutMs"] = int(timeout_ms)
    if stdin is not None:
        if isinstance(stdin, str):
            p["stdin"] = stdin
        else:
            p["stdin"] = _b64(stdin)
            p["stdinEncoding"] = "base64"
    if stream:
        p["stream"] = True
    return p


def write_file_params(path: str, content: Content, mode: Optional[int]) -> dict[str, Any]:
    """``sandbox/writeFile`` params."""
    p: dict[str, Any] = {"path": path, **content_fields(content)}
    if mode is not None:
        p["mode"] = int(mode)
    return p


def write_files_params(files: Mapping[str, Content], mode: Optional[int]) -> dict[str, Any]:
    """``sandbox/writeFiles`` params: every file in one request."""
    return {"files": [write_file_params(path, content, mode) for path, content in files.items()]}


def read_bytes_result(path: str, r: Mapping[str, Any]) -> bytes:
    """The bytes of a base64 ``sandbox/readFile`` result, checked against its ``size``."""
    data = base64.b64decode(r["content"], validate=True)
    if "size" in r and r["size"] != len(data):
        raise BridgeProtocolError(f"readFile {path}: size {r['size']} but {len(data)} bytes decoded")
    return data


def entries(r: Mapping[str, Any]) -> list[DirEntry]:
    """The entries of a ``sandbox/listDirectory`` result."""
    return [DirEntry(e["name"], e["kind"], int(e.get("size", 0))) for e in r.get("entries", [])]


def host_path(p: PathLike) -> str:
    """An absolute host path (the bridge may run in another working directory)."""
    return os.path.abspath(os.fspath(p))


def refresh_params(host: PathLike, container_path: str, exclude: Optional[Sequence[str]]) -> dict[str, Any]:
    """``sandbox/refreshFromHost`` params."""
    p: dict[str, Any] = {"hostPath": host_path(host), "containerPath": container_path}
    if exclude is not None:
        p["exclude"] = list(exclude)
    return p


def exists_query(path: str) -> tuple[Optional[str], str]:
    """``(parent to list, name to look for)`` for an existence check of ``path``."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return (parent if parent else ("/" if path.startswith("/") else None)), name
