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
    assert built[0]["annotations"]["org.opencontainers.image.ref.name"] == "hello"
    assert copied[0]["annotations"]["org.opencontainers.image.ref.name"] == "hello"
    assert built[0]["digest"] in lines[0]
    assert copied[0]["digest"] in lines[3] and copied[0]["digest"] != built[0]["digest"]  # recompressed to zstd
    copied_manifest = json.loads((tmp_path / "copied" / "blobs" / "sha256" / copied[0]["digest"].split(":")[1]).read_text())
    assert copied_manifest["layers"][0]["mediaType"].endswith("+zstd")
