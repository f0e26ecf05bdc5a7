"""The typed results (frozen dataclasses) and type aliases, in a module of their own so that every other module can use them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Union

Content = Union[str, bytes, bytearray, memoryview]
#: ``callable(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``, ``text`` the next chunk.
OutputCallback = Callable[[str, str], None]
NotificationCallback = Callable[[dict[str, Any]], None]
PathLike = Union[str, "os.PathLike[str]"]
#: A dependency cache a sandbox can mount (``caches``; see ``docs/configuration.md``).
CacheKind = Literal["npm", "pnpm", "yarn", "pip", "node-modules"]
#: Every :data:`CacheKind`, in order.
CACHE_KINDS: tuple[CacheKind, ...] = ("npm", "pnpm", "yarn", "pip", "node-modules")
#: ``caches``: ``True`` (all), ``False`` (none) or the kinds to mount.
Caches = Union[bool, Sequence[CacheKind]]
#: ``ca_certificates`` value that trusts the host's system bundle.
HOST_CA: Literal["host"] = "host"
#: ``ca_certificates``: :data:`HOST_CA`, or PEM file paths on the host (``[]`` turns the
#: ``DAGGER_SANDBOX_CA_CERTIFICATES`` default off).
CaCertificates = Union[Literal["host"], Sequence[PathLike]]


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
class OutputChunk:
    """One piece of a streamed command's output: ``stream`` is ``"stdout"`` or ``"stderr"``."""

    stream: str
    data: str


@dataclass(frozen=True)
class SandboxInfo:
    """What ``sandbox/create`` and ``sandbox/fork`` report about a new sandbox.

    ``image`` is ``None`` on the local backend; ``fallback_reason`` says why ``backend="auto"``
    fell back to ``local`` (else ``None``).
    """

    id: str
    backend: str
    isolation: str
    workdir: str
    image: Optional[str] = None
    fallback_reason: Optional[str] = None

    @classmethod
    def from_wire(cls, r: Mapping[str, Any]) -> "SandboxInfo":
        """Builds the info from the bridge's camelCase object."""
        return cls(
            id=str(r["sandboxId"]),
            backend=str(r.get("backend", "")),
            isolation=str(r.get("isolation", "")),
            workdir=str(r.get("workdir", "")),
            image=r.get("image"),
            fallback_reason=r.get("fallbackReason"),
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


@dataclass(frozen=True)
class StepReport:
    """One step of ``project/validate``: its exit code (-1 when it timed out), duration, and the
    last 40 lines / 4000 characters of each stream."""

    name: str
    command: str
    exit_code: int
    duration_ms: int
    timed_out: bool
    stdout_tail: str
    stderr_tail: str

    @property
    def passed(self) -> bool:
        """Exit 0 within its time."""
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class ValidateReport:
    """The verdict of ``project/validate``: the steps that ran, in order, up to the first that failed."""

    passed: bool
    backend: str
    isolation: str
    steps: list[StepReport]
    image: Optional[str] = None
    fallback_reason: Optional[str] = None
    node_modules_cache: str = "off"
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, r: Mapping[str, Any]) -> "ValidateReport":
        """Builds the report from the bridge's camelCase object."""
        steps = [
            StepReport(
                name=str(s["name"]),
                command=str(s["command"]),
                exit_code=int(s["exitCode"]),
                duration_ms=int(s["durationMs"]),
                timed_out=bool(s["timedOut"]),
                stdout_tail=str(s["stdoutTail"]),
                stderr_tail=str(s["stderrTail"]),
            )
            for s in r.get("steps", [])
        ]
        return cls(
            passed=bool(r["passed"]),
            backend=str(r.get("backend", "")),
            isolation=str(r.get("isolation", "")),
            steps=steps,
            image=r.get("image"),
            fallback_reason=r.get("fallbackReason"),
            node_modules_cache=str(r.get("nodeModulesCache", "off")),
            warnings=tuple(str(w) for w in r.get("warnings", [])),
        )


@dataclass(frozen=True)
class Snapshot:
    """A saved sandbox state (``sandbox/snapshot``): files, env and workdir, under ``id`` (and
    ``name``). ``env`` leaves out secret values; ``secret_env`` names them (pass their values in the
    ``env`` of ``create_from_snapshot``). ``size`` is ``None`` on Dagger; ``created_at`` is RFC 3339."""

    id: str
    name: Optional[str]
    backend: str
    created_at: str
    size: Optional[int]
    workdir: str
    env: Mapping[str, str]
    secret_env: tuple[str, ...]
    image: Optional[str]
    source: str
    engine_ref: str

    @classmethod
    def from_wire(cls, r: Mapping[str, Any]) -> "Snapshot":
        """Builds a snapshot from the bridge's camelCase object."""
        size = r.get("size")
        return cls(
            id=str(r["id"]),
            name=r.get("name"),
            backend=str(r["backend"]),
            created_at=str(r["createdAt"]),
            size=None if size is None else int(size),
            workdir=str(r["workdir"]),
            env=dict(r.get("env") or {}),
            secret_env=tuple(r.get("secretEnv") or ()),
            image=r.get("image"),
            source=str(r.get("source", "")),
            engine_ref=str(r.get("engineRef", "")),
        )
