"""Finding, starting and describing the bridge process: shared by the sync and the asyncio client."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any, Mapping, Optional, Union

from .errors import BridgeNotFoundError, BridgeStartError
from .types import PathLike

BRIDGE_NAME = "dagger-sandbox-bridge"

#: Where a bridge's stderr goes besides the kept tail: a path (appended to), a binary file object,
#: or ``None`` (only the tail is kept).
StderrSink = Union[None, PathLike, IO[bytes]]


def _repo_candidate() -> Optional[Path]:
    """``<repo>/<target>/debug/dagger-sandbox-bridge`` when this package runs from a checkout of
    the repository (an editable install), else ``None``."""
    here = Path(__file__).resolve()
    if len(here.parents) < 5:
        return None
    repo = here.parents[4]  # clients/python/src/dagger_sandbox/_bridge.py
    if not (repo / "crates" / "bridge").is_dir():
        return None
    return repo / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / BRIDGE_NAME


def find_bridge(bridge_path: Optional[PathLike] = None) -> Path:
    """The bridge binary: ``bridge_path``, else ``$DAGGER_SANDBOX_BRIDGE``, else
    ``dagger-sandbox-bridge`` on ``PATH``, else the debug build of the repository this package
    was installed from. Raises :class:`BridgeNotFoundError` naming every place it looked."""
    if bridge_path is not None:
        p = Path(bridge_path)
        if p.is_file():
            return p
        raise BridgeNotFoundError(f"{BRIDGE_NAME} not found at {p} (the bridge_path argument)")
    env = os.environ.get("DAGGER_SANDBOX_BRIDGE")
    if env:
        p = Path(env)
        if p.is_file():
            return p
        raise BridgeNotFoundError(f"{BRIDGE_NAME} not found at {p} ($DAGGER_SANDBOX_BRIDGE)")
    tried = [f"$DAGGER_SANDBOX_BRIDGE (unset)", f"{BRIDGE_NAME} on PATH"]
    on_path = shutil.which(BRIDGE_NAME)
    if on_path:
        return Path(on_path)
    repo = _repo_candidate()
    if repo is not None:
        if repo.is_file():
            return repo
        tried.append(str(repo))
    raise BridgeNotFoundError(
        f"{BRIDGE_NAME} not found (looked at: {', '.join(tried)}): build it with "
        f"`cargo build -p dagger-sandbox-bridge`, then pass bridge_path= or set DAGGER_SANDBOX_BRIDGE"
    )


def bridge_env(env: Optional[Mapping[str, Optional[str]]]) -> dict[str, str]:
    """``os.environ`` with ``env`` merged over it (a ``None`` value removes a variable)."""
    out = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def start_error(path: Path, exc: OSError, stderr_tail: str = "") -> BridgeStartError:
    """The error for a bridge binary the OS refused to start."""
    return BridgeStartError(f"could not start {path}: {exc.strerror or exc}", stderr_tail=stderr_tail)


def describe_exit(returncode: Optional[int]) -> str:
    """``exited with status 2``, ``was killed by signal 9 (SIGKILL)``, or ``closed its stdout``."""
    if returncode is None:
        return "closed its stdout"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with status {returncode}"


class StderrTail:
    """Keeps the first ``head`` and the last ``tail`` bytes the bridge wrote to stderr (quoted in
    :class:`BridgeError` messages: the first lines usually say what went wrong, the last ones what
    happened at the end) and copies everything to an optional sink. Thread-safe; memory stays
    bounded however much the bridge writes."""

    def __init__(self, sink: StderrSink = None, head: int = 1024, tail: int = 3072) -> None:
        self._head = bytearray()
        self._head_limit = head
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._dropped = False
        self._limit = tail
        self._lock = threading.Lock()
        self._own_sink = isinstance(sink, (str, os.PathLike))
        self._sink: Optional[IO[bytes]] = open(sink, "ab") if isinstance(sink, (str, os.PathLike)) else sink

    def feed(self, data: bytes) -> None:
        """Records a chunk read from the bridge's stderr."""
        with self._lock:
            if self._sink is not None:
                try:
                    self._sink.write(data)
                    self._sink.flush()
                except (OSError, ValueError):
                    self._sink = None  # a closed or full sink must not stop the reading
            room = self._head_limit - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if not data:
                return
            self._chunks.append(data)
            self._size += len(data)
            while self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())
                self._dropped = True

    def text(self) -> str:
        """The kept head and tail, decoded (invalid UTF-8 replaced), with a marker where bytes
        were left out."""
        with self._lock:
            head, data, dropped = bytes(self._head), b"".join(self._chunks), self._dropped
        if len(data) > self._limit:
            data, dropped = data[-self._limit :], True
        if dropped:
            data = b"[...]\n" + (data.split(b"\n", 1)[-1] if b"\n" in data else data)
        return (head + data).decode("utf-8", "replace").rstrip()

    def close(self) -> None:
        """Closes the sink if this object opened it."""
        with self._lock:
            if self._own_sink and self._sink is not None:
                self._sink.close()
            self._sink = None


def popen_kwargs() -> dict[str, Any]:
    """Arguments shared by both clients' process spawning: the bridge gets a process group of its
    own so that a Ctrl-C in the terminal reaches this program, which then shuts it down cleanly."""
    return {"start_new_session": True}
