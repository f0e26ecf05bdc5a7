"""Timeouts, cancellation and concurrent requests of the sandbox API, once per backend."""

from __future__ import annotations

import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bridge_test_support import DockerBackend, LocalBackend, SandboxSuite, remove_log_dir
from dagger_sandbox_client import SandboxError


def tearDownModule() -> None:
    remove_log_dir()


class SandboxConcurrency(SandboxSuite):
    """Timeouts, cancellation and concurrency through the bridge; instantiated per backend below."""

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


class LocalConcurrencyTests(LocalBackend, SandboxConcurrency, unittest.TestCase):
    """Timeouts, cancellation and concurrency on the ``local`` backend."""


class DockerConcurrencyTests(DockerBackend, SandboxConcurrency, unittest.TestCase):
    """Timeouts, cancellation and concurrency on the ``docker`` backend."""


if __name__ == "__main__":
    unittest.main()
