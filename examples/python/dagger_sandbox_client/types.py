"""The plain result dataclasses and type aliases, in a module of their own so that every other module can use them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

Content = Union[str, bytes, bytearray, memoryview]
OutputCallback = Callable[[str, str], None]
NotificationCallback = Callable[[dict], None]
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ExecResult:
    """The result of ``sandbox/exec``. A non-zero ``exit_code`` is a result, not an error.

    ``truncated`` is true when the output cap dropped bytes; ``stdout_dropped`` and
    ``stderr_dropped`` count them.
    """

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int
    truncated: bool = False
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    exec_id: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_wire(cls, r: Mapping[str, Any]) -> "ExecResult":
        """Builds a result from the bridge's camelCase object."""
        return cls(
            exit_code=int(r.get("exitCode", -1)),
            stdout=r.get("stdout", ""),
            stderr=r.get("stderr", ""),
            duration_ms=int(r.get("durationMs", 0)),
            truncated=bool(r.get("truncated", False)),
            stdout_dropped=int(r.get("stdoutDropped", 0)),
            stderr_dropped=int(r.get("stderrDropped", 0)),
            exec_id=r.get("execId"),
        )


@dataclass(frozen=True)
class DirEntry:
    """One entry of ``sandbox/listDirectory``: ``kind`` is ``file``, ``dir``, ``symlink`` or ``other``."""

    name: str
    kind: str
    size: int


@dataclass(frozen=True)
class BackendInfo:
    """One backend as reported by ``initialize``."""

    name: str
    available: bool
    isolation: Optional[str] = None
    detail: Optional[str] = None
