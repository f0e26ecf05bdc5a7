"""The Sandbox handle: one method per ``sandbox/*`` request, apart from the connection that carries them."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from .errors import SandboxError
from .types import Content, DirEntry, ExecResult, NotificationCallback, OutputCallback, PathLike

if TYPE_CHECKING:
    from .client import BridgeClient


def _encode_content(content: Content) -> dict[str, Any]:
    """``{"content": ...}`` for a str, ``{"content": base64, "encoding": "base64"}`` for bytes."""
    if isinstance(content, str):
        return {"content": content}
    if isinstance(content, (bytes, bytearray, memoryview)):
        return {"content": base64.b64encode(bytes(content)).decode("ascii"), "encoding": "base64"}
    raise TypeError(f"content must be str or bytes, not {type(content).__name__}")


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
