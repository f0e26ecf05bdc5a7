"""Tests of the ``validate_project.py`` example script, run as a subprocess on each backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BRIDGE, REPO, SandboxSuite

VALIDATE = REPO / "examples" / "python" / "validate_project.py"


class TestValidateProject(SandboxSuite):
    """``examples/python/validate_project.py`` (a user of the package) against the bridge, once per backend."""

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
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "[install] ! installing" in ok.stdout
        assert "[test] | all-good" in ok.stdout
        assert re.search(r"(?m)^install\s+pass\s+0\s+\d+\s+installing$", ok.stdout)
        assert re.search(r"(?m)^test\s+pass\s+0\s+\d+\s+all-good$", ok.stdout)
        assert "verdict: PASS" in ok.stdout

        bad = self.run_validate(project, "--test", "sh -c 'test -f missing.txt'")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert re.search(r"(?m)^test\s+FAIL\s+1\s+\d+", bad.stdout)
        assert "verdict: FAIL" in bad.stdout

        skipped = self.run_validate(project, "--install", "echo broken; exit 7", "--test", "true")
        assert skipped.returncode == 1, skipped.stdout + skipped.stderr
        assert re.search(r"(?m)^install\s+FAIL\s+7\s+\d+\s+broken$", skipped.stdout)
        assert re.search(r"(?m)^test\s+skipped\s+-\s+-", skipped.stdout)



class TestValidateProjectMethod(SandboxSuite):
    """``Client.validate_project`` (``project/validate``): the main job in one call, per backend."""

    def test_a_verdict_per_step_and_typed_errors(self) -> None:
        from dagger_sandbox import InvalidArgumentError, ValidateReport

        project = self.tmp / "proj"
        (project / "node_modules").mkdir(parents=True)
        (project / "check.sh").write_text("echo checked; test ! -e node_modules\n")
        r = self.client.validate_project(project, self.CREATE, install="echo installed", test="sh check.sh")
        assert isinstance(r, ValidateReport)
        assert r.passed and r.backend == self.BACKEND, r
        assert [s.name for s in r.steps] == ["install", "test"]
        assert r.steps[1].stdout_tail == "checked" and r.steps[1].passed
        bad = self.client.validate_project(project, self.CREATE, install="", test="echo 'expected 2' >&2; exit 1")
        assert not bad.passed and bad.steps[0].exit_code == 1 and bad.steps[0].stderr_tail == "expected 2", bad
        with pytest.raises(InvalidArgumentError):
            self.client.validate_project(project, self.CREATE)  # no package.json, no commands
        with pytest.raises(InvalidArgumentError):
            self.client.validate_project(self.tmp / "missing", self.CREATE, test="true")
