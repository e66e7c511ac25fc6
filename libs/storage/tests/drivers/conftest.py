"""Helpers for the driver tests: layer IDs, mount-table checks, unmount-everything teardown."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted_under(top: Path) -> list[str]:
    """Mount points at or under ``top`` in this mount namespace, deepest first."""
    prefix = str(top)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private directory (run roots must stay under 50 chars); every mount under it undone after."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
    try:
        yield path
    finally:
        for point in mounted_under(path):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
