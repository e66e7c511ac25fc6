"""pallet-run's command line: argparse in pallet-transfer's shape, podman's exit statuses and flags."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pallet.run.cli.app import split_command
from pallet.run.cli.options import GlobalOptions
from pallet.run.cli.parsing import UsageError, normalize, split_at_command
from pallet.run.commands import images

HEAVY_MODULES = {"pydantic", "httpx", "pyroute2", "zstandard", "typer", "click"}

HEADER = "REPOSITORY  TAG         IMAGE ID    CREATED     SIZE\n"


def test_sizes_and_table_are_podmans() -> None:
    assert [images.human_size(n) for n in (0, 999, 11331, 123456, 1500000, 999999)] == [
        "0 B", "999 B", "11.3 kB", "123 kB", "1.5 MB", "1e+03 kB"]
    assert images.tabulate([["REPOSITORY", "TAG", "SIZE"], ["localhost/x", "v1", "1 B"]]) == (
        "REPOSITORY   TAG         SIZE\n"
        "localhost/x  v1          1 B\n")
    assert images.repo_digests(["b/y:1", "a/x:1", "a/x:2"], ["sha256:d"]) == ["a/x@sha256:d", "b/y@sha256:d"]


def _tool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pallet.run", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def _store_flags(tmp_path: Path) -> list[str]:
    return ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "--storage-driver", "vfs"]


def test_images_of_an_empty_store_imports_no_heavy_module(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pallet.run", *_store_flags(tmp_path), "images"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == HEADER
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not imported & HEAVY_MODULES, sorted(imported & HEAVY_MODULES)
    assert (tmp_path / "root" / "vfs-images").is_dir()  # the store was opened where the flags say


def test_global_flags_go_before_or_after_the_subcommand(tmp_path: Path) -> None:
    flags = _store_flags(tmp_path)
    for args in ([*flags, "images", "-q"], ["images", *flags, "-q"], ["images", "--quiet=true", *flags, "--debug"]):
        result = _tool(*args)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), args
    result = _tool("images", "--quiet=false", *flags)
    assert result.stdout == HEADER


def test_usage_errors_exit_125_with_one_error_line() -> None:
    cases = {
        ("--no-such-flag",): "unrecognized arguments: --no-such-flag",
        ("frobnicate",): "unrecognized command `pallet-run frobnicate`",
        ("images", "--all=maybe"): "invalid argument 'maybe' for \"--all\" flag: expected true or false",
        ("images", "--root"): "argument --root: expected one argument",
        ("unshare", "--no-such"): "unrecognized arguments: --no-such",
    }
    for args, message in cases.items():
        result = _tool(*args)
        assert result.returncode == 125, args
        assert result.stdout == "", args
        assert result.stderr.splitlines()[0] == f"Error: {message}", (args, result.stderr)


def test_subcommand_help_lists_its_flags_and_the_global_ones() -> None:
    result = _tool("images", "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: pallet-run images [OPTIONS] [IMAGE]\n")
    for flag in ("--quiet", "--no-trunc", "--all", "--root", "--runroot", "--storage-driver", "--storage-opt"):
        assert flag in result.stdout
    result = _tool("--help")
    assert "images" in result.stdout and "unshare" in result.stdout


def test_split_command_skips_the_values_of_global_flags() -> None:
    assert split_command(["--root", "images", "images", "-q"]) == (["--root", "images"], "images", ["-q"])
    assert split_command(["--debug"]) == (["--debug"], None, [])


def test_unshare_passes_the_command_line_through() -> None:
    values = frozenset({"--root"})
    assert split_at_command(["--root", "x", "sh", "-c", "exit --all=false"], values) == (["--root", "x"], ["sh", "-c", "exit --all=false"])
    assert split_at_command(["--debug", "--", "--weird"], values) == (["--debug"], ["--weird"])
    assert split_at_command([], values) == ([], [])


def test_go_booleans() -> None:
    switches = frozenset({"all", "quiet"})
    assert normalize(["--all=true", "--quiet=false", "--root=x", "--", "--all=false"], switches) == [
        "--all", "--root=x", "--", "--all=false"]
    with pytest.raises(UsageError):
        normalize(["--all=maybe"], switches)


def test_storage_flags_win_over_the_environment_and_storage_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\ngraphroot = "/conf/graph"\nrunroot = "/conf/run"\n'
                    '[storage.options.overlay]\nmountopt = "nodev"\n')
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    monkeypatch.delenv("STORAGE_DRIVER", raising=False)
    monkeypatch.delenv("STORAGE_OPTS", raising=False)
    configured = GlobalOptions().store_options()
    if os.geteuid() == 0:
        assert (configured.graph_root, configured.run_root, configured.driver) == ("/conf/graph", "/conf/run", "overlay")
        assert configured.driver_options == ("overlay.mountopt=nodev",)
    monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    assert GlobalOptions().store_options().driver == "vfs"
    flagged = GlobalOptions(root="g", runroot=str(tmp_path / "r"), storage_driver="overlay2",
                            storage_opts=("overlay.mountopt=nodev,metacopy=on",)).store_options()
    assert flagged.graph_root == os.path.abspath("g") and flagged.run_root == str(tmp_path / "r")
    assert flagged.driver == "overlay" and flagged.driver_options == ("overlay.mountopt=nodev,metacopy=on",)
    assert GlobalOptions(storage_opts=("",)).store_options().driver_options == ()  # an empty --storage-opt clears


def test_the_flags_reach_the_store_through_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "STORAGE_DRIVER": "overlay", "CONTAINERS_STORAGE_CONF": str(tmp_path / "none.conf")}
    result = _tool("--root", str(tmp_path / "g"), "--runroot", str(tmp_path / "r"), "images", "-q",
                   "--storage-driver", "vfs", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "g" / "vfs-images").is_dir() and not (tmp_path / "g" / "overlay-images").exists()


def test_names_split_as_podman_shows_them() -> None:
    assert images.split_name("localhost/x:v1") == ("localhost/x", "v1")
    assert images.split_name("localhost:5000/a/b") == ("localhost:5000/a/b", "<none>")
    assert images.split_name("localhost:5000/a/b:t") == ("localhost:5000/a/b", "t")
    assert images.split_name("docker.io/library/busybox@sha256:" + "a" * 64) == ("docker.io/library/busybox", "<none>")


def test_human_durations_are_go_units() -> None:
    cases = {0.5: "Less than a second", 1: "1 second", 59: "59 seconds", 60: "About a minute", 119: "About a minute",
             120: "2 minutes", 3599: "59 minutes", 3600: "About an hour", 5399: "About an hour", 5400: "2 hours",
             47 * 3600: "47 hours", 48 * 3600: "2 days", 14 * 86400: "2 weeks", 60 * 86400: "2 months",
             800 * 86400: "2 years"}
    for seconds, text in cases.items():
        assert images.human_duration(timedelta(seconds=seconds)) == text, seconds


def test_image_argument_filters_by_name_as_podman() -> None:
    names = ["localhost/x:v1", "localhost/y:v2"]
    for wanted in ("localhost/x", "x", "x:v1", "localhost/*", "y", "localhost/x:v1"):
        assert images.matches(wanted, names), wanted
    for wanted in ("0aa5", "localhost/x:v2", "a", "calhost/x"):
        assert not images.matches(wanted, names), wanted
