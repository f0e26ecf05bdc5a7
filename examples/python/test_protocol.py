"""Protocol tests of the bridge: framing, ids, error codes and lifecycle, independent of any backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import unittest
from typing import Optional

from bridge_test_support import BRIDGE, close_quietly, drain, new_client, remove_log_dir
from dagger_sandbox_client import BridgeClient, BridgeExitedError, SandboxError


def tearDownModule() -> None:
    remove_log_dir()


class BridgeBinaryPresent(unittest.TestCase):
    """Fails loudly (instead of skipping) when CI requires the bridge and it is missing."""

    def test_bridge_binary_exists(self) -> None:
        self.assertTrue(BRIDGE.exists(), f"dagger-sandbox-bridge not found at {BRIDGE}")


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


if __name__ == "__main__":
    unittest.main()
