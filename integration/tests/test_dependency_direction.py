"""The dependency direction of the monorepo is enforced by import-linter.

oci imports no other lib; storage and runtime may import oci; tools import
libs and never each other. The check must pass on the tree as it is, and must
fail when a forbidden import is added (checked on a copy of the sources).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ["libs/oci", "libs/storage", "libs/runtime", "tools/run", "tools/transfer", "tools/build"]
# import-linter, run on a copy of the sources: the editable installs of the
# real tree are taken off sys.path, or the namespace package `pallet` would
# mix the copy with the original.
LINT_COPY = """
import sys
sys.path[:] = [p for p in sys.path if p not in {originals!r}]
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename="pyproject.toml", no_cache=True))
"""


def lint(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(repo / d / "src") for d in SOURCE_DIRS)}
    return subprocess.run([sys.executable, "-c", LINT_COPY.format(originals={str(REPO / d / "src") for d in SOURCE_DIRS})],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    for directory in SOURCE_DIRS:
        shutil.copytree(REPO / directory / "src", tmp_path / directory / "src",
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_the_direction(source_copy: Path) -> None:
    result = lint(source_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("libs/oci/src/pallet/oci/digest.py", "pallet.storage"),  # oci imports no other lib
        ("libs/storage/src/pallet/storage/__init__.py", "pallet.runtime"),  # storage and runtime are siblings
        ("libs/runtime/src/pallet/runtime/cli/main.py", "pallet.transfer"),  # a lib never imports a tool
        ("tools/run/src/pallet/run/cli/app.py", "pallet.build"),  # tools never import each other
    ],
)
def test_a_forbidden_import_breaks_the_check(source_copy: Path, module: str, forbidden: str) -> None:
    path = source_copy / module
    path.write_text(path.read_text() + f"\nimport {forbidden}  # forbidden\n")
    result = lint(source_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert forbidden in result.stdout
