"""The sandbox operations (exec, files, workdir, env, fork, host directories, errors), once per backend."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import pytest
from conftest import SandboxSuite, assert_error, close_quietly

from dagger_sandbox import (
    Client,
    ClosedError,
    DirEntry,
    ExecResult,
    InvalidParamsError,
    NotFoundError,
    OutputChunk,
    RestrictedPathError,
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxTimeoutError,
)


class TestSandboxOps(SandboxSuite):
    """The sandbox API through the bridge, once per backend."""

    # ---- create / exec -----------------------------------------------------------------

    def test_create_reports_backend(self) -> None:
        sb = self.sandbox(labels={"suite": "python"})
        assert sb.id
        assert sb.backend == self.BACKEND
        assert sb.info.isolation == self.ISOLATION
        assert sb.workdir == "/workspace"
        assert sb.info.fallback_reason is None
        assert isinstance(sb.info, SandboxInfo)
        assert sb.info.image == self.CREATE.get("image")
        other = self.sandbox()
        assert other.id != sb.id

    def test_unknown_config_key_is_refused(self) -> None:
        with pytest.raises(SandboxError) as cm:
            close_quietly(self.client.create(**self.CREATE, timeoutMss=5))
        assert (cm.value.rpc_code, cm.value.code) == (-32602, "INVALID_PARAMS")
        assert "timeoutMss" in cm.value.message
        assert_error("INVALID_ARGUMENT", lambda: close_quietly(self.client.create(**self.CREATE, workdir="rel")))
        assert_error(
            "INVALID_ARGUMENT", lambda: close_quietly(self.client.create(**self.CREATE, output_cap_bytes=10))
        )

    def test_exec_nonzero_exit_is_a_result_and_streams_are_separate(self) -> None:
        sb = self.sandbox()
        r = sb.exec("echo out; echo err >&2; exit 3")
        assert isinstance(r, ExecResult)
        assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
        assert not r.ok
        assert isinstance(r.duration_ms, int)
        assert r.duration_ms >= 0
        assert (r.truncated, r.stdout_dropped, r.stderr_dropped) == (False, 0, 0)
        assert r.exec_id
        r2 = sb.exec("true")
        assert (r2.exit_code, r2.stdout, r2.stderr) == (0, "", "")
        assert r2.exec_id != r.exec_id

    def test_exec_per_call_env_cwd_stdin(self) -> None:
        sb = self.sandbox()
        r = sb.exec('printf "%s|%s" "$FOO" "$BAR"', env={"FOO": "bar baz", "BAR": "ünï 🌍"})
        assert r.stdout == "bar baz|ünï 🌍"
        assert sb.exec('printf %s "${FOO-unset}"').stdout == "unset", "per-call env must not persist"
        sb.exec("mkdir -p sub/dir")
        r = sb.exec("pwd", cwd="sub/dir")
        assert r.stdout.strip().endswith("/sub/dir"), r.stdout
        assert sb.exec("ls", cwd="sub").stdout == "dir\n"
        assert sb.exec("cat", stdin="hello\nwörld").stdout == "hello\nwörld"
        payload = bytes(range(256)) * 4
        assert sb.exec("cat > stdin.bin", stdin=payload).exit_code == 0
        assert sb.read_bytes("stdin.bin") == payload
        assert sb.exec("wc -c < stdin.bin").stdout.strip() == "1024"

    def test_streaming_output_arrives_live_in_order_before_the_result(self) -> None:
        sb = self.sandbox()
        chunks: list[tuple[float, str, str]] = []
        r = sb.exec(
            "echo first; sleep 1; for i in 1 2 3; do echo line$i; done; echo err >&2",
            on_output=lambda s, t: chunks.append((time.monotonic(), s, t)),
        )
        done = time.monotonic()
        assert r.stdout == "first\nline1\nline2\nline3\n"
        assert "".join(t for _, s, t in chunks if s == "stdout") == r.stdout
        assert "".join(t for _, s, t in chunks if s == "stderr") == r.stderr
        assert r.stderr == "err\n"
        first_at = next(at for at, s, t in chunks if "first" in t)
        assert done - first_at > 0.5, "the first chunk must arrive while the command still runs"
        # On the wire: every exec/output of this exec precedes its response and names its request.
        tap = list(self.tap)
        resp = [i for i, e in enumerate(tap) if e[0] == "response" and e[2] == r.exec_id]
        assert len(resp) == 1
        rid = tap[resp[0]][1]
        outs = [i for i, e in enumerate(tap) if e[0] == "output" and e[1] == r.exec_id]
        assert len(outs) >= 2
        assert all(i < resp[0] for i in outs)
        assert all(tap[i][2] == rid for i in outs)
        # Without on_output no notification is sent.
        r2 = sb.exec("echo quiet")
        assert not (any(e[0] == "output" and e[1] == r2.exec_id for e in self.tap))

    def test_exec_stream_iterates_live_and_stops_the_command_when_left(self) -> None:
        sb = self.sandbox()
        seen: list[tuple[float, OutputChunk]] = []
        with sb.exec_stream("echo first; sleep 1; echo second; echo err >&2") as out:
            for chunk in out:
                seen.append((time.monotonic(), chunk))
        done = time.monotonic()
        assert out.result is not None and out.result.exit_code == 0
        assert "".join(c.data for _, c in seen if c.stream == "stdout") == out.result.stdout == "first\nsecond\n"
        assert "".join(c.data for _, c in seen if c.stream == "stderr") == "err\n"
        assert done - seen[0][0] > 0.5, "the first chunk must arrive while the command still runs"
        with pytest.raises(SandboxTimeoutError) as e:
            sb.exec_stream("echo partial; sleep 30", timeout_ms=1000).wait()
        assert e.value.partial is not None and e.value.partial.stdout == "partial\n"
        started = time.monotonic()
        with sb.exec_stream("echo go; sleep 2; touch late; sleep 30") as out:
            assert next(out).data == "go\n"
        time.sleep(max(0.0, started + 3.0 - time.monotonic()))
        assert sb.exec("test -e late; echo $?").stdout == "1\n", "leaving the block must kill the command"

    def test_streaming_keeps_split_utf8_characters_whole(self) -> None:
        sb = self.sandbox()
        chunks: list[str] = []
        r = sb.exec(r"printf '\303'; sleep 0.3; printf '\251\n'", on_output=lambda s, t: chunks.append(t))
        assert r.stdout == "é\n"
        assert "".join(chunks) == "é\n"
        assert "\ufffd" not in "".join(chunks)

    def test_output_cap_keeps_head_and_tail(self) -> None:
        sb = self.sandbox(output_cap_bytes=64)
        r = sb.exec("i=0; while [ $i -lt 100 ]; do printf 'line%03d\\n' $i; i=$((i+1)); done")
        assert r.truncated
        assert r.stdout_dropped == 800 - 64
        assert r.stdout.startswith("line000\n"), r.stdout
        assert r.stdout.endswith("line099\n"), r.stdout
        assert "dropped" in r.stdout

    # ---- files -------------------------------------------------------------------------

    def test_text_and_binary_round_trip_byte_exact(self) -> None:
        sb = self.sandbox()
        text = "héllo wörld 🌍\n中文\r\nlast line without newline"
        sb.write_file("u/ünï code.txt", text)
        assert sb.read_file("u/ünï code.txt") == text
        assert int(sb.exec("wc -c < 'u/ünï code.txt'").stdout) == len(text.encode("utf-8"))
        assert sb.read_bytes("u/ünï code.txt") == text.encode("utf-8")
        data = bytes(range(256))
        sb.write_file("bin/all.bytes", data)
        assert sb.read_bytes("bin/all.bytes") == data
        assert sb.exec("wc -c < bin/all.bytes").stdout.strip() == "256"
        assert sb.read_bytes("/workspace/bin/all.bytes") == data
        e = assert_error("INVALID_ARGUMENT", lambda: sb.read_file("bin/all.bytes"))
        assert "all.bytes" in e.message
        sb.write_file("empty", b"")
        assert sb.read_bytes("empty") == b""
        assert sb.read_file("empty") == ""
        sb.write_file("run.sh", "#!/bin/sh\necho ran\n", mode=0o755)
        assert sb.exec("./run.sh").stdout == "ran\n"
        sb.write_file("run.sh", "#!/bin/sh\necho again\n")  # overwrite
        assert sb.read_file("run.sh") == "#!/bin/sh\necho again\n"

    def test_ten_mib_binary_round_trip(self) -> None:
        sb = self.sandbox()
        data = os.urandom(10 * 1024 * 1024)
        sb.write_file("big.bin", data)
        assert sb.exec("wc -c < big.bin").stdout.strip() == str(len(data))
        back = sb.read_bytes("big.bin")
        assert len(back) == len(data)
        assert back == data, "10 MiB file changed in the round trip"

    def test_write_files_one_thousand_in_one_call(self) -> None:
        sb = self.sandbox()
        files: dict[str, Any] = {f"many/d{i % 10}/f{i:04d}.txt": f"file {i}\n" for i in range(999)}
        files["many/bin/data.bin"] = bytes(range(256))
        assert sb.write_files(files) == 1000
        assert sb.exec("find . -type f | wc -l", cwd="many").stdout.strip() == "1000"
        assert sb.read_file("many/d7/f0517.txt") == "file 517\n"
        assert sb.read_bytes("many/bin/data.bin") == bytes(range(256))
        assert sb.write_files({}) == 0

    def test_list_directory_kinds_sizes_sorted(self) -> None:
        sb = self.sandbox()
        sb.write_file("l/b.txt", "abc")
        sb.write_file("l/a.bin", bytes(10))
        sb.exec("mkdir l/zdir && ln -s b.txt l/link")
        entries = sb.list_directory("l")
        assert all(isinstance(e, DirEntry) for e in entries)
        assert [e.name for e in entries] == ["a.bin", "b.txt", "link", "zdir"]
        kinds = {e.name: e.kind for e in entries}
        assert kinds == {"a.bin": "file", "b.txt": "file", "link": "symlink", "zdir": "dir"}
        sizes = {e.name: e.size for e in entries}
        assert (sizes["a.bin"], sizes["b.txt"]) == (10, 3)
        assert "l" in [e.name for e in sb.list_directory()]  # default: the workdir
        assert sb.list_directory("l/zdir") == []
        assert_error("NOT_FOUND", lambda: sb.list_directory("nope"))
        assert sb.exists("l/b.txt")
        assert not sb.exists("l/c.txt")

    def test_delete_file_and_not_found(self) -> None:
        sb = self.sandbox()
        sb.write_file("gone.txt", "x")
        sb.write_files({"tree/a/b.txt": "1", "tree/c.txt": "2"})
        sb.delete_file("gone.txt")
        assert_error("NOT_FOUND", lambda: sb.read_file("gone.txt"))
        assert_error("NOT_FOUND", lambda: sb.delete_file("gone.txt"))
        sb.delete_file("tree")
        assert sb.exec("test -e tree; echo $?").stdout == "1\n"
        e = assert_error("NOT_FOUND", lambda: sb.read_file("missing/deeper.txt"))
        assert "missing" in e.message

    def test_restricted_paths(self) -> None:
        sb = self.sandbox(restricted_paths=["/workspace/locked/**"])
        sb.exec("mkdir -p locked && echo keep > locked/k.txt")
        assert_error("RESTRICTED_PATH", lambda: sb.write_file("locked/x.txt", "no"))
        assert_error("RESTRICTED_PATH", lambda: sb.delete_file("locked/k.txt"))
        assert_error("RESTRICTED_PATH", lambda: sb.write_files({"ok.txt": "1", "locked/y.txt": "2"}))
        assert_error("NOT_FOUND", lambda: sb.read_file("ok.txt"))  # all or nothing
        assert sb.read_file("locked/k.txt") == "keep\n"  # reads are allowed

    # ---- workdir, env, fork ----------------------------------------------------------

    def test_set_workdir_and_with_env_persist(self) -> None:
        sb = self.sandbox()
        assert sb.set_workdir("app") == "/workspace/app"
        assert sb.workdir == "/workspace/app"
        assert sb.exec("pwd").stdout.strip().endswith("/workspace/app")
        sb.write_file("x.txt", "in app")
        assert sb.read_file("/workspace/app/x.txt") == "in app"
        assert sb.exec("cat x.txt").stdout == "in app"
        sb.with_env(A="1")
        sb.with_env({"B": "2"})
        assert sb.exec('printf %s "$A$B"').stdout == "12"
        assert sb.exec('printf %s "$A$B"', env={"A": "x"}).stdout == "x2"
        assert sb.exec('printf %s "$A$B"').stdout == "12"
        assert_error("INVALID_ARGUMENT", lambda: sb.with_env({"C": "3", "BAD=NAME": "1"}))
        assert sb.exec('printf %s "${C-unset}"').stdout == "unset", "no variable may be set on error"
        assert sb.set_workdir("/workspace") == "/workspace"
        assert sb.read_file("app/x.txt") == "in app"

    def test_create_env_and_timeout_config(self) -> None:
        sb = self.sandbox(env={"FROM_CONFIG": "yes"}, timeout_ms=1000, workdir="/workspace/w")
        assert sb.workdir == "/workspace/w"
        assert sb.exec('printf %s "$FROM_CONFIG"').stdout == "yes"
        started = time.monotonic()
        assert_error("TIMEOUT", lambda: sb.exec("sleep 20"))
        assert time.monotonic() - started < 12

    def test_fork_is_isolated_both_ways(self) -> None:
        sb = self.sandbox()
        sb.write_file("shared.txt", "orig")
        sb.set_workdir("w")
        sb.with_env(ROLE="parent")
        fk = sb.fork()
        self._made.append(fk)
        assert fk.id != sb.id
        assert (fk.backend, fk.workdir) == (self.BACKEND, "/workspace/w")
        assert fk.read_file("/workspace/shared.txt") == "orig"
        assert fk.exec('printf %s "$ROLE"').stdout == "parent"
        fk.write_file("/workspace/shared.txt", "fork")
        fk.write_file("only-fork.txt", "f")
        fk.with_env(ROLE="fork")
        sb.write_file("only-parent.txt", "p")
        assert sb.read_file("/workspace/shared.txt") == "orig"
        assert fk.read_file("/workspace/shared.txt") == "fork"
        assert_error("NOT_FOUND", lambda: sb.read_file("only-fork.txt"))
        assert_error("NOT_FOUND", lambda: fk.read_file("only-parent.txt"))
        assert sb.exec('printf %s "$ROLE"').stdout == "parent"
        fk.close()
        assert sb.read_file("/workspace/shared.txt") == "orig", "closing a fork must not touch its parent"
        assert_error("CLOSED", lambda: fk.read_file("only-fork.txt"))

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
        assert listing == sorted(["./bin.dat", "./docs/readme.md", "./lib/docs/secret.txt", "./package.json", "./src/index.js"])
        assert sb.read_file("proj/src/index.js") == files["src/index.js"]
        assert sb.read_bytes("proj/bin.dat") == bytes(range(256))

        sb.exec("mkdir -p dist/sub && printf built > dist/sub/out.txt", cwd="proj")
        sb.write_file("proj/dist/blob.bin", bytes(range(255, -1, -1)))
        out = self.tmp / "out" / "dist"
        sb.export_directory("/workspace/proj/dist", out)
        assert (out / "sub" / "out.txt").read_text() == "built"
        assert (out / "blob.bin").read_bytes() == bytes(range(255, -1, -1))
        assert sorted(p.name for p in out.iterdir()) == ["blob.bin", "sub"]
        assert_error("NOT_FOUND", lambda: sb.export_directory("/workspace/nope", self.tmp / "nope"))

    # ---- errors ------------------------------------------------------------------------

    def test_unknown_sandbox_id_is_not_found(self) -> None:
        ghost = Sandbox(self.client, SandboxInfo(id="sbx-000000000000", backend="", isolation="", workdir=""))
        e = assert_error("NOT_FOUND", lambda: ghost.exec("true"))
        assert "sbx-000000000000" in e.message
        assert_error("NOT_FOUND", lambda: ghost.read_file("x"))
        assert_error("NOT_FOUND", lambda: ghost.fork())

    def test_calls_after_close_are_closed(self) -> None:
        sb = self.sandbox()
        sb.write_file("x", "1")
        sb.close()
        assert_error("CLOSED", lambda: sb.exec("true"))
        assert_error("CLOSED", lambda: sb.read_file("x"))
        assert_error("CLOSED", lambda: sb.write_file("y", "2"))
        assert_error("CLOSED", lambda: sb.fork())
        sb.close()  # idempotent

    def test_context_manager_closes(self) -> None:
        with self.client.create(**self.CREATE) as sb:
            sb.write_file("x", "1")
        assert_error("CLOSED", lambda: sb.read_file("x"))
        with pytest.raises(ZeroDivisionError):
            with self.client.create(**self.CREATE) as sb2:
                1 / 0
        assert_error("CLOSED", lambda: sb2.read_file("x"))


@pytest.mark.parametrize("backend_client", ["local"], indirect=True)
class TestLocalOnly(SandboxSuite):
    """The sandbox API on the ``local`` backend (always available)."""

    def test_local_paths_cannot_leave_the_sandbox(self) -> None:
        outside = self.tmp / "outside"
        outside.mkdir()
        (outside / "host.txt").write_text("host")
        sb = self.sandbox()
        sb.exec(f"ln -s '{outside / 'host.txt'}' file-link && ln -s '{outside}' dir-link")
        assert_error("INVALID_PATH", lambda: sb.read_file("file-link"))
        assert_error("INVALID_PATH", lambda: sb.read_bytes("dir-link/host.txt"))
        assert_error("INVALID_PATH", lambda: sb.write_file("dir-link/new.txt", "x"))
        assert_error("INVALID_PATH", lambda: sb.write_files({"ok.txt": "1", "dir-link/new2.txt": "x"}))
        assert_error("INVALID_PATH", lambda: sb.delete_file("dir-link/host.txt"))
        assert_error("INVALID_PATH", lambda: sb.list_directory("dir-link"))
        # Writing to the link itself may replace the link or be refused, never follow it.
        try:
            sb.write_file("file-link", "x")
        except SandboxError as e:
            assert e.code == "INVALID_PATH"
        assert (outside / "host.txt").read_text() == "host"
        assert sorted(p.name for p in outside.iterdir()) == ["host.txt"]
        try:
            content = sb.read_file("../../../../../../" + str(outside / "host.txt"))
        except SandboxError as e:
            assert e.code in ("INVALID_PATH", "NOT_FOUND")
        else:
            assert content != "host", "a .. path escaped the sandbox"

    def test_local_close_removes_the_sandbox_directory(self) -> None:
        sb = self.sandbox()
        fk = sb.fork()
        self._made.append(fk)
        roots = [x.exec('printf %s "$SANDBOX_ROOT"').stdout for x in (sb, fk)]
        assert roots[0] != roots[1]
        assert all(os.path.isdir(r) for r in roots), roots
        sb.close()
        assert not os.path.exists(roots[0])
        assert os.path.isdir(roots[1]), "closing the parent must not remove the fork"
        fk.close()
        assert not os.path.exists(roots[1])

    def test_local_environment_is_not_inherited(self, new_client: Callable[..., Client]) -> None:
        os.environ["DAGGER_SANDBOX_PY_SECRET"] = "leak"
        try:
            c = new_client("envleak")
            try:
                with c.create(backend="local") as sb:
                    assert sb.exec('printf %s "${DAGGER_SANDBOX_PY_SECRET-unset}"').stdout == "unset"
                with c.create(backend="local", env_passthrough=["DAGGER_SANDBOX_PY_*"]) as sb:
                    assert sb.exec('printf %s "$DAGGER_SANDBOX_PY_SECRET"').stdout == "leak"
            finally:
                c.close()
        finally:
            del os.environ["DAGGER_SANDBOX_PY_SECRET"]


@pytest.mark.parametrize("backend_client", ["docker"], indirect=True)
class TestDockerOnly(SandboxSuite):
    """The sandbox API on the ``docker`` backend with the local busybox test image."""

    def test_docker_sandbox_is_a_container(self) -> None:
        sb = self.sandbox()
        assert sb.exec("pwd").stdout == "/workspace\n"
        assert "BusyBox" in sb.exec("busybox 2>&1 | head -1").stdout
        r = sb.exec("wget -q -T 2 -O- http://1.1.1.1 >/dev/null 2>&1; echo $?")
        assert r.stdout.strip() != "0", "network must be off by default"
        sb.write_file("/etc/sandbox-marker", "inside")
        assert sb.exec("cat /etc/sandbox-marker").stdout == "inside"
        assert not os.path.exists("/etc/sandbox-marker")

