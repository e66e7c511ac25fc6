"""oci: destinations compress plain layers unless --dest-oci-accept-uncompressed-layers (as skopeo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pallet_testing.images import write_oci_layout

PALLET_TRANSFER = str(Path(sys.executable).parent / "pallet-transfer")


def layer_media_types(layout: Path, ref: str) -> list[str]:
    out = subprocess.run([PALLET_TRANSFER, "inspect", "--raw", f"oci:{layout}:{ref}"], capture_output=True, check=True)
    return [layer["mediaType"] for layer in json.loads(out.stdout)["layers"]]


@pytest.mark.parametrize(("flags", "expected"), [
    ((), "application/vnd.oci.image.layer.v1.tar+gzip"),
    (("--dest-oci-accept-uncompressed-layers",), "application/vnd.oci.image.layer.v1.tar"),
])
def test_plain_layers_into_oci(tmp_path: Path, test_images, flags: tuple[str, ...], expected: str) -> None:
    source = write_oci_layout(tmp_path / "src", {"plain": test_images.single_layer_uncompressed})
    result = subprocess.run([PALLET_TRANSFER, "--insecure-policy", "copy", "-q", *flags, f"oci:{source}:plain",
                             f"oci:{tmp_path / 'dst'}:out"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert layer_media_types(tmp_path / "dst", "out") == [expected]
