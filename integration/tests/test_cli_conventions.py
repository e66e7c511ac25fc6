"""Each tool behaves like its peer where scripts depend on it.

Exit statuses for a bad flag and for a bare invocation, the `--version` line,
and one `Error: ...` line on stderr. The expected values are those of skopeo
1.9, podman 4.3 and buildah 1.28; when the peer is installed, the test also
runs it and checks that it still behaves so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
# ours, peer, exit status of a bad flag, exit status of a bare invocation
CONVENTIONS = [
    ("pallet-transfer", "skopeo", 1, 1),
    ("pallet-run", "podman", 125, 125),
    ("pallet-build", "buildah", 125, 0),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("ours", "peer", "bad_flag", "bare"), CONVENTIONS)
def test_exit_statuses_match_the_peer(ours: str, peer: str, bad_flag: int, bare: int) -> None:
    result = run(str(BIN / ours), "--no-such-flag")
    assert result.returncode == bad_flag
    assert result.stderr.startswith("Error: ") and "--no-such-flag" in result.stderr.splitlines()[0]
    assert result.stdout == ""
    assert run(str(BIN / ours)).returncode == bare

    peer_path = shutil.which(peer)
    if peer_path is None:
        return  # the expectations above are the peer's documented behaviour
    assert run(peer_path, "--no-such-flag").returncode == bad_flag
    assert run(peer_path).returncode == bare


@pytest.mark.parametrize(("ours", "peer"), [(ours, peer) for ours, peer, _, _ in CONVENTIONS])
def test_version_line_has_the_peers_shape(ours: str, peer: str) -> None:
    for flag in ("--version", "-v"):
        result = run(str(BIN / ours), flag)
        assert result.returncode == 0
        assert result.stdout == f"{ours} version 0.1.0\n"
    peer_path = shutil.which(peer)
    if peer_path is not None:
        assert run(peer_path, "--version").stdout.startswith(f"{peer} version ")


@pytest.mark.parametrize("ours", [ours for ours, _, _, _ in CONVENTIONS])
def test_help_lists_usage_and_global_options(ours: str) -> None:
    result = run(str(BIN / ours), "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: {ours} [OPTIONS] COMMAND")
    for option in ("--version", "--debug", "--help"):
        assert option in result.stdout


def test_pallet_runtime_prints_version_as_runc_does() -> None:
    result = run(str(BIN / "pallet-runtime"), "--version")
    assert result.returncode == 0
    first, spec = result.stdout.splitlines()[:2]
    assert first == "pallet-runtime version 0.1.0"
    assert spec.startswith("spec: 1.")
