"""Tests of the ``validate_project.py`` example script, run as a subprocess on each backend."""

from __future__ import annotations

import os
import subprocess
import sys
import unittest
from pathlib import Path

from bridge_test_support import BRIDGE, HERE, DockerBackend, LocalBackend, SandboxSuite, remove_log_dir

VALIDATE = HERE / "validate_project.py"


def tearDownModule() -> None:
    remove_log_dir()


class ValidateProject(SandboxSuite):
    """``validate_project.py`` against the bridge; instantiated per backend below."""

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


class LocalValidateProjectTests(LocalBackend, ValidateProject, unittest.TestCase):
    """``validate_project.py --backend local``."""


class DockerValidateProjectTests(DockerBackend, ValidateProject, unittest.TestCase):
    """``validate_project.py --backend docker`` with the local busybox test image."""


if __name__ == "__main__":
    unittest.main()
