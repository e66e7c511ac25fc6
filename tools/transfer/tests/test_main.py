"""pallet-transfer starts through its module entry and keeps start-up light."""

from __future__ import annotations

import subprocess
import sys

HEAVY_MODULES = ("pydantic", "httpx", "pyroute2", "zstandard")


def test_module_entry_answers_version() -> None:
    result = subprocess.run([sys.executable, "-m", "pallet.transfer", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "pallet-transfer version 0.1.0\n"


def test_version_and_help_import_no_heavy_module() -> None:
    for flag in ("--version", "--help"):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pallet.transfer", flag],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))


def _transfer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pallet.transfer", *args], capture_output=True, text=True, timeout=60)


def test_global_flags_work_before_and_after_the_subcommand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # skopeo's global flags are persistent: `skopeo copy --insecure-policy ...` works as written
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(b'{"schemaVersion":2}')
    expected = "sha256:" + __import__("hashlib").sha256(manifest.read_bytes()).hexdigest() + "\n"
    for args in (["--insecure-policy", "manifest-digest", str(manifest)],
                 ["manifest-digest", "--insecure-policy", str(manifest)],
                 ["--policy", "/nonexistent", "manifest-digest", str(manifest), "--debug"]):
        result = _transfer(*args)
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, ""), args


def test_usage_errors_name_the_problem_and_exit_1() -> None:
    cases = {
        ("inspect",): "the following arguments are required: IMAGE-NAME",
        ("inspect", "--raw=maybe", "docker://x"): "invalid argument 'maybe' for --raw: expected true or false",
        ("copy", "--retry-times", "x", "a", "b"): "argument --retry-times: invalid int value: 'x'",
        ("sync", "a", "b"): "the following arguments are required: -s/--src, -d/--dest",
        ("frobnicate",): "unrecognized command `pallet-transfer frobnicate`",
        ("inspect", "--no-such-flag", "docker://x"): "unrecognized arguments: --no-such-flag",
    }
    for args, message in cases.items():
        result = _transfer(*args)
        assert result.returncode == 1, args
        assert result.stdout == "", args
        assert result.stderr.splitlines()[0] == f"Error: {message}", (args, result.stderr)


def test_subcommand_help_lists_its_flags_and_the_global_ones() -> None:
    result = _transfer("copy", "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: pallet-transfer copy [OPTIONS] SOURCE-IMAGE DESTINATION-IMAGE\n")
    for flag in ("--src-tls-verify", "--dest-creds", "--image-parallel-copies", "--insecure-policy", "--override-arch"):
        assert flag in result.stdout


def test_a_password_left_out_of_creds_is_read_from_stdin_when_it_is_not_a_terminal() -> None:
    for stdin, expected in (("s3cret\n", "Password: Error: "), ("", "Password: Error: no password given (stdin is closed)")):
        result = subprocess.run([sys.executable, "-m", "pallet.transfer", "inspect", "--creds", "someone",
                                 "--tls-verify=false", "docker://127.0.0.1:9/x/y"], input=stdin, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.startswith(expected), result.stderr
        assert "s3cret" not in result.stderr + result.stdout  # never echoed
