"""The driver tests' fixtures; makes ``drivers_support`` importable (tests run with --import-mode=importlib)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from drivers_support import mounted_under  # noqa: E402


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private directory (run roots must stay under 50 chars); every mount under it undone after."""
    path = Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
    try:
        yield path
    finally:
        for point in mounted_under(path):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
