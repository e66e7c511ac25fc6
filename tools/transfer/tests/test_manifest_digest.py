"""pallet-transfer manifest-digest prints the digest of the bytes as stored."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def transfer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pallet.transfer", *args], capture_output=True, text=True, timeout=60)


def test_digest_of_the_raw_bytes(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(b'{"schemaVersion": 2,\n  "layers": []}\n')  # odd spacing must not be normalised
    result = transfer("manifest-digest", str(manifest))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest() + "\n"


def test_missing_file_is_one_error_line(tmp_path: Path) -> None:
    result = transfer("manifest-digest", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert result.stderr == f"Error: reading manifest {tmp_path / 'nope.json'}: No such file or directory\n"
