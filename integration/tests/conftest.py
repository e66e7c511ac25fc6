"""Fixtures for the end-to-end tests of pallet-transfer beside the real skopeo (``test_transfer_*.py``).

- ``pallet_transfer``: runs ``.venv/bin/pallet-transfer`` as a subprocess
- ``skopeo_cli``: runs the real skopeo the same way (skips, or fails under
  PALLET_REQUIRE_ALL=1, when it is missing)
- ``registry_digest``: the digest a registry serves for ``repo:tag``, read
  with plain HTTP (independent of both tools)

Both tools run with the same hermetic environment: ``HOME`` and
``XDG_RUNTIME_DIR`` point into a session temp dir, so no auth.json of the
host is read or written. Tests that log in always name ``--authfile``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet_testing.registry import RegistryServer

PALLET_TRANSFER = Path(sys.executable).parent / "pallet-transfer"
# Every manifest type a registry may hold, so a HEAD answers with the stored digest (no conversion).
ACCEPT_ALL_MANIFESTS = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


@dataclass(frozen=True)
class Run:
    """One finished command: exit status, stdout as bytes (``raw``) and text (``out``), stderr."""

    args: tuple[str, ...]
    returncode: int
    raw: bytes
    err: str

    @property
    def out(self) -> str:
        return self.raw.decode()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def json(self) -> Any:
        return json.loads(self.raw)

    def describe(self) -> str:
        return f"`{' '.join(self.args)}` exited {self.returncode}\nstdout: {self.out[:2000]}\nstderr: {self.err[:4000]}"


@dataclass(frozen=True)
class Cli:
    """A command-line tool run as a subprocess; ``check`` (default) asserts exit status 0."""

    path: str
    env: Mapping[str, str]

    def __call__(self, *args: str, check: bool = True, cwd: Path | None = None, input: bytes | None = None,
                 timeout: float = 180) -> Run:
        argv = (self.path, *args)
        proc = subprocess.run(argv, capture_output=True, cwd=cwd, input=input, env=dict(self.env), timeout=timeout)
        result = Run(argv, proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))
        if check:
            assert result.returncode == 0, result.describe()
        return result

    def json(self, *args: str, **options: Any) -> Any:
        return self(*args, **options).json()


@pytest.fixture(scope="session")
def tool_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment both tools run in: the host's, with a private HOME and XDG_RUNTIME_DIR."""
    root = tmp_path_factory.mktemp("tool-env")
    (root / "home").mkdir()
    (root / "runtime").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}
    env.update(HOME=str(root / "home"), XDG_RUNTIME_DIR=str(root / "runtime"), LANG="C.UTF-8")
    return env


@pytest.fixture(scope="session")
def pallet_transfer(tool_environment: dict[str, str]) -> Cli:
    assert PALLET_TRANSFER.exists(), f"{PALLET_TRANSFER} is missing: install the workspace into .venv"
    return Cli(str(PALLET_TRANSFER), tool_environment)


@pytest.fixture(scope="session")
def skopeo_cli(skopeo: str, tool_environment: dict[str, str]) -> Cli:
    return Cli(skopeo, tool_environment)


def digest_in_registry(registry: RegistryServer, repository: str, reference: str) -> str | None:
    """The digest ``registry`` serves for ``repository:reference``, or None when it has none."""
    status, headers, _ = registry.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                          headers={"Accept": ACCEPT_ALL_MANIFESTS})
    if status == 404:
        return None
    assert status == 200, f"HEAD {repository}:{reference}: HTTP {status}"
    return headers["docker-content-digest"]


@pytest.fixture(scope="session")
def registry_digest() -> Callable[[RegistryServer, str, str], str | None]:
    return digest_in_registry
