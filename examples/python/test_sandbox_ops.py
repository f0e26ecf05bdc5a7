"""The sandbox operations (exec, files, workdir, env, fork, host directories, errors), once per backend."""

from __future__ import annotations

import os
import time
import unittest
from typing import Any

from bridge_test_support import DockerBackend, LocalBackend, SandboxSuite, close_quietly, new_client, remove_log_dir
from dagger_sandbox_client import DirEntry, ExecResult, SandboxError


def tearDownModule() -> None:
    remove_log_dir()


class SandboxOps(SandboxSuite):
    """The sandbox API through the bridge; instantiated per backend below."""

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


class LocalSandboxTests(LocalBackend, SandboxOps, unittest.TestCase):
    """The sandbox API on the ``local`` backend (always available)."""

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


class DockerSandboxTests(DockerBackend, SandboxOps, unittest.TestCase):
    """The sandbox API on the ``docker`` backend with the local busybox test image."""

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
