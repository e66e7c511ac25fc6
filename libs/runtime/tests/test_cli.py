"""pallet-runtime's command line speaks runc's dialect where conmon and podman read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


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


def test_public_names_are_pinned() -> None:
    import pallet.runtime as runtime

    assert runtime.__all__ == [
        "BundleError", "ContainerExists", "ContainerNotFound", "ContainerRecord", "ContainerSetupFailed",
        "CreateOptions", "ExecOptions", "HookFailed", "InvalidContainerID", "KernelCallFailed", "OciRuntimeError",
        "Runtime", "StateCorrupt", "WrongStatus", "load_bundle",
    ]
    for name in runtime.__all__:
        assert getattr(runtime, name).__name__ == name


def test_an_error_is_one_line_and_a_json_log_entry_for_conmon(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    result = run("--root", str(tmp_path / "state"), "--log", str(log), "--log-format", "json",
                 "create", "--bundle", str(tmp_path / "no-bundle"), "c1")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"pallet-runtime: bundle {tmp_path / 'no-bundle'}: not a directory"]
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == f"bundle {tmp_path / 'no-bundle'}: not a directory"
    assert not (tmp_path / "state" / "c1").exists()


def test_spec_then_state_of_an_unknown_container(tmp_path: Path) -> None:
    assert run("spec", "--bundle", str(tmp_path)).returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"] and config["root"] == {"path": "rootfs", "readonly": True}
    missing = run("--root", str(tmp_path / "state"), "state", "nope")
    assert missing.returncode == 1 and missing.stderr == "pallet-runtime: container 'nope' does not exist\n"
    assert run("--root", str(tmp_path / "state"), "list", "--format", "json").stdout == "[]\n"
