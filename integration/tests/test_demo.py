"""The README's first command runs integration/demo.py: it must work offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "demo.py"


def test_demo_builds_stores_runs_and_copies_an_image(tmp_path: Path, test_images) -> None:
    result = subprocess.run([sys.executable, str(DEMO), "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["1.", "2.", "3.", "4.", "5."]
    if os.geteuid() == 0:  # stored in a containers/storage store, listed by pallet-run, run from a container's mount
        assert "containers-storage:[vfs@" in lines[1] and "pallet-run images: ['localhost/pallet/hello:latest']" in lines[1]
        assert json.loads((tmp_path / "store" / "vfs-images" / "images.json").read_text())[0]["names"] == [
            "localhost/pallet/hello:latest"]
        assert json.loads((tmp_path / "store" / "vfs-containers" / "containers.json").read_text() or "[]") == []
    assert lines[2].endswith(": hello from a pallet container")
    built = json.loads((tmp_path / "built" / "index.json").read_text())["manifests"]
    copied = json.loads((tmp_path / "copied" / "index.json").read_text())["manifests"]
    assert built[0]["annotations"]["org.opencontainers.image.ref.name"] == "hello"
    assert copied[0]["annotations"]["org.opencontainers.image.ref.name"] == "hello"
    assert built[0]["digest"] in lines[0]
    assert copied[0]["digest"] in lines[3] and copied[0]["digest"] != built[0]["digest"]  # recompressed to zstd
    copied_manifest = json.loads((tmp_path / "copied" / "blobs" / "sha256" / copied[0]["digest"].split(":")[1]).read_text())
    assert copied_manifest["layers"][0]["mediaType"].endswith("+zstd")


def test_demo_runs_rootless_as_an_unprivileged_user(rootless_user, rootless_tmp_path: Path) -> None:
    result = rootless_user.run([sys.executable, str(DEMO), "--workdir", str(rootless_tmp_path / "demo")],
                               env={"HOME": str(rootless_tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[2] == "3. run    pallet-runtime ran it rootless from an unpacked bundle: hello from a pallet container"
    assert lines[4].startswith("5. peer   skopeo inspect")
