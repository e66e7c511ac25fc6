"""pallet-run starts through its module entry and keeps start-up light."""

from __future__ import annotations

import subprocess
import sys

HEAVY_MODULES = ("pydantic", "httpx", "pyroute2", "zstandard")


def test_module_entry_answers_version() -> None:
    result = subprocess.run([sys.executable, "-m", "pallet.run", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "pallet-run version 0.1.0\n"


def test_version_and_help_import_no_heavy_module() -> None:
    for flag in ("--version", "--help"):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pallet.run", flag],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))
