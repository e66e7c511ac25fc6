"""Helpers shared by the driver tests (importable: conftest puts this directory on sys.path)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from pallet.storage.drivers import OverlayDriver
from pallet.storage.records import layer_chain_id
from pallet.storage.tarengine import ApplyOptions, apply_layer


def mounted_under(top: Path) -> list[str]:
    """Mount points at or under ``top`` in this mount namespace, deepest first."""
    prefix = str(top)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True)


def apply_chain(driver: OverlayDriver, layers: list[bytes]) -> list[str]:
    """Create and apply ``layers`` (blobs) as a chain in ``driver``; their IDs, base first."""
    ids: list[str] = []
    for n, data in enumerate(layers):
        layer_id = layer_chain_id(ids[-1] if ids else "", "sha256:" + f"{n:064x}")
        driver.create(layer_id, ids[-1] if ids else None)
        apply_layer(io.BytesIO(data), driver.layer_dir(layer_id), options=ApplyOptions(whiteouts=driver.whiteout_form))
        ids.append(layer_id)
    return ids


def check_merged_tree(merged: Path) -> None:
    """The multi_layer image's final tree: srv/data whited out, opt/app opaque, the rest visible."""
    assert (merged / "bin" / "busybox").is_file()
    assert (merged / "etc" / "pallet-release").read_bytes() == b"pallet test image\n"
    assert sorted(os.listdir(merged / "srv")) == []
    assert sorted(os.listdir(merged / "opt" / "app")) == ["v2.txt"]
    assert (merged / "opt" / "app" / "v2.txt").read_bytes() == b"version 2\n"
    assert (merged / "hello.txt").read_bytes() == b"hello from the third layer\n"
