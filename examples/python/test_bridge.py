"""Tests of ``dagger-sandbox-bridge`` through the Python client, against the real binary.

Run from the repository root::

    python3 -m unittest discover -s examples/python -v

The bridge is ``$DAGGER_SANDBOX_BRIDGE`` or ``target/debug/dagger-sandbox-bridge``; without it the
module is skipped (``cargo build -p dagger-sandbox-bridge`` first). The sandbox suite runs once on
the ``local`` backend and once on ``docker`` (image ``dagger-sandbox-test/busybox:latest``, built by
``scripts/engine.sh``) when ``initialize`` reports Docker available; otherwise the Docker half is
skipped with the reason. ``DAGGER_SANDBOX_REQUIRE_DOCKER=1`` turns a missing bridge, engine or
image into a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dagger_sandbox_client import (  # noqa: E402
    BridgeClient,
    BridgeExitedError,
    DirEntry,
    ExecResult,
    Sandbox,
    SandboxError,
    default_bridge_path,
)

BRIDGE = default_bridge_path()
REQUIRE_DOCKER = os.environ.get("DAGGER_SANDBOX_REQUIRE_DOCKER") == "1"
DOCKER_IMAGE = "dagger-sandbox-test/busybox:latest"
VALIDATE = HERE / "validate_project.py"
LOG_DIR = Path(tempfile.mkdtemp(prefix="dagger-sandbox-pytest-"))

if not BRIDGE.exists() and not REQUIRE_DOCKER:
    raise unittest.SkipTest(
        f"SKIPPED: dagger-sandbox-bridge not found at {BRIDGE}; build it with "
        "`cargo build -p dagger-sandbox-bridge` or set DAGGER_SANDBOX_BRIDGE"
    )


def tearDownModule() -> None:
    shutil.rmtree(LOG_DIR, ignore_errors=True)


def new_client(name: str, **kw: Any) -> BridgeClient:
    """A client whose bridge logs go to a file (quoted in errors if the bridge dies)."""
    kw.setdefault("request_timeout", 120.0)
    return BridgeClient(BRIDGE, stderr=LOG_DIR / f"bridge-{name}-{time.monotonic_ns()}.log", **kw)


def close_quietly(sb: Sandbox) -> None:
    try:
        sb.close()
    except SandboxError:
        pass


def drain(q: "Any") -> list:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except Exception:
            return out


class BridgeBinaryPresent(unittest.TestCase):
    """Fails loudly (instead of skipping) when CI requires the bridge and it is missing."""

    def test_bridge_binary_exists(self) -> None:
        self.assertTrue(BRIDGE.exists(), f"dagger-sandbox-bridge not found at {BRIDGE}")


# ============================================================================================
# Protocol: framing, lifecycle and error codes (backend-independent)
# ============================================================================================


class ProtocolTests(unittest.TestCase):
    """What docs/bridge-protocol.md promises about framing, ids, errors and lifecycle."""

    client: BridgeClient

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = new_client("protocol")
        cls.addClassCleanup(cls.client.close)

    def tearDown(self) -> None:
        self.assertEqual(self.client.protocol_violations, [], "the bridge wrote non-protocol lines to stdout")

    def raw(self, line: bytes, timeout: float = 10.0) -> dict:
        """Writes a raw line and returns the one answer it gets."""
        self.client.send_raw(line)
        return self.client.unmatched.get(timeout=timeout)

    def assert_alive(self, client: Optional[BridgeClient] = None) -> None:
        """The bridge still answers a normal request."""
        c = client or self.client
        with self.assertRaises(SandboxError) as cm:
            c.request("sandbox/readFile", {"sandboxId": "sbx-000000000000", "path": "x"}, timeout=10)
        self.assertEqual(cm.exception.code, "NOT_FOUND")

    def test_initialize_result_shape(self) -> None:
        r = self.client.initialize_result
        self.assertEqual(r["protocolVersion"], "1")
        self.assertEqual(self.client.server_info["name"], "dagger-sandbox-bridge")
        self.assertRegex(self.client.server_info["version"], r"^\d+\.\d+\.\d+")
        names = [b.name for b in self.client.backends]
        self.assertEqual(sorted(names), ["dagger", "docker", "local"])
        for b in r["backends"]:
            self.assertIsInstance(b["available"], bool)
            self.assertIsInstance(b["detail"], str)
            self.assertIn(b["isolation"], ("container", "process"))
        local = self.client.backend("local")
        assert local is not None
        self.assertTrue(local.available)
        self.assertEqual(local.isolation, "process")
        self.assertEqual(self.client.backend("docker").isolation, "container")  # type: ignore[union-attr]
        caps = self.client.capabilities
        self.assertIs(caps["streaming"], True)
        self.assertIs(caps["cancel"], True)
        self.assertEqual(set(caps["encodings"]), {"utf8", "base64"})
        self.assertEqual(caps["maxLineBytes"], 64 * 1024 * 1024)

    def test_version_flag(self) -> None:
        p = subprocess.run([str(BRIDGE), "--version"], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0)
        self.assertIn(self.client.server_info["version"], p.stdout + p.stderr)

    def test_second_initialize_is_invalid_request(self) -> None:
        with self.assertRaises(SandboxError) as cm:
            self.client.request("initialize", {"protocolVersion": "1"})
        self.assertEqual(cm.exception.rpc_code, -32600)
        self.assertEqual(cm.exception.code, "INVALID_REQUEST")
        self.assert_alive()

    def test_request_before_initialize(self) -> None:
        c = new_client("uninit", auto_initialize=False)
        try:
            with self.assertRaises(SandboxError) as cm:
                c.request("sandbox/create", {"backend": "local"}, timeout=10)
            self.assertEqual(cm.exception.rpc_code, -32002)
            self.assertEqual(cm.exception.code, "NOT_INITIALIZED")
            # An unsupported version is answered with the bridge's own.
            r = c.request("initialize", {"protocolVersion": "999"}, timeout=10)
            self.assertEqual(r["protocolVersion"], "1")
            with c.create(backend="local") as sb:
                self.assertEqual(sb.exec("echo ok").stdout, "ok\n")
        finally:
            self.assertEqual(c.close(), 0)

    def test_parse_errors_answer_with_null_id_and_bridge_keeps_reading(self) -> None:
        for line in (b"this is not json\n", b'{"jsonrpc":"2.0","id":5,\n', b"\xff\xfe\x80{}\n"):
            with self.subTest(line=line):
                m = self.raw(line)
                self.assertIn("id", m)
                self.assertIsNone(m["id"])
                self.assertEqual(m["error"]["code"], -32700)
                self.assert_alive()

    def test_invalid_request_objects(self) -> None:
        cases = [
            (b'[{"jsonrpc":"2.0","id":"b1","method":"sandbox/listDirectory","params":{"sandboxId":"x"}}]\n', None),
            (b'{"id":"nojsonrpc","method":"sandbox/listDirectory","params":{"sandboxId":"x"}}\n', "nojsonrpc"),
            (b'{"jsonrpc":"1.0","id":"v1","method":"sandbox/listDirectory","params":{"sandboxId":"x"}}\n', "v1"),
            (b'{"jsonrpc":"2.0","id":{"a":1},"method":"sandbox/listDirectory","params":{"sandboxId":"x"}}\n', None),
            (b'"just a string"\n', None),
        ]
        for line, echoed in cases:
            with self.subTest(line=line):
                m = self.raw(line)
                self.assertEqual(m["error"]["code"], -32600, m)
                self.assertIn(m["id"], (None, echoed), m)
        self.assert_alive()

    def test_ids_are_echoed_exactly(self) -> None:
        for rid in ("abc-1", 0, 9007199254740991, "", "ünï"):
            with self.subTest(id=rid):
                line = json.dumps(
                    {"jsonrpc": "2.0", "id": rid, "method": "sandbox/readFile", "params": {"sandboxId": "sbx-x", "path": "a"}},
                    ensure_ascii=False,
                ).encode()
                m = self.raw(line + b"\n")
                self.assertEqual(m["id"], rid)
                self.assertIs(type(m["id"]), type(rid))
                self.assertEqual(m["error"]["data"]["code"], "NOT_FOUND")

    def test_bom_crlf_and_empty_lines_are_accepted(self) -> None:
        body = b'{"jsonrpc":"2.0","id":"bom","method":"sandbox/readFile","params":{"sandboxId":"sbx-x","path":"a"}}'
        m = self.raw(b"\n\r\n\n\xef\xbb\xbf" + body + b"\r\n")
        self.assertEqual(m["id"], "bom")
        self.assertEqual(m["error"]["data"]["code"], "NOT_FOUND")
        self.assert_alive()
        self.assertEqual(drain(self.client.unmatched), [], "empty lines must not be answered")

    def test_unknown_method(self) -> None:
        with self.assertRaises(SandboxError) as cm:
            self.client.request("sandbox/teleport", {"sandboxId": "x"})
        e = cm.exception
        self.assertEqual((e.rpc_code, e.code), (-32601, "METHOD_NOT_FOUND"))
        self.assertEqual(e.data, {"method": "sandbox/teleport"})

    def test_invalid_params_name_the_field(self) -> None:
        cases = [
            ("sandbox/readFile", {"sandboxId": "sbx-x", "path": "a", "bogusField": 1}, "bogusField"),
            ("sandbox/exec", {"sandboxId": "sbx-x"}, "command"),
            ("sandbox/readFile", {"sandboxId": "sbx-x", "path": 5}, "path"),
            ("sandbox/writeFile", {"sandboxId": "sbx-x", "path": "a", "content": "x", "mode": "755"}, "mode"),
        ]
        for method, params, fieldname in cases:
            with self.subTest(method=method, params=params):
                with self.assertRaises(SandboxError) as cm:
                    self.client.request(method, params)
                self.assertEqual((cm.exception.rpc_code, cm.exception.code), (-32602, "INVALID_PARAMS"))
                self.assertIn(fieldname, cm.exception.message)
        with self.assertRaises(SandboxError) as cm:
            self.client.request("sandbox/readFile", None)
        self.assertEqual(cm.exception.rpc_code, -32602)

    def test_notifications_get_no_answer(self) -> None:
        self.client.send_raw(b'{"jsonrpc":"2.0","method":"foo/bar","params":{}}\n')
        self.client.cancel(987654321)  # unknown id: ignored
        self.client.notify("exec/output", {"execId": "x"})
        self.assert_alive()
        time.sleep(0.2)
        self.assertEqual(drain(self.client.unmatched), [])

    def test_over_long_line_is_refused_and_the_next_line_is_served(self) -> None:
        c = new_client("longline", args=["--max-line-bytes", "4096"])
        try:
            long_line = b'{"jsonrpc":"2.0","id":"long","method":"sandbox/readFile","params":{"p":"' + b"a" * 10000 + b'"}}\n'
            nxt = b'{"jsonrpc":"2.0","id":"next","method":"sandbox/readFile","params":{"sandboxId":"sbx-x","path":"a"}}\n'
            c.send_raw(long_line + nxt)
            first = c.unmatched.get(timeout=10)
            self.assertIsNone(first["id"])
            self.assertEqual(first["error"]["code"], -32600)
            self.assertIn("4096", first["error"]["message"])
            second = c.unmatched.get(timeout=10)
            self.assertEqual(second["id"], "next")
            self.assertEqual(second["error"]["data"]["code"], "NOT_FOUND")
            # A line just under the limit is fine.
            with c.create(backend="local") as sb:
                sb.write_file("ok.txt", "x" * 3000)
                self.assertEqual(len(sb.read_file("ok.txt")), 3000)
            self.assertEqual(c.protocol_violations, [])
        finally:
            c.close()

    def test_lines_over_64_kib_in_both_directions(self) -> None:
        with self.client.create(backend="local") as sb:
            text = "0123456789abcdef" * 8192 * 4  # 512 KiB
            sb.write_file("big.txt", text)
            self.assertEqual(sb.read_file("big.txt"), text)
            r = sb.exec("cat big.txt")
            self.assertEqual(r.stdout, text)

    def test_shutdown_closes_sandboxes_and_exits_zero(self) -> None:
        c = new_client("shutdown")
        sb = c.create(backend="local")
        root = sb.exec('printf %s "$SANDBOX_ROOT"').stdout
        self.assertTrue(root and os.path.isdir(root), root)
        self.assertEqual(c.close(), 0)
        self.assertFalse(os.path.exists(root), "shutdown must remove the local sandbox directory")
        with self.assertRaises(BridgeExitedError):
            c.request("sandbox/readFile", {"sandboxId": sb.id, "path": "x"})

    def test_shutdown_fails_in_flight_requests_with_closed(self) -> None:
        c = new_client("shutdown-inflight")
        try:
            sb = c.create(backend="local")
            _, fut = c.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 30"})
            time.sleep(0.3)
            started = time.monotonic()
            self.assertEqual(c.request("shutdown", timeout=20), {})
            with self.assertRaises(SandboxError) as cm:
                fut.result(timeout=20)
            self.assertEqual((cm.exception.rpc_code, cm.exception.code), (-32000, "CLOSED"))
            self.assertEqual(c.process.wait(timeout=20), 0)
            self.assertLess(time.monotonic() - started, 15)
        finally:
            c.close()

    def test_auto_falls_back_to_local_loudly_without_an_engine(self) -> None:
        c = new_client("nodocker", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
        try:
            docker = c.backend("docker")
            assert docker is not None
            self.assertFalse(docker.available)
            self.assertTrue(docker.detail)
            with c.create() as sb:
                self.assertEqual((sb.backend, sb.isolation), ("local", "process"))
                self.assertIsInstance(sb.fallback_reason, str)
                self.assertIn("local", sb.fallback_reason.lower())  # type: ignore[union-attr]
                self.assertEqual(sb.exec("echo works").stdout, "works\n")
            for kw in ({"fallback": False}, {"backend": "docker"}, {"backend": "dagger"}):
                with self.subTest(config=kw):
                    with self.assertRaises(SandboxError) as cm:
                        close_quietly(c.create(**kw))
                    self.assertEqual((cm.exception.rpc_code, cm.exception.code), (-32000, "ENGINE_UNAVAILABLE"))
        finally:
            self.assertEqual(c.close(), 0)

    def test_eof_fails_in_flight_requests_with_closed_and_cleans_up(self) -> None:
        c = new_client("eof")
        try:
            sb = c.create(backend="local")
            root = sb.exec('printf %s "$SANDBOX_ROOT"').stdout
            started = time.monotonic()
            _, fut = c.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 30"})
            time.sleep(0.5)
            c.close_stdin()
            with self.assertRaises(SandboxError) as cm:
                fut.result(timeout=20)
            self.assertEqual(cm.exception.code, "CLOSED")
            self.assertEqual(c.process.wait(timeout=20), 0)
            self.assertLess(time.monotonic() - started, 15)
            self.assertFalse(os.path.exists(root), "EOF must remove the local sandbox directory")
        finally:
            c.close()

    def test_bridge_death_fails_pending_requests(self) -> None:
        c = new_client("death")
        try:
            # A partial line glues the next request onto it: the bridge answers -32700 (id null)
            # and never answers the request, which therefore stays pending.
            c.send_raw(b'{"jsonrpc":"2.0","id":"glued",')
            _, fut = c.submit("sandbox/readFile", {"sandboxId": "sbx-x", "path": "a"})
            self.assertEqual(c.unmatched.get(timeout=10)["error"]["code"], -32700)
            self.assertFalse(fut.done())
            c.process.send_signal(signal.SIGKILL)
            with self.assertRaises(BridgeExitedError) as cm:
                fut.result(timeout=10)
            self.assertIn("exited", str(cm.exception))
            with self.assertRaises(BridgeExitedError):
                c.request("sandbox/readFile", {"sandboxId": "sbx-x", "path": "a"})
        finally:
            c.close()


# ============================================================================================
# The sandbox API, once per backend
# ============================================================================================


class SandboxSuite:
    """The sandbox API through the bridge; instantiated per backend below."""

    BACKEND = ""
    ISOLATION = ""
    CREATE: dict = {}
    client: BridgeClient
    tap: "collections.deque[tuple]"

    # unittest.TestCase methods, for type checkers
    assertEqual: Callable[..., None]
    assertTrue: Callable[..., None]
    assertIn: Callable[..., None]
    addCleanup: Callable[..., None]

    @classmethod
    def setUpClass(cls) -> None:
        tap: "collections.deque[tuple]" = collections.deque(maxlen=100_000)
        cls.tap = tap

        def on_message(m: dict) -> None:
            if m.get("method") == "exec/output":
                p = m.get("params", {})
                tap.append(("output", p.get("execId"), p.get("requestId")))
            elif "id" in m:
                r = m.get("result")
                tap.append(("response", m["id"], r.get("execId") if isinstance(r, dict) else None))

        cls.client = new_client(cls.BACKEND, on_message=on_message)
        cls.addClassCleanup(cls.client.close)
        cls.check_backend()

    @classmethod
    def check_backend(cls) -> None:
        pass

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"sbx-{self.BACKEND}-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def tearDown(self) -> None:
        self.assertEqual(self.client.protocol_violations, [], "the bridge wrote non-protocol lines to stdout")
        self.assertEqual(drain(self.client.unmatched), [], "messages that matched no request")

    def sandbox(self, **kw: Any) -> Sandbox:
        sb = self.client.create(**{**self.CREATE, **kw})
        self.addCleanup(close_quietly, sb)
        return sb

    def assert_error(self, code: str, fn: Callable[[], Any], rpc_code: int = -32000) -> SandboxError:
        try:
            fn()
        except SandboxError as e:
            self.assertEqual((e.code, e.rpc_code), (code, rpc_code), str(e))
            return e
        raise AssertionError(f"expected SandboxError {code}, got no error")

    # ---- create / exec -----------------------------------------------------------------

    def test_create_reports_backend(self) -> None:
        sb = self.sandbox(labels={"suite": "python"})
        self.assertTrue(sb.id)
        self.assertEqual(sb.backend, self.BACKEND)
        self.assertEqual(sb.isolation, self.ISOLATION)
        self.assertEqual(sb.workdir, "/workspace")
        self.assertIsNone(sb.fallback_reason)
        self.assertIn("image", sb.info)
        other = self.sandbox()
        self.assertNotEqual(other.id, sb.id)

    def test_unknown_config_key_is_refused(self) -> None:
        with self.assertRaises(SandboxError) as cm:
            close_quietly(self.client.create(**self.CREATE, timeoutMss=5))
        self.assertEqual((cm.exception.rpc_code, cm.exception.code), (-32602, "INVALID_PARAMS"))
        self.assertIn("timeoutMss", cm.exception.message)
        self.assert_error("INVALID_ARGUMENT", lambda: close_quietly(self.client.create(**self.CREATE, workdir="rel")))
        self.assert_error(
            "INVALID_ARGUMENT", lambda: close_quietly(self.client.create(**self.CREATE, output_cap_bytes=10))
        )

    def test_exec_nonzero_exit_is_a_result_and_streams_are_separate(self) -> None:
        sb = self.sandbox()
        r = sb.exec("echo out; echo err >&2; exit 3")
        self.assertIsInstance(r, ExecResult)
        self.assertEqual((r.exit_code, r.stdout, r.stderr), (3, "out\n", "err\n"))
        self.assertFalse(r.ok)
        self.assertIsInstance(r.duration_ms, int)
        self.assertGreaterEqual(r.duration_ms, 0)
        self.assertEqual((r.truncated, r.stdout_dropped, r.stderr_dropped), (False, 0, 0))
        self.assertTrue(r.exec_id)
        r2 = sb.exec("true")
        self.assertEqual((r2.exit_code, r2.stdout, r2.stderr), (0, "", ""))
        self.assertNotEqual(r2.exec_id, r.exec_id)

    def test_exec_per_call_env_cwd_stdin(self) -> None:
        sb = self.sandbox()
        r = sb.exec('printf "%s|%s" "$FOO" "$BAR"', env={"FOO": "bar baz", "BAR": "ünï 🌍"})
        self.assertEqual(r.stdout, "bar baz|ünï 🌍")
        self.assertEqual(sb.exec('printf %s "${FOO-unset}"').stdout, "unset", "per-call env must not persist")
        sb.exec("mkdir -p sub/dir")
        r = sb.exec("pwd", cwd="sub/dir")
        self.assertTrue(r.stdout.strip().endswith("/sub/dir"), r.stdout)
        self.assertEqual(sb.exec("ls", cwd="sub").stdout, "dir\n")
        self.assertEqual(sb.exec("cat", stdin="hello\nwörld").stdout, "hello\nwörld")
        payload = bytes(range(256)) * 4
        self.assertEqual(sb.exec("cat > stdin.bin", stdin=payload).exit_code, 0)
        self.assertEqual(sb.read_bytes("stdin.bin"), payload)
        self.assertEqual(sb.exec("wc -c < stdin.bin").stdout.strip(), "1024")

    def test_streaming_output_arrives_live_in_order_before_the_result(self) -> None:
        sb = self.sandbox()
        chunks: list[tuple[float, str, str]] = []
        r = sb.exec(
            "echo first; sleep 1; for i in 1 2 3; do echo line$i; done; echo err >&2",
            on_output=lambda s, t: chunks.append((time.monotonic(), s, t)),
        )
        done = time.monotonic()
        self.assertEqual(r.stdout, "first\nline1\nline2\nline3\n")
        self.assertEqual("".join(t for _, s, t in chunks if s == "stdout"), r.stdout)
        self.assertEqual("".join(t for _, s, t in chunks if s == "stderr"), r.stderr)
        self.assertEqual(r.stderr, "err\n")
        first_at = next(at for at, s, t in chunks if "first" in t)
        self.assertGreater(done - first_at, 0.5, "the first chunk must arrive while the command still runs")
        # On the wire: every exec/output of this exec precedes its response and names its request.
        tap = list(self.tap)
        resp = [i for i, e in enumerate(tap) if e[0] == "response" and e[2] == r.exec_id]
        self.assertEqual(len(resp), 1)
        rid = tap[resp[0]][1]
        outs = [i for i, e in enumerate(tap) if e[0] == "output" and e[1] == r.exec_id]
        self.assertGreaterEqual(len(outs), 2)
        self.assertTrue(all(i < resp[0] for i in outs))
        self.assertTrue(all(tap[i][2] == rid for i in outs))
        # Without on_output no notification is sent.
        r2 = sb.exec("echo quiet")
        self.assertFalse(any(e[0] == "output" and e[1] == r2.exec_id for e in self.tap))

    def test_streaming_keeps_split_utf8_characters_whole(self) -> None:
        sb = self.sandbox()
        chunks: list[str] = []
        r = sb.exec(r"printf '\303'; sleep 0.3; printf '\251\n'", on_output=lambda s, t: chunks.append(t))
        self.assertEqual(r.stdout, "é\n")
        self.assertEqual("".join(chunks), "é\n")
        self.assertNotIn("\ufffd", "".join(chunks))

    def test_output_cap_keeps_head_and_tail(self) -> None:
        sb = self.sandbox(output_cap_bytes=64)
        r = sb.exec("i=0; while [ $i -lt 100 ]; do printf 'line%03d\\n' $i; i=$((i+1)); done")
        self.assertTrue(r.truncated)
        self.assertEqual(r.stdout_dropped, 800 - 64)
        self.assertTrue(r.stdout.startswith("line000\n"), r.stdout)
        self.assertTrue(r.stdout.endswith("line099\n"), r.stdout)
        self.assertIn("dropped", r.stdout)

    # ---- files -------------------------------------------------------------------------

    def test_text_and_binary_round_trip_byte_exact(self) -> None:
        sb = self.sandbox()
        text = "héllo wörld 🌍\n中文\r\nlast line without newline"
        sb.write_file("u/ünï code.txt", text)
        self.assertEqual(sb.read_file("u/ünï code.txt"), text)
        self.assertEqual(int(sb.exec("wc -c < 'u/ünï code.txt'").stdout), len(text.encode("utf-8")))
        self.assertEqual(sb.read_bytes("u/ünï code.txt"), text.encode("utf-8"))
        data = bytes(range(256))
        sb.write_file("bin/all.bytes", data)
        self.assertEqual(sb.read_bytes("bin/all.bytes"), data)
        self.assertEqual(sb.exec("wc -c < bin/all.bytes").stdout.strip(), "256")
        self.assertEqual(sb.read_bytes("/workspace/bin/all.bytes"), data)
        e = self.assert_error("INVALID_ARGUMENT", lambda: sb.read_file("bin/all.bytes"))
        self.assertIn("all.bytes", e.message)
        sb.write_file("empty", b"")
        self.assertEqual(sb.read_bytes("empty"), b"")
        self.assertEqual(sb.read_file("empty"), "")
        sb.write_file("run.sh", "#!/bin/sh\necho ran\n", mode=0o755)
        self.assertEqual(sb.exec("./run.sh").stdout, "ran\n")
        sb.write_file("run.sh", "#!/bin/sh\necho again\n")  # overwrite
        self.assertEqual(sb.read_file("run.sh"), "#!/bin/sh\necho again\n")

    def test_ten_mib_binary_round_trip(self) -> None:
        sb = self.sandbox()
        data = os.urandom(10 * 1024 * 1024)
        sb.write_file("big.bin", data)
        self.assertEqual(sb.exec("wc -c < big.bin").stdout.strip(), str(len(data)))
        back = sb.read_bytes("big.bin")
        self.assertEqual(len(back), len(data))
        self.assertTrue(back == data, "10 MiB file changed in the round trip")

    def test_write_files_one_thousand_in_one_call(self) -> None:
        sb = self.sandbox()
        files: dict[str, Any] = {f"many/d{i % 10}/f{i:04d}.txt": f"file {i}\n" for i in range(999)}
        files["many/bin/data.bin"] = bytes(range(256))
        self.assertEqual(sb.write_files(files), 1000)
        self.assertEqual(sb.exec("find . -type f | wc -l", cwd="many").stdout.strip(), "1000")
        self.assertEqual(sb.read_file("many/d7/f0517.txt"), "file 517\n")
        self.assertEqual(sb.read_bytes("many/bin/data.bin"), bytes(range(256)))
        self.assertEqual(sb.write_files({}), 0)

    def test_list_directory_kinds_sizes_sorted(self) -> None:
        sb = self.sandbox()
        sb.write_file("l/b.txt", "abc")
        sb.write_file("l/a.bin", bytes(10))
        sb.exec("mkdir l/zdir && ln -s b.txt l/link")
        entries = sb.list_directory("l")
        self.assertTrue(all(isinstance(e, DirEntry) for e in entries))
        self.assertEqual([e.name for e in entries], ["a.bin", "b.txt", "link", "zdir"])
        kinds = {e.name: e.kind for e in entries}
        self.assertEqual(kinds, {"a.bin": "file", "b.txt": "file", "link": "symlink", "zdir": "dir"})
        sizes = {e.name: e.size for e in entries}
        self.assertEqual((sizes["a.bin"], sizes["b.txt"]), (10, 3))
        self.assertIn("l", [e.name for e in sb.list_directory()])  # default: the workdir
        self.assertEqual(sb.list_directory("l/zdir"), [])
        self.assert_error("NOT_FOUND", lambda: sb.list_directory("nope"))
        self.assertTrue(sb.exists("l/b.txt"))
        self.assertFalse(sb.exists("l/c.txt"))

    def test_delete_file_and_not_found(self) -> None:
        sb = self.sandbox()
        sb.write_file("gone.txt", "x")
        sb.write_files({"tree/a/b.txt": "1", "tree/c.txt": "2"})
        sb.delete_file("gone.txt")
        self.assert_error("NOT_FOUND", lambda: sb.read_file("gone.txt"))
        self.assert_error("NOT_FOUND", lambda: sb.delete_file("gone.txt"))
        sb.delete_file("tree")
        self.assertEqual(sb.exec("test -e tree; echo $?").stdout, "1\n")
        e = self.assert_error("NOT_FOUND", lambda: sb.read_file("missing/deeper.txt"))
        self.assertIn("missing", e.message)

    def test_restricted_paths(self) -> None:
        sb = self.sandbox(restricted_paths=["/workspace/locked/**"])
        sb.exec("mkdir -p locked && echo keep > locked/k.txt")
        self.assert_error("RESTRICTED_PATH", lambda: sb.write_file("locked/x.txt", "no"))
        self.assert_error("RESTRICTED_PATH", lambda: sb.delete_file("locked/k.txt"))
        self.assert_error("RESTRICTED_PATH", lambda: sb.write_files({"ok.txt": "1", "locked/y.txt": "2"}))
        self.assert_error("NOT_FOUND", lambda: sb.read_file("ok.txt"))  # all or nothing
        self.assertEqual(sb.read_file("locked/k.txt"), "keep\n")  # reads are allowed

    # ---- workdir, env, fork ----------------------------------------------------------

    def test_set_workdir_and_with_env_persist(self) -> None:
        sb = self.sandbox()
        self.assertEqual(sb.set_workdir("app"), "/workspace/app")
        self.assertEqual(sb.workdir, "/workspace/app")
        self.assertTrue(sb.exec("pwd").stdout.strip().endswith("/workspace/app"))
        sb.write_file("x.txt", "in app")
        self.assertEqual(sb.read_file("/workspace/app/x.txt"), "in app")
        self.assertEqual(sb.exec("cat x.txt").stdout, "in app")
        sb.with_env(A="1")
        sb.with_env({"B": "2"})
        self.assertEqual(sb.exec('printf %s "$A$B"').stdout, "12")
        self.assertEqual(sb.exec('printf %s "$A$B"', env={"A": "x"}).stdout, "x2")
        self.assertEqual(sb.exec('printf %s "$A$B"').stdout, "12")
        self.assert_error("INVALID_ARGUMENT", lambda: sb.with_env({"C": "3", "BAD=NAME": "1"}))
        self.assertEqual(sb.exec('printf %s "${C-unset}"').stdout, "unset", "no variable may be set on error")
        self.assertEqual(sb.set_workdir("/workspace"), "/workspace")
        self.assertEqual(sb.read_file("app/x.txt"), "in app")

    def test_create_env_and_timeout_config(self) -> None:
        sb = self.sandbox(env={"FROM_CONFIG": "yes"}, timeout_ms=1000, workdir="/workspace/w")
        self.assertEqual(sb.workdir, "/workspace/w")
        self.assertEqual(sb.exec('printf %s "$FROM_CONFIG"').stdout, "yes")
        started = time.monotonic()
        self.assert_error("TIMEOUT", lambda: sb.exec("sleep 20"))
        self.assertLess(time.monotonic() - started, 12)

    def test_fork_is_isolated_both_ways(self) -> None:
        sb = self.sandbox()
        sb.write_file("shared.txt", "orig")
        sb.set_workdir("w")
        sb.with_env(ROLE="parent")
        fk = sb.fork()
        self.addCleanup(close_quietly, fk)
        self.assertNotEqual(fk.id, sb.id)
        self.assertEqual((fk.backend, fk.workdir), (self.BACKEND, "/workspace/w"))
        self.assertEqual(fk.read_file("/workspace/shared.txt"), "orig")
        self.assertEqual(fk.exec('printf %s "$ROLE"').stdout, "parent")
        fk.write_file("/workspace/shared.txt", "fork")
        fk.write_file("only-fork.txt", "f")
        fk.with_env(ROLE="fork")
        sb.write_file("only-parent.txt", "p")
        self.assertEqual(sb.read_file("/workspace/shared.txt"), "orig")
        self.assertEqual(fk.read_file("/workspace/shared.txt"), "fork")
        self.assert_error("NOT_FOUND", lambda: sb.read_file("only-fork.txt"))
        self.assert_error("NOT_FOUND", lambda: fk.read_file("only-parent.txt"))
        self.assertEqual(sb.exec('printf %s "$ROLE"').stdout, "parent")
        fk.close()
        self.assertEqual(sb.read_file("/workspace/shared.txt"), "orig", "closing a fork must not touch its parent")
        self.assert_error("CLOSED", lambda: fk.read_file("only-fork.txt"))

    # ---- host directories ----------------------------------------------------------------

    def test_refresh_from_host_with_excludes_and_export_directory(self) -> None:
        host = self.tmp / "project"
        files = {
            "package.json": '{"name": "t"}\n',
            "src/index.js": "console.log(1)\n",
            "lib/docs/secret.txt": "kept: the pattern is anchored at hostPath\n",
            "docs/secret.txt": "excluded\n",
            "docs/readme.md": "kept\n",
            "node_modules/x/index.js": "excluded\n",
            "src/node_modules/y.js": "excluded anywhere\n",
            ".git/HEAD": "ref: refs/heads/main\n",
        }
        for rel, content in files.items():
            (host / rel).parent.mkdir(parents=True, exist_ok=True)
            (host / rel).write_text(content)
        (host / "bin.dat").write_bytes(bytes(range(256)))
        sb = self.sandbox()
        sb.refresh_from_host(host, "/workspace/proj", exclude=["node_modules", ".git", "docs/secret.txt"])
        listing = sb.exec("find . -type f | sort", cwd="proj").stdout.split()
        self.assertEqual(
            listing,
            sorted(["./bin.dat", "./docs/readme.md", "./lib/docs/secret.txt", "./package.json", "./src/index.js"]),
        )
        self.assertEqual(sb.read_file("proj/src/index.js"), files["src/index.js"])
        self.assertEqual(sb.read_bytes("proj/bin.dat"), bytes(range(256)))

        sb.exec("mkdir -p dist/sub && printf built > dist/sub/out.txt", cwd="proj")
        sb.write_file("proj/dist/blob.bin", bytes(range(255, -1, -1)))
        out = self.tmp / "out" / "dist"
        sb.export_directory("/workspace/proj/dist", out)
        self.assertEqual((out / "sub" / "out.txt").read_text(), "built")
        self.assertEqual((out / "blob.bin").read_bytes(), bytes(range(255, -1, -1)))
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["blob.bin", "sub"])
        self.assert_error("NOT_FOUND", lambda: sb.export_directory("/workspace/nope", self.tmp / "nope"))

    # ---- timeouts and cancellation ---------------------------------------------------

    def test_timeout_error_carries_partial_output(self) -> None:
        sb = self.sandbox()
        started = time.monotonic()
        e = self.assert_error("TIMEOUT", lambda: sb.exec("echo started; echo warn >&2; sleep 30", timeout_ms=1000))
        self.assertLess(time.monotonic() - started, 12)
        self.assertEqual(e.data["code"], "TIMEOUT")
        self.assertIsInstance(e.partial, dict)
        assert e.partial is not None
        self.assertEqual(e.partial["stdout"], "started\n")
        self.assertEqual(e.partial["stderr"], "warn\n")
        self.assertGreaterEqual(e.partial["durationMs"], 900)
        self.assertEqual(e.partial_result.stdout, "started\n")  # type: ignore[union-attr]
        self.assertIn("sleep 30", e.message)
        self.assertEqual(sb.exec("echo still usable").stdout, "still usable\n")

    def test_client_timeout_cancels_and_bridge_keeps_answering(self) -> None:
        sb = self.sandbox()
        started = time.monotonic()
        seen: list[str] = []
        e = self.assert_error(
            "CANCELLED",
            lambda: sb.exec("echo go; sleep 2; touch late; sleep 30", timeout=1.0, on_output=lambda s, t: seen.append(t)),
            rpc_code=-32800,
        )
        self.assertEqual(e.data, {"code": "CANCELLED"})
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(seen, ["go\n"])
        self.assertEqual(sb.exec("echo alive").stdout, "alive\n")
        time.sleep(max(0.0, started + 3.0 - time.monotonic()))
        self.assertEqual(sb.exec("test -e late; echo $?").stdout, "1\n", "the cancelled command must be killed")

    def test_cancel_by_raw_request_id(self) -> None:
        sb = self.sandbox()
        rid, fut = self.client.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 60"})
        time.sleep(0.3)
        self.client.cancel(rid)
        with self.assertRaises(SandboxError) as cm:
            fut.result(timeout=10)
        self.assertEqual((cm.exception.rpc_code, cm.exception.code), (-32800, "CANCELLED"))
        self.client.cancel(rid)  # a finished id is ignored
        self.assertEqual(sb.exec("echo ok").stdout, "ok\n")

    def test_callback_exception_cancels_the_exec(self) -> None:
        sb = self.sandbox()

        def boom(stream: str, text: str) -> None:
            raise RuntimeError("callback failed")

        started = time.monotonic()
        with self.assertRaises(RuntimeError):
            sb.exec("echo x; sleep 30", on_output=boom)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(sb.exec("echo ok").stdout, "ok\n")
        time.sleep(0.3)  # the CANCELLED answer to the abandoned request must be swallowed

    # ---- concurrency -----------------------------------------------------------------

    def test_fifty_interleaved_requests_across_five_sandboxes(self) -> None:
        with ThreadPoolExecutor(max_workers=5) as pool:
            sbs = list(pool.map(lambda _: self.sandbox(), range(5)))
        self.assertEqual(len({sb.id for sb in sbs}), 5)

        def job(i: int) -> tuple[int, Any]:
            sb = sbs[i % 5]
            kind = i % 3
            if kind == 0:
                return i, sb.exec(f"sleep 0.{i % 4}; echo job{i}", env={"N": str(i)}).stdout
            if kind == 1:
                sb.write_file(f"c/{i}.txt", f"content {i} " * (i + 1))
                return i, sb.read_file(f"c/{i}.txt")
            return i, sb.exec('printf %s "$N"', env={"N": str(i)}).stdout

        with ThreadPoolExecutor(max_workers=10) as pool:
            results = dict(pool.map(job, range(50)))
        for i in range(50):
            expected = [f"job{i}\n", f"content {i} " * (i + 1), str(i)][i % 3]
            self.assertEqual(results[i], expected, f"request {i}")
        for k, sb in enumerate(sbs):
            n = len([i for i in range(50) if i % 5 == k and i % 3 == 1])
            self.assertEqual(len(sb.list_directory("c")), n)

    def test_slow_exec_does_not_delay_other_requests(self) -> None:
        sb = self.sandbox()
        sb.write_file("f.txt", "fast")
        rid, slow = self.client.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 3; echo slow"})
        time.sleep(0.2)
        started = time.monotonic()
        self.assertEqual(sb.read_file("f.txt"), "fast")
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertFalse(slow.done(), "the read must not wait for the slow exec")
        self.client.cancel(rid)
        with self.assertRaises(SandboxError) as cm:
            slow.result(timeout=20)
        self.assertEqual(cm.exception.code, "CANCELLED")

    # ---- errors ------------------------------------------------------------------------

    def test_unknown_sandbox_id_is_not_found(self) -> None:
        ghost = self.client.attach("sbx-000000000000")
        e = self.assert_error("NOT_FOUND", lambda: ghost.exec("true"))
        self.assertIn("sbx-000000000000", e.message)
        self.assert_error("NOT_FOUND", lambda: ghost.read_file("x"))
        self.assert_error("NOT_FOUND", lambda: ghost.fork())

    def test_calls_after_close_are_closed(self) -> None:
        sb = self.sandbox()
        sb.write_file("x", "1")
        sb.close()
        self.assert_error("CLOSED", lambda: sb.exec("true"))
        self.assert_error("CLOSED", lambda: sb.read_file("x"))
        self.assert_error("CLOSED", lambda: sb.write_file("y", "2"))
        self.assert_error("CLOSED", lambda: sb.fork())
        sb.close()  # idempotent

    def test_context_manager_closes(self) -> None:
        with self.client.create(**self.CREATE) as sb:
            sb.write_file("x", "1")
        self.assert_error("CLOSED", lambda: sb.read_file("x"))
        with self.assertRaises(ZeroDivisionError):
            with self.client.create(**self.CREATE) as sb2:
                1 / 0
        self.assert_error("CLOSED", lambda: sb2.read_file("x"))

    # ---- the validate_project.py example ---------------------------------------------

    def run_validate(self, project: Path, *args: str) -> subprocess.CompletedProcess:
        extra = ["--image", self.CREATE["image"]] if "image" in self.CREATE else []
        return subprocess.run(
            [sys.executable, str(VALIDATE), str(project), "--backend", self.BACKEND, *extra, *args],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "DAGGER_SANDBOX_BRIDGE": str(BRIDGE)},
        )

    def test_validate_project_script(self) -> None:
        project = self.tmp / "tiny"
        (project / "node_modules" / "dep").mkdir(parents=True)
        (project / "node_modules" / "dep" / "index.js").write_text("")
        (project / ".git").mkdir()
        (project / "package.json").write_text('{"name": "tiny", "scripts": {"test": "true"}}\n')

        ok = self.run_validate(
            project,
            "--install", "echo installing >&2",
            "--test", "sh -c 'test -f package.json && test ! -e node_modules && test ! -e .git && echo all-good'",
        )
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("[install] ! installing", ok.stdout)
        self.assertIn("[test] | all-good", ok.stdout)
        self.assertRegex(ok.stdout, r"(?m)^install\s+pass\s+0\s+\d+\s+installing$")
        self.assertRegex(ok.stdout, r"(?m)^test\s+pass\s+0\s+\d+\s+all-good$")
        self.assertIn("verdict: PASS", ok.stdout)

        bad = self.run_validate(project, "--test", "sh -c 'test -f missing.txt'")
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertRegex(bad.stdout, r"(?m)^test\s+FAIL\s+1\s+\d+")
        self.assertIn("verdict: FAIL", bad.stdout)

        skipped = self.run_validate(project, "--install", "echo broken; exit 7", "--test", "true")
        self.assertEqual(skipped.returncode, 1, skipped.stdout + skipped.stderr)
        self.assertRegex(skipped.stdout, r"(?m)^install\s+FAIL\s+7\s+\d+\s+broken$")
        self.assertRegex(skipped.stdout, r"(?m)^test\s+skipped\s+-\s+-")


class LocalSandboxTests(SandboxSuite, unittest.TestCase):
    """The sandbox API on the ``local`` backend (always available)."""

    BACKEND = "local"
    ISOLATION = "process"
    CREATE = {"backend": "local"}

    def test_local_paths_cannot_leave_the_sandbox(self) -> None:
        outside = self.tmp / "outside"
        outside.mkdir()
        (outside / "host.txt").write_text("host")
        sb = self.sandbox()
        sb.exec(f"ln -s '{outside / 'host.txt'}' file-link && ln -s '{outside}' dir-link")
        self.assert_error("INVALID_PATH", lambda: sb.read_file("file-link"))
        self.assert_error("INVALID_PATH", lambda: sb.read_bytes("dir-link/host.txt"))
        self.assert_error("INVALID_PATH", lambda: sb.write_file("dir-link/new.txt", "x"))
        self.assert_error("INVALID_PATH", lambda: sb.write_files({"ok.txt": "1", "dir-link/new2.txt": "x"}))
        self.assert_error("INVALID_PATH", lambda: sb.delete_file("dir-link/host.txt"))
        self.assert_error("INVALID_PATH", lambda: sb.list_directory("dir-link"))
        # Writing to the link itself may replace the link or be refused, never follow it.
        try:
            sb.write_file("file-link", "x")
        except SandboxError as e:
            self.assertEqual(e.code, "INVALID_PATH")
        self.assertEqual((outside / "host.txt").read_text(), "host")
        self.assertEqual(sorted(p.name for p in outside.iterdir()), ["host.txt"])
        try:
            content = sb.read_file("../../../../../../" + str(outside / "host.txt"))
        except SandboxError as e:
            self.assertIn(e.code, ("INVALID_PATH", "NOT_FOUND"))
        else:
            self.assertNotEqual(content, "host", "a .. path escaped the sandbox")

    def test_local_close_removes_the_sandbox_directory(self) -> None:
        sb = self.sandbox()
        fk = sb.fork()
        self.addCleanup(close_quietly, fk)
        roots = [x.exec('printf %s "$SANDBOX_ROOT"').stdout for x in (sb, fk)]
        self.assertNotEqual(roots[0], roots[1])
        self.assertTrue(all(os.path.isdir(r) for r in roots), roots)
        sb.close()
        self.assertFalse(os.path.exists(roots[0]))
        self.assertTrue(os.path.isdir(roots[1]), "closing the parent must not remove the fork")
        fk.close()
        self.assertFalse(os.path.exists(roots[1]))

    def test_local_environment_is_not_inherited(self) -> None:
        os.environ["DAGGER_SANDBOX_PY_SECRET"] = "leak"
        try:
            c = new_client("envleak")
            try:
                with c.create(backend="local") as sb:
                    self.assertEqual(sb.exec('printf %s "${DAGGER_SANDBOX_PY_SECRET-unset}"').stdout, "unset")
                with c.create(backend="local", env_passthrough=["DAGGER_SANDBOX_PY_*"]) as sb:
                    self.assertEqual(sb.exec('printf %s "$DAGGER_SANDBOX_PY_SECRET"').stdout, "leak")
            finally:
                c.close()
        finally:
            del os.environ["DAGGER_SANDBOX_PY_SECRET"]


class DockerSandboxTests(SandboxSuite, unittest.TestCase):
    """The sandbox API on the ``docker`` backend with the local busybox test image."""

    BACKEND = "docker"
    ISOLATION = "container"
    CREATE = {"backend": "docker", "image": DOCKER_IMAGE}

    @classmethod
    def check_backend(cls) -> None:
        info = cls.client.backend("docker")
        reason = None
        if info is None or not info.available:
            reason = f"docker backend not available: {info.detail if info else 'not reported by initialize'}"
        elif shutil.which("docker"):
            p = subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE], capture_output=True, timeout=30)
            if p.returncode != 0:
                reason = f"image {DOCKER_IMAGE} missing: run `bash scripts/engine.sh --no-node`"
        if reason is None:
            return
        cls.client.close()
        if REQUIRE_DOCKER:
            raise AssertionError(f"DAGGER_SANDBOX_REQUIRE_DOCKER=1 but {reason}")
        raise unittest.SkipTest(f"SKIPPED: {reason}")

    def test_docker_sandbox_is_a_container(self) -> None:
        sb = self.sandbox()
        self.assertEqual(sb.exec("pwd").stdout, "/workspace\n")
        self.assertIn("BusyBox", sb.exec("busybox 2>&1 | head -1").stdout)
        r = sb.exec("wget -q -T 2 -O- http://1.1.1.1 >/dev/null 2>&1; echo $?")
        self.assertNotEqual(r.stdout.strip(), "0", "network must be off by default")
        sb.write_file("/etc/sandbox-marker", "inside")
        self.assertEqual(sb.exec("cat /etc/sandbox-marker").stdout, "inside")
        self.assertFalse(os.path.exists("/etc/sandbox-marker"))


if __name__ == "__main__":
    unittest.main()
