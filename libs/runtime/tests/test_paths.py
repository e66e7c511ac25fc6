"""resolve_in_root: symlinks resolve inside the rootfs; climbing above it is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pallet.runtime.errors import BundleError
from pallet.runtime.paths import make_target, resolve_in_root


def test_absolute_symlink_targets_are_taken_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("/real", tmp_path / "link")
    assert resolve_in_root(tmp_path, "/link/sub") == tmp_path / "real" / "sub"


def test_relative_symlink_and_dotdot_inside(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("../../a", tmp_path / "a" / "b" / "up")  # /a/b/up -> /a
    assert resolve_in_root(tmp_path, "/a/b/up/b/../x") == tmp_path / "a" / "x"


def test_symlink_climbing_above_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    os.symlink("../../../../etc", root / "escape")
    with pytest.raises(BundleError, match="escapes the container's rootfs"):
        resolve_in_root(root, "/escape/target")
    assert not (tmp_path / "etc").exists()


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    os.symlink("/loop", tmp_path / "loop")
    with pytest.raises(BundleError, match="too many levels"):
        resolve_in_root(tmp_path, "/loop")


def test_make_target_creates_files_and_directories(tmp_path: Path) -> None:
    assert make_target(tmp_path, "/x/y/file", is_file=True).is_file()
    assert make_target(tmp_path, "/x/dir", is_file=False).is_dir()
