"""The typed config arguments ``ca_certificates`` and ``caches`` of ``create`` and
``validate_project``: what they send, and what a sandbox on Docker gets from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import REQUIRE_DOCKER, docker_skip_reason
from dagger_sandbox import CACHE_KINDS, HOST_CA, Client, InvalidArgumentError
from dagger_sandbox import _wire


def host_bundle() -> str:
    return os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"


def test_typed_arguments_become_the_config_keys(tmp_path: Path) -> None:
    assert _wire.typed_config(None, None) == {}
    assert _wire.typed_config(HOST_CA, True) == {"caCertificates": "host", "caches": True}
    rel = os.path.relpath(tmp_path / "ca.pem")
    assert _wire.typed_config([rel, tmp_path / "b.pem"], ["npm", "pip"]) == {
        "caCertificates": [str(tmp_path / "ca.pem"), str(tmp_path / "b.pem")],
        "caches": ["npm", "pip"],
    }
    assert _wire.typed_config([], []) == {"caCertificates": [], "caches": []}
    assert CACHE_KINDS == ("npm", "pnpm", "yarn", "pip", "node-modules")
    with pytest.raises(InvalidArgumentError, match="cannot be mixed"):
        _wire.typed_config([HOST_CA, "x.pem"], None)
    with pytest.raises(InvalidArgumentError, match="list of PEM file paths"):
        _wire.typed_config("ca.pem", None)
    with pytest.raises(InvalidArgumentError, match="unknown cache 'maven'"):
        _wire.typed_config(None, ["npm", "maven"])  # type: ignore[list-item]


def test_a_docker_sandbox_trusts_the_ca_and_mounts_the_caches(
    new_client: Callable[..., Client], tmp_path: Path
) -> None:
    ns = f"pytest{os.getpid()}"
    volume = f"dagger-sandbox-cache-{os.getuid()}-{ns}-npm"
    with new_client("config", env={"DAGGER_SANDBOX_CACHE_NAMESPACE": ns}) as client:
        reason = docker_skip_reason(client)
        if reason:
            if REQUIRE_DOCKER:
                pytest.fail(reason)
            pytest.skip(reason)
        docker: dict[str, Any] = {"backend": "docker", "image": "dagger-sandbox-test/busybox:latest"}
        try:
            with client.create(docker, ca_certificates=HOST_CA, caches=["npm"]) as sb:
                r = sb.exec('head -n 1 "$NODE_EXTRA_CA_CERTS"; echo "$npm_config_cache"; test -d "$npm_config_cache" && echo mounted')
                assert r.stdout == "-----BEGIN CERTIFICATE-----\n/var/cache/dagger-sandbox/npm\nmounted\n", r
            with client.create(docker, ca_certificates=[host_bundle()], caches=False) as sb:
                r = sb.exec('head -n 1 "$NODE_EXTRA_CA_CERTS"; echo "cache=$npm_config_cache"')
                assert r.stdout == "-----BEGIN CERTIFICATE-----\ncache=\n", r
            with pytest.raises(InvalidArgumentError):
                client.create(docker, ca_certificates=[tmp_path / "missing.pem"])
            with pytest.raises(InvalidArgumentError, match="maven"):
                client.create(docker, caches=["maven"])  # type: ignore[list-item]
            project = tmp_path / "p"
            project.mkdir()
            report = client.validate_project(
                project, docker, install="", test='test -d "$npm_config_cache" && head -n 1 "$SSL_CERT_FILE"',
                ca_certificates=HOST_CA, caches=["npm"],
            )
            assert report.passed, report
            assert report.steps[0].stdout_tail.startswith("-----BEGIN CERTIFICATE-----"), report
        finally:
            # validate_project's container is removed by the engine just after the verdict, and
            # the volume is free only once it is gone.
            deadline = time.monotonic() + 60
            while shutil.which("docker") and time.monotonic() < deadline:
                rm = subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, timeout=60)
                if rm.returncode == 0:
                    break
                time.sleep(0.2)
