"""The README's first command runs integration/demo.py: it must work offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "demo.py"


def test_demo_builds_stores_and_copies_an_image(tmp_path: Path, test_images) -> None:
    result = subprocess.run([sys.executable, str(DEMO), "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["1.", "2.", "3.", "4.", "5."]
    built = json.loads((tmp_path / "built" / "index.json").read_text())["manifests"]
    copied = json.loads((tmp_path / "copied" / "index.json").read_text())["manifests"]
    assert [m["digest"] for m in built] == [m["digest"] for m in copied]
    assert built[0]["annotations"]["org.opencontainers.image.ref.name"] == "hello"
    assert built[0]["digest"] in lines[0] and built[0]["digest"] in lines[3]
    assert sorted(p.name for p in (tmp_path / "built" / "blobs" / "sha256").iterdir()) == \
        sorted(p.name for p in (tmp_path / "copied" / "blobs" / "sha256").iterdir())
