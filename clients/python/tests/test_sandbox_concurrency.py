"""Timeouts, cancellation and concurrent requests of the sandbox API, once per backend."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import SandboxSuite, assert_error

from dagger_sandbox import ClientTimeoutError, RequestCancelledError, SandboxError, SandboxTimeoutError


class TestSandboxConcurrency(SandboxSuite):
    """Timeouts, cancellation and concurrency through the bridge, once per backend."""

    # ---- timeouts and cancellation ---------------------------------------------------

    def test_timeout_error_carries_partial_output(self) -> None:
        sb = self.sandbox()
        started = time.monotonic()
        e = assert_error("TIMEOUT", lambda: sb.exec("echo started; echo warn >&2; sleep 30", timeout_ms=1000))
        assert time.monotonic() - started < 12
        assert isinstance(e, SandboxTimeoutError) and isinstance(e, TimeoutError)
        assert e.data["code"] == "TIMEOUT"
        assert e.partial is not None
        assert (e.partial.stdout, e.partial.stderr) == ("started\n", "warn\n")
        assert e.partial.duration_ms >= 900
        assert "sleep 30" in e.message
        assert sb.exec("echo still usable").stdout == "still usable\n"

    def test_client_timeout_cancels_and_bridge_keeps_answering(self) -> None:
        sb = self.sandbox()
        started = time.monotonic()
        seen: list[str] = []
        with pytest.raises(ClientTimeoutError) as cm:
            sb.exec("echo go; sleep 2; touch late; sleep 30", timeout=1.0, on_output=lambda s, t: seen.append(t))
        assert cm.value.code == "CLIENT_TIMEOUT" and isinstance(cm.value, TimeoutError)
        assert "cancelled" in cm.value.message
        assert time.monotonic() - started < 10
        assert seen == ["go\n"]
        assert sb.exec("echo alive").stdout == "alive\n"
        time.sleep(max(0.0, started + 3.0 - time.monotonic()))
        assert sb.exec("test -e late; echo $?").stdout == "1\n", "the cancelled command must be killed"

    def test_cancel_by_raw_request_id(self) -> None:
        sb = self.sandbox()
        rid, fut = self.client.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 60"})
        time.sleep(0.3)
        self.client.cancel(rid)
        with pytest.raises(RequestCancelledError) as cm:
            fut.result(timeout=10)
        assert (cm.value.rpc_code, cm.value.code, cm.value.data) == (-32800, "CANCELLED", {"code": "CANCELLED"})
        self.client.cancel(rid)  # a finished id is ignored
        assert sb.exec("echo ok").stdout == "ok\n"

    def test_callback_exception_cancels_the_exec(self) -> None:
        sb = self.sandbox()

        def boom(stream: str, text: str) -> None:
            raise RuntimeError("callback failed")

        started = time.monotonic()
        with pytest.raises(RuntimeError):
            sb.exec("echo x; sleep 30", on_output=boom)
        assert time.monotonic() - started < 10
        assert sb.exec("echo ok").stdout == "ok\n"
        time.sleep(0.3)  # the CANCELLED answer to the abandoned request must be swallowed

    # ---- concurrency -----------------------------------------------------------------

    def test_fifty_interleaved_requests_across_five_sandboxes(self) -> None:
        with ThreadPoolExecutor(max_workers=5) as pool:
            sbs = list(pool.map(lambda _: self.sandbox(), range(5)))
        assert len({sb.id for sb in sbs}) == 5

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
            assert results[i] == expected, f"request {i}"
        for k, sb in enumerate(sbs):
            n = len([i for i in range(50) if i % 5 == k and i % 3 == 1])
            assert len(sb.list_directory("c")) == n

    def test_slow_exec_does_not_delay_other_requests(self) -> None:
        sb = self.sandbox()
        sb.write_file("f.txt", "fast")
        rid, slow = self.client.submit("sandbox/exec", {"sandboxId": sb.id, "command": "sleep 3; echo slow"})
        time.sleep(0.2)
        started = time.monotonic()
        assert sb.read_file("f.txt") == "fast"
        assert time.monotonic() - started < 1.5
        assert not slow.done(), "the read must not wait for the slow exec"
        self.client.cancel(rid)
        with pytest.raises(SandboxError) as cm:
            slow.result(timeout=20)
        assert cm.value.code == "CANCELLED"

