"""Protocol tests of the bridge: framing, ids, error codes and lifecycle, independent of any backend.

They drive the bridge through the client's transport, with raw lines where the client would never
send them; their answers land in ``client.unmatched``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import close_quietly, drain

from dagger_sandbox import BridgeExitedError, Client, SandboxError
from dagger_sandbox._session import Options
from dagger_sandbox._sync_transport import SyncTransport


def test_bridge_binary_exists(bridge: Path) -> None:
    """Fails loudly (instead of skipping) when CI requires the bridge and it is missing."""
    assert bridge.is_file()


@pytest.fixture(scope="module")
def protocol_client(new_client: Callable[..., Client]) -> Iterator[Client]:
    c = new_client("protocol")
    yield c
    c.close()


class TestProtocol:
    """What docs/bridge-protocol.md promises about framing, ids, errors and lifecycle."""

    client: Client

    @pytest.fixture(autouse=True)
    def _client(self, protocol_client: Client, new_client: Callable[..., Client], bridge: Path) -> Iterator[None]:
        self.client = protocol_client
        self.new_client = new_client
        self.bridge = bridge
        yield
        assert self.client.alive, f"the bridge broke the protocol or died: {self.client.stderr_tail}"

    def raw(self, line: bytes, timeout: float = 10.0) -> dict:
        """Writes a raw line and returns the one answer it gets."""
        self.client.send_raw(line)
        return self.client.unmatched.get(timeout=timeout)

    def assert_alive(self, client: Optional[Any] = None) -> None:
        """The bridge still answers a normal request."""
        c = client or self.client
        with pytest.raises(SandboxError) as cm:
            c.request("sandbox/readFile", {"sandboxId": "sbx-000000000000", "path": "x"}, timeout=10)
        assert cm.value.code == "NOT_FOUND"

    def test_initialize_result_shape(self) -> None:
        r = self.client.initialize_result
        assert r["protocolVersion"] == "1"
        assert self.client.server_info["name"] == "dagger-sandbox-bridge"
        assert re.search(r"^\d+\.\d+\.\d+", self.client.server_info["version"])
        names = [b.name for b in self.client.backends]
        assert sorted(names) == ["dagger", "docker", "local"]
        for b in r["backends"]:
            assert isinstance(b["available"], bool)
            assert isinstance(b["detail"], str)
            assert b["isolation"] in ("container", "process")
        local = self.client.backend("local")
        assert local is not None
        assert local.available
        assert local.isolation == "process"
        assert self.client.backend("docker").isolation == "container"  # type: ignore[union-attr]
        caps = self.client.capabilities
        assert caps["streaming"] is True
        assert caps["cancel"] is True
        assert set(caps["encodings"]) == {"utf8", "base64"}
        assert caps["maxLineBytes"] == 64 * 1024 * 1024

    def test_version_flag(self) -> None:
        p = subprocess.run([str(self.bridge), "--version"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 0
        assert self.client.server_info["version"] in p.stdout + p.stderr

    def test_second_initialize_is_invalid_request(self) -> None:
        with pytest.raises(SandboxError) as cm:
            self.client.request("initialize", {"protocolVersion": "1"})
        assert cm.value.rpc_code == -32600
        assert cm.value.code == "INVALID_REQUEST"
        self.assert_alive()

    def test_request_before_initialize(self) -> None:
        c = SyncTransport(Options(self.bridge))
        try:
            with pytest.raises(SandboxError) as cm:
                c.request("sandbox/create", {"backend": "local"}, timeout=10)
            assert cm.value.rpc_code == -32002
            assert cm.value.code == "NOT_INITIALIZED"
            # An unsupported version is answered with the bridge's own.
            r = c.request("initialize", {"protocolVersion": "999"}, timeout=10)
            assert r["protocolVersion"] == "1"
            sid = c.request("sandbox/create", {"backend": "local"}, timeout=30)["sandboxId"]
            assert c.request("sandbox/exec", {"sandboxId": sid, "command": "echo ok"}, timeout=30)["stdout"] == "ok\n"
        finally:
            assert c._terminate() == 0

    def test_parse_errors_answer_with_null_id_and_bridge_keeps_reading(self) -> None:
        for line in (b"this is not json\n", b'{"jsonrpc":"2.0","id":5,\n', b"\xff\xfe\x80{}\n"):
            m = self.raw(line)
            assert "id" in m
            assert m["id"] is None
            assert m["error"]["code"] == -32700
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
            m = self.raw(line)
            assert m["error"]["code"] == -32600, m
            assert m["id"] in (None, echoed), m
        self.assert_alive()

    def test_ids_are_echoed_exactly(self) -> None:
        for rid in ("abc-1", 0, 9007199254740991, "", "ünï"):
            line = json.dumps(
                {"jsonrpc": "2.0", "id": rid, "method": "sandbox/readFile", "params": {"sandboxId": "sbx-x", "path": "a"}},
                ensure_ascii=False,
            ).encode()
            m = self.raw(line + b"\n")
            assert m["id"] == rid
            assert type(m["id"]) is type(rid)
            assert m["error"]["data"]["code"] == "NOT_FOUND"

    def test_bom_crlf_and_empty_lines_are_accepted(self) -> None:
        body = b'{"jsonrpc":"2.0","id":"bom","method":"sandbox/readFile","params":{"sandboxId":"sbx-x","path":"a"}}'
        m = self.raw(b"\n\r\n\n\xef\xbb\xbf" + body + b"\r\n")
        assert m["id"] == "bom"
        assert m["error"]["data"]["code"] == "NOT_FOUND"
        self.assert_alive()
        assert drain(self.client.unmatched) == [], "empty lines must not be answered"

    def test_unknown_method(self) -> None:
        with pytest.raises(SandboxError) as cm:
            self.client.request("sandbox/teleport", {"sandboxId": "x"})
        e = cm.value
        assert (e.rpc_code, e.code) == (-32601, "METHOD_NOT_FOUND")
        assert e.data == {"method": "sandbox/teleport"}

    def test_invalid_params_name_the_field(self) -> None:
        cases = [
            ("sandbox/readFile", {"sandboxId": "sbx-x", "path": "a", "bogusField": 1}, "bogusField"),
            ("sandbox/exec", {"sandboxId": "sbx-x"}, "command"),
            ("sandbox/readFile", {"sandboxId": "sbx-x", "path": 5}, "path"),
            ("sandbox/writeFile", {"sandboxId": "sbx-x", "path": "a", "content": "x", "mode": "755"}, "mode"),
        ]
        for method, params, fieldname in cases:
            with pytest.raises(SandboxError) as cm:
                self.client.request(method, params)
            assert (cm.value.rpc_code, cm.value.code) == (-32602, "INVALID_PARAMS")
            assert fieldname in cm.value.message
        with pytest.raises(SandboxError) as cm:
            self.client.request("sandbox/readFile", None)
        assert cm.value.rpc_code == -32602

    def test_notifications_get_no_answer(self) -> None:
        self.client.send_raw(b'{"jsonrpc":"2.0","method":"foo/bar","params":{}}\n')
        self.client.cancel(987654321)  # unknown id: ignored
        self.client.notify("exec/output", {"execId": "x"})
        self.assert_alive()
        time.sleep(0.2)
        assert drain(self.client.unmatched) == []

    def test_over_long_line_is_refused_and_the_next_line_is_served(self) -> None:
        c = self.new_client("longline", args=["--max-line-bytes", "4096"])
        try:
            long_line = b'{"jsonrpc":"2.0","id":"long","method":"sandbox/readFile","params":{"p":"' + b"a" * 10000 + b'"}}\n'
            nxt = b'{"jsonrpc":"2.0","id":"next","method":"sandbox/readFile","params":{"sandboxId":"sbx-x","path":"a"}}\n'
            c.send_raw(long_line + nxt)
            first = c.unmatched.get(timeout=10)
            assert first["id"] is None
            assert first["error"]["code"] == -32600
            assert "4096" in first["error"]["message"]
            second = c.unmatched.get(timeout=10)
            assert second["id"] == "next"
            assert second["error"]["data"]["code"] == "NOT_FOUND"
            # A line just under the limit is fine.
            with c.create(backend="local") as sb:
                sb.write_file("ok.txt", "x" * 3000)
                assert len(sb.read_file("ok.txt")) == 3000
        finally:
            c.close()

    def test_lines_over_64_kib_in_both_directions(self) -> None:
        with self.client.create(backend="local") as sb:
            text = "0123456789abcdef" * 8192 * 4  # 512 KiB
            sb.write_file("big.txt", text)
            assert sb.read_file("big.txt") == text
            r = sb.exec("cat big.txt")
            assert r.stdout == text

    def test_shutdown_closes_sandboxes_and_exits_zero(self) -> None:
        c = self.new_client("shutdown")
        sb = c.create(backend="local")
        root = sb.exec('printf %s "$SANDBOX_ROOT"').stdout
        assert root and os.path.isdir(root), root
        assert c.close() == 0
        assert not os.path.exists(root), "shutdown must remove the local sandbox directory"
        with pytest.raises(BridgeExitedError):
            c.request("sandbox/readFile", {"sandboxId": sb.id, "path": "x"})

    def test_shutdown_fails_in_flight_requests_with_closed(self) -> None:
        c = self.new_client("shutdown-inflight")
        try:
            sb = c.create(backend="local")
            _, fut = c.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 30"})
            time.sleep(0.3)
            started = time.monotonic()
            assert c.request("shutdown", timeout=20) == {}
            with pytest.raises(SandboxError) as cm:
                fut.result(timeout=20)
            assert (cm.value.rpc_code, cm.value.code) == (-32000, "CLOSED")
            assert c._proc.wait(timeout=20) == 0
            assert time.monotonic() - started < 15
        finally:
            c.close()

    def test_auto_falls_back_to_local_loudly_without_an_engine(self) -> None:
        c = self.new_client("nodocker", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
        try:
            docker = c.backend("docker")
            assert docker is not None
            assert not docker.available
            assert docker.detail
            with c.create() as sb:
                assert (sb.backend, sb.info.isolation) == ("local", "process")
                assert isinstance(sb.info.fallback_reason, str)
                assert "local" in sb.info.fallback_reason.lower()  # type: ignore[union-attr]
                assert sb.exec("echo works").stdout == "works\n"
            for kw in ({"fallback": False}, {"backend": "docker"}, {"backend": "dagger"}):
                with pytest.raises(SandboxError) as cm:
                    close_quietly(c.create(**kw))
                assert (cm.value.rpc_code, cm.value.code) == (-32000, "ENGINE_UNAVAILABLE")
        finally:
            assert c.close() == 0

    def test_eof_fails_in_flight_requests_with_closed_and_cleans_up(self) -> None:
        c = self.new_client("eof")
        try:
            sb = c.create(backend="local")
            root = sb.exec('printf %s "$SANDBOX_ROOT"').stdout
            started = time.monotonic()
            _, fut = c.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 30"})
            time.sleep(0.5)
            c.close_stdin()
            with pytest.raises(SandboxError) as cm:
                fut.result(timeout=20)
            assert cm.value.code == "CLOSED"
            assert c._proc.wait(timeout=20) == 0
            assert time.monotonic() - started < 15
            assert not os.path.exists(root), "EOF must remove the local sandbox directory"
        finally:
            c.close()

    def test_bridge_death_fails_pending_requests(self) -> None:
        c = self.new_client("death")
        try:
            # A partial line glues the next request onto it: the bridge answers -32700 (id null)
            # and never answers the request, which therefore stays pending.
            c.send_raw(b'{"jsonrpc":"2.0","id":"glued",')
            _, fut = c.submit("sandbox/readFile", {"sandboxId": "sbx-x", "path": "a"})
            assert c.unmatched.get(timeout=10)["error"]["code"] == -32700
            assert not fut.done()
            c._proc.send_signal(signal.SIGKILL)
            with pytest.raises(BridgeExitedError) as cm:
                fut.result(timeout=10)
            assert "was killed by signal 9 (SIGKILL)" in str(cm.value)
            assert cm.value.returncode == -signal.SIGKILL
            with pytest.raises(BridgeExitedError):
                c.request("sandbox/readFile", {"sandboxId": "sbx-x", "path": "a"})
        finally:
            c.close()

