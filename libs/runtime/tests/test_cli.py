"""pallet-runtime's command line speaks runc's dialect where conmon and podman read it."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pallet.runtime", *args], capture_output=True, text=True, timeout=60)


def test_version_names_the_runtime_spec_as_runc_does() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["pallet-runtime version 0.1.0", "spec: 1.1.0"]


def test_help_lists_runc_global_options() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--root", "--log", "--log-format", "--debug"):
        assert option in result.stdout


def test_bad_flag_fails_without_a_traceback() -> None:
    result = run("--no-such-flag")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--no-such-flag" in result.stderr
