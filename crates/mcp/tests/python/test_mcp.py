"""The MCP server driven by the official MCP Python SDK (`mcp` from PyPI) as a real client, over
stdio (`dagger-sandbox mcp`) and over Streamable HTTP against a daemon (`dagger-sandbox serve`,
`/mcp` with the bearer token): the whole flow of docs/mcp.md, bad input, and no container left
behind once a client is gone.

Run by scripts/mcp-test.sh (it builds the binary and caches the pinned SDK in a venv). Needs a
Docker engine with the local test images (scripts/engine.sh).
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

ROOT = Path(__file__).resolve().parents[4]
BIN = os.environ.get("DAGGER_SANDBOX_BIN", str(ROOT / "target" / "debug" / "dagger-sandbox"))
BUSYBOX = "dagger-sandbox-test/busybox:latest"
NODE = "dagger-sandbox-test/node:latest"
OWNER_LABEL = "dev.dagger-sandbox.owner"
SANDBOX_LABEL = "dev.dagger-sandbox.sandbox"
# What `npm test` would run, for a node image without npm (as crates/cli/tests/validate.rs).
INSTALL = "node -e \"require('./package.json')\""
TEST = "test ! -e node_modules && test ! -e .git && node test.js"


def containers(label: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.ID}}"],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.split()


def owned_by(pid: int) -> list[str]:
    """Containers a stdio server process made (owner label `pid@boot-id@pidns@host`)."""
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={OWNER_LABEL}",
         "--format", '{{.ID}} {{.Label "' + OWNER_LABEL + '"}}'],
        check=True, capture_output=True, text=True,
    ).stdout
    prefix = f"{pid}@{boot}@"
    return [line.split()[0] for line in out.splitlines() if line.split()[1:2] and line.split()[1].startswith(prefix)]


def node_project(parent: Path, name: str, passing: bool) -> Path:
    d = parent / name
    (d / "node_modules" / "junk").mkdir(parents=True)
    (d / ".git").mkdir()
    (d / "package.json").write_text('{"name": "tiny", "version": "1.0.0", "scripts": {"test": "node test.js"}}')
    body = "console.log('1 test passed')" if passing else "console.error('expected 2, got 3'); process.exit(1)"
    (d / "test.js").write_text(body + "\n")
    return d


def structured(r: types.CallToolResult) -> dict:
    assert not r.is_error, f"tool failed: {r.content}"
    assert r.structured_content is not None, "no structuredContent"
    assert r.content and r.content[0].type == "text" and r.content[0].text, "no text content"
    return r.structured_content


def error_code(r: types.CallToolResult) -> str:
    assert r.is_error, f"expected isError: {r.structured_content}"
    return r.structured_content["error"]["code"]


class Flow:
    """The flow both transports run; `self.t` is the TestCase, `self.root` a root directory."""

    def __init__(self, t: unittest.TestCase, c: Client, root: Path, outside: Path):
        self.t, self.c, self.root, self.outside = t, c, root, outside

    async def call(self, name, args=None, **kw):
        return await self.c.call_tool(name, args or {}, **kw)

    async def run(self) -> list[str]:
        t, c = self.t, self.c
        names = {tool.name for tool in (await c.list_tools()).tools}
        t.assertEqual(len(names), 14, names)
        for tool in (await c.list_tools()).tools:
            t.assertIsNotNone(tool.output_schema, tool.name)

        sb = structured(await self.call("sandbox_create", {"image": BUSYBOX, "env": {"GREETING": "hi"}}))
        sid = sb["id"]
        t.assertEqual((sb["backend"], sb["isolation"]), ("docker", "container"))
        t.assertEqual(len(containers(f"{SANDBOX_LABEL}={sid}")), 1)

        # exec with progress: output arrives as notifications while it runs
        seen = []

        async def progress(p, total, message):
            seen.append((time.monotonic(), message))

        start = time.monotonic()
        r = structured(await self.call(
            "sandbox_exec",
            {"sandbox": sid, "command": "for i in 1 2 3; do echo step $i $GREETING; sleep 0.4; done; exit 3"},
            progress_callback=progress,
        ))
        t.assertEqual(r["exitCode"], 3)
        t.assertIn("step 3 hi", r["stdout"])
        joined = "".join(m for _, m in seen)
        t.assertIn("step 1 hi", joined)
        first = next(ts for ts, m in seen if "step 1" in m)
        t.assertLess(first - start, time.monotonic() - start - 0.5, "progress came only at the end")

        # files
        w = structured(await self.call("file_write", {"sandbox": sid, "path": "src/app.txt", "content": "one\ntwo\nthree\ntwo\n"}))
        t.assertEqual(w["bytes"], 18)
        r = structured(await self.call("file_read", {"sandbox": sid, "path": "src/app.txt", "startLine": 2, "endLine": 3}))
        t.assertEqual((r["content"], r["encoding"], r["totalLines"]), ("two\nthree\n", "utf8", 4))
        e = await self.call("file_edit", {"sandbox": sid, "path": "src/app.txt", "oldText": "two", "newText": "2"})
        t.assertEqual(error_code(e), "EDIT_MISMATCH")
        t.assertIn("2 occurrence", e.structured_content["error"]["message"])
        e = structured(await self.call("file_edit", {"sandbox": sid, "path": "src/app.txt", "oldText": "two", "newText": "2", "expectedCount": 2}))
        t.assertEqual(e["replacements"], 2)
        r = structured(await self.call("file_read", {"sandbox": sid, "path": "src/app.txt"}))
        t.assertEqual(r["content"], "one\n2\nthree\n2\n")
        raw = bytes(range(256))
        structured(await self.call("file_write", {"sandbox": sid, "path": "bin.dat", "content": base64.b64encode(raw).decode(), "encoding": "base64"}))
        r = structured(await self.call("file_read", {"sandbox": sid, "path": "bin.dat"}))
        t.assertEqual((r["encoding"], base64.b64decode(r["content"])), ("base64", raw))
        ls = structured(await self.call("file_list", {"sandbox": sid}))
        t.assertEqual({(x["name"], x["kind"]) for x in ls["entries"]}, {("src", "directory"), ("bin.dat", "file")})
        structured(await self.call("file_delete", {"sandbox": sid, "path": "bin.dat"}))
        t.assertEqual(error_code(await self.call("file_read", {"sandbox": sid, "path": "bin.dat"})), "NOT_FOUND")

        # fork: a copy; changes do not flow back
        fork = structured(await self.call("sandbox_fork", {"sandbox": sid}))
        fid = fork["id"]
        t.assertNotEqual(fid, sid)
        structured(await self.call("file_write", {"sandbox": fid, "path": "src/app.txt", "content": "forked"}))
        t.assertEqual(structured(await self.call("file_read", {"sandbox": sid, "path": "src/app.txt"}))["content"], "one\n2\nthree\n2\n")
        listed = {s["id"] for s in structured(await self.call("sandbox_list"))["sandboxes"]}
        t.assertTrue({sid, fid} <= listed, listed)

        # export inside a root, refused outside it (and through .. or a symlink)
        dest = self.root / "exported"
        x = structured(await self.call("sandbox_export", {"sandbox": sid, "path": "src", "hostPath": str(dest)}))
        t.assertEqual(x["kind"], "directory")
        t.assertEqual((dest / "app.txt").read_text(), "one\n2\nthree\n2\n")
        for bad in [str(self.outside / "x"), str(self.root / ".." / self.outside.name / "y"), "/etc/cron.d/x"]:
            r = await self.call("sandbox_export", {"sandbox": sid, "path": "src", "hostPath": bad})
            t.assertEqual(error_code(r), "PATH_OUTSIDE_ROOTS", bad)
        t.assertEqual(list(self.outside.iterdir()), [])
        (self.root / "link").symlink_to(self.outside)
        r = await self.call("sandbox_export", {"sandbox": sid, "path": "src", "hostPath": str(self.root / "link" / "z")})
        t.assertEqual(error_code(r), "PATH_OUTSIDE_ROOTS")
        t.assertEqual(error_code(await self.call("sandbox_import", {"sandbox": sid, "hostPath": "/etc/passwd"})), "PATH_OUTSIDE_ROOTS")
        (self.root / "in.txt").write_text("from host")
        structured(await self.call("sandbox_import", {"sandbox": sid, "hostPath": str(self.root / "in.txt"), "path": "in.txt"}))
        t.assertEqual(structured(await self.call("file_read", {"sandbox": sid, "path": "in.txt"}))["content"], "from host")

        # background command: a handle, output and exit code through service_logs
        bg = structured(await self.call("sandbox_exec", {"sandbox": sid, "command": "echo started; sleep 1; echo finished; exit 4", "background": True}))
        handle = bg["handle"]
        t.assertTrue(handle)
        for _ in range(100):
            logs = structured(await self.call("service_logs", {"sandbox": sid, "handle": handle}))
            if not logs["running"]:
                break
            await asyncio.sleep(0.1)
        t.assertEqual(logs["exitCode"], 4)
        t.assertEqual([line["text"] for line in logs["lines"]], ["started", "finished"])
        later = structured(await self.call("service_logs", {"sandbox": sid, "handle": handle, "since": logs["next"]}))
        t.assertEqual(later["lines"], [])

        # huge output is capped, and the cap is stated
        big = structured(await self.call("sandbox_exec", {"sandbox": sid, "command": "head -c 3000000 /dev/zero | tr '\\0' a"}))
        t.assertTrue(big["truncated"])
        t.assertLessEqual(len(big["stdout"]), big["outputCapBytes"] + 200)
        # a file over the file tools' load limit is refused before it is read
        structured(await self.call("sandbox_exec", {"sandbox": sid, "command": "head -c 17000000 /dev/zero > huge.bin"}))
        t.assertEqual(error_code(await self.call("file_read", {"sandbox": sid, "path": "huge.bin"})), "TOO_LARGE")

        # bad input: each a clear protocol error or an isError result
        with t.assertRaises(MCPError) as cm:
            await self.call("no_such_tool", {})
        t.assertIn("not found", str(cm.exception))
        r = await self.call("sandbox_exec", {"sandbox": sid, "command": 42})
        t.assertTrue(r.is_error)
        t.assertIn("invalid type", r.content[0].text)
        r = await self.call("sandbox_exec", {"sandbox": sid, "command": "true", "bogus": 1})
        t.assertTrue(r.is_error)
        t.assertIn("unknown field", r.content[0].text)
        t.assertEqual(error_code(await self.call("sandbox_exec", {"sandbox": "sbx-nope", "command": "true"})), "NOT_FOUND")
        t.assertEqual(error_code(await self.call("file_read", {"sandbox": sid, "path": "src/app.txt", "startLine": 3, "endLine": 1})), "INVALID_ARGUMENT")
        t.assertEqual(error_code(await self.call("sandbox_exec", {"sandbox": sid, "command": "sleep 5", "timeoutMs": 300})), "TIMEOUT")
        t.assertEqual(error_code(await self.call("sandbox_create", {"image": BUSYBOX, "env": {"A-B": "x"}})), "INVALID_ARGUMENT")

        # validate: a passing and a failing Node project, the `validate --json` shape
        ok = structured(await self.call("validate_project", {"path": str(node_project(self.root, "pass", True)), "image": NODE, "install": INSTALL, "test": TEST}, progress_callback=progress))
        t.assertTrue(ok["passed"], ok)
        t.assertEqual([s["name"] for s in ok["steps"]], ["install", "test"])
        t.assertIn("1 test passed", ok["steps"][1]["stdoutTail"])
        bad = structured(await self.call("validate_project", {"path": str(node_project(self.root, "fail", False)), "image": NODE, "install": INSTALL, "test": TEST}))
        t.assertFalse(bad["passed"])
        t.assertEqual(bad["steps"][1]["exitCode"], 1)
        t.assertIn("expected 2, got 3", bad["steps"][1]["stderrTail"])
        t.assertEqual(set(ok), {"passed", "backend", "isolation", "image", "fallbackReason", "steps", "nodeModulesCache", "warnings"})
        r = await self.call("validate_project", {"path": str(self.outside), "test": "true"})
        t.assertEqual(error_code(r), "PATH_OUTSIDE_ROOTS")

        # close one; the fork is left for the connection's end to close
        structured(await self.call("sandbox_close", {"sandbox": sid}))
        t.assertEqual(containers(f"{SANDBOX_LABEL}={sid}"), [])
        t.assertEqual(error_code(await self.call("sandbox_close", {"sandbox": sid})), "NOT_FOUND")
        return [sid, fid]


class Dirs:
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="ds-mcp-"))
        self.root = self.tmp / "root"
        self.outside = self.tmp / "outside"
        self.root.mkdir()
        self.outside.mkdir()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class StdioTest(Dirs, unittest.IsolatedAsyncioTestCase):
    def params(self, *extra):
        """The server, through `sh` that writes its pid first (`exec` keeps the pid) so the test
        can find its containers by their owner label."""
        self.pidfile = self.tmp / "server.pid"
        return StdioServerParameters(
            command="sh",
            args=["-c", f'echo $$ > {self.pidfile}; exec "$0" "$@"', BIN, "mcp", "--backend", "docker", "--image", BUSYBOX, *extra],
            env={**os.environ, "RUST_LOG": "warn"},
        )

    def server_pid(self) -> int:
        return int(self.pidfile.read_text())

    async def test_the_whole_flow_over_stdio_leaves_no_container(self):
        async with Client(self.params("--root", str(self.root))) as c:
            self.assertEqual(c.protocol_version, "2026-07-28")
            ids = await Flow(self, c, self.root, self.outside).run()
            self.assertEqual(len(containers(f"{SANDBOX_LABEL}={ids[1]}")), 1, "the fork is alive until the client exits")
            pid = self.server_pid()
            self.assertTrue(owned_by(pid))
        await wait_gone(lambda: owned_by(pid))

    async def test_client_declared_roots_are_reachable_and_nothing_else(self):
        declared = self.tmp / "declared"
        declared.mkdir()

        async def roots(_ctx):
            return types.ListRootsResult(roots=[types.Root(uri=declared.as_uri())])

        async with Client(self.params(), mode="legacy", list_roots_callback=roots) as c:
            sid = structured(await c.call_tool("sandbox_create", {}))["id"]
            structured(await c.call_tool("file_write", {"sandbox": sid, "path": "f.txt", "content": "x"}))
            ok = structured(await c.call_tool("sandbox_export", {"sandbox": sid, "path": "f.txt", "hostPath": str(declared / "f.txt")}))
            self.assertEqual(ok["kind"], "file")
            self.assertEqual((declared / "f.txt").read_text(), "x")
            r = await c.call_tool("sandbox_export", {"sandbox": sid, "path": "f.txt", "hostPath": str(self.root / "f.txt")})
            self.assertEqual(error_code(r), "PATH_OUTSIDE_ROOTS")
            r = await c.call_tool("sandbox_create", {"ttlSeconds": 60})
            self.assertIn("daemon", r.structured_content["error"]["message"])
            pid = self.server_pid()
        await wait_gone(lambda: owned_by(pid))

    async def test_a_client_that_disappears_mid_call_leaves_nothing_running(self):
        """Raw JSON-RPC: start a long command, then vanish (stdin closed, no reply read)."""
        proc = await asyncio.create_subprocess_exec(
            BIN, "mcp", "--backend", "docker", "--image", BUSYBOX,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )

        async def send(msg):
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            await proc.stdin.drain()

        async def reply(id_):
            while True:
                m = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
                if m.get("id") == id_:
                    return m

        await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
        self.assertEqual((await reply(1))["result"]["protocolVersion"], "2025-11-25")
        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sandbox_create", "arguments": {}}})
        sid = (await reply(2))["result"]["structuredContent"]["id"]
        await send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "sandbox_exec", "arguments": {"sandbox": sid, "command": "sleep 600"}}})
        await send({"jsonrpc": "2.0", "id": 4, "method": "not/a-method"})
        self.assertEqual((await reply(4))["error"]["code"], -32601)
        await send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "file_read", "arguments": "nope"}})
        self.assertIn("error", await reply(5))
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 60)
        self.assertEqual(containers(f"{SANDBOX_LABEL}={sid}"), [])
        self.assertEqual(owned_by(proc.pid), [])


async def wait_gone(left, seconds=30):
    for _ in range(seconds * 10):
        if not left():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"containers left behind: {left()}")


class HttpTest(Dirs, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.state = self.tmp / "state"
        env = {
            **os.environ,
            "RUST_LOG": "warn",
            "DAGGER_SANDBOX_MCP_IMAGE": BUSYBOX,
            "DAGGER_SANDBOX_MCP_BACKEND": "docker",
            "DAGGER_SANDBOX_MCP_ROOTS": str(self.root),
        }
        self.daemon = subprocess.Popen(
            [BIN, "serve", "--addr", "127.0.0.1:0", "--state-dir", str(self.state)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.daemon.stdout.readline()
        self.assertIn("listening on", line)
        info = json.loads((self.state / "daemon.json").read_text())
        self.url = f"http://{info['addr']}/mcp"
        self.token = (self.state / "token").read_text().strip()
        self.owner = f"{OWNER_LABEL}=daemon:{self.state.resolve()}"

    async def asyncTearDown(self):
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(30)
        self.daemon.stdout.close()
        subprocess.run([BIN, "clean", "--state-dir", str(self.state)], capture_output=True, timeout=60)

    def client(self, **kw):
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.token}"}, timeout=120)
        return Client(streamable_http_client(self.url, http_client=http), **kw)

    async def test_the_whole_flow_over_streamable_http_leaves_no_container(self):
        async with self.client() as c:
            self.assertEqual(c.protocol_version, "2026-07-28")
            ids = await Flow(self, c, self.root, self.outside).run()
            # stateless requests have no connection: their sandboxes are daemon sessions with a ttl
            structured(await c.call_tool("sandbox_close", {"sandbox": ids[1]}))
        await wait_gone(lambda: containers(self.owner))

    async def test_a_2025_session_closes_its_sandboxes_when_it_ends_unless_they_have_a_ttl(self):
        async with self.client(mode="legacy") as c:
            self.assertEqual(c.protocol_version, "2025-11-25")
            a = structured(await c.call_tool("sandbox_create", {}))
            self.assertEqual(a["lifetime"], "connection")
            kept = structured(await c.call_tool("sandbox_create", {"ttlSeconds": 600}))
            self.assertEqual(kept["lifetime"], "ttl")
        await wait_gone(lambda: containers(f"{SANDBOX_LABEL}={a['id']}"))
        self.assertEqual(len(containers(f"{SANDBOX_LABEL}={kept['id']}")), 1, "a ttl sandbox outlives the session")
        async with self.client(mode="legacy") as c:
            listed = {s["id"] for s in structured(await c.call_tool("sandbox_list"))["sandboxes"]}
            self.assertIn(kept["id"], listed)
            structured(await c.call_tool("sandbox_close", {"sandbox": kept["id"]}))
        await wait_gone(lambda: containers(self.owner))

    async def test_http_needs_the_token_and_a_vanished_client_stops_its_command(self):
        async with httpx2.AsyncClient(timeout=30) as http:
            r = await http.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            self.assertEqual(r.status_code, 401)
            r = await http.post(self.url, headers={"Authorization": "Bearer wrong"}, json={})
            self.assertEqual(r.status_code, 401)
        async with self.client(mode="legacy") as c:
            sid = structured(await c.call_tool("sandbox_create", {}))["id"]
            with self.assertRaises(Exception):
                await c.call_tool("sandbox_exec", {"sandbox": sid, "command": "sleep 4; touch /tmp/ran-to-the-end"}, read_timeout_seconds=1)
            await asyncio.sleep(5)
            r = structured(await c.call_tool("sandbox_exec", {"sandbox": sid, "command": "test -e /tmp/ran-to-the-end"}))
            self.assertEqual(r["exitCode"], 1, "the abandoned command was not stopped")
        await wait_gone(lambda: containers(self.owner))


if __name__ == "__main__":
    unittest.main(verbosity=2)
