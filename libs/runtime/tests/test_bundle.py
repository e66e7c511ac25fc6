"""load_bundle: one BundleError naming the file or field for each bundle that cannot run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pallet.runtime.bundle import check_user_mapped, load_bundle
from pallet.runtime.errors import BundleError


def config(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "ociVersion": "1.0.0",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }
    document.update(changes)
    return document


def make_bundle(path: Path, document: dict[str, Any] | bytes, rootfs: bool = True) -> Path:
    if rootfs:
        (path / "rootfs").mkdir()
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    (path / "config.json").write_bytes(raw)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(BundleError) as caught:
        load_bundle(path)
    return str(caught.value)


def test_a_good_bundle_loads_with_absolute_paths(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path, config()))
    assert bundle.rootfs == tmp_path / "rootfs"
    assert bundle.namespace_types() == ("mount", "pid")
    assert not bundle.new_user_namespace()


def test_missing_config(tmp_path: Path) -> None:
    assert "config.json: no such file" in refusal(tmp_path)


def test_invalid_json(tmp_path: Path) -> None:
    assert "not valid JSON" in refusal(make_bundle(tmp_path, b"{nope"))


def test_missing_rootfs(tmp_path: Path) -> None:
    assert "root.path" in refusal(make_bundle(tmp_path, config(), rootfs=False))


def test_unknown_namespace(tmp_path: Path) -> None:
    message = refusal(make_bundle(tmp_path, config(linux={"namespaces": [{"type": "mount"}, {"type": "bogus"}]})))
    assert "linux.namespaces[1].type" in message and "bogus" in message


def test_no_mount_namespace(tmp_path: Path) -> None:
    assert "mount namespace is required" in refusal(make_bundle(tmp_path, config(linux={"namespaces": []})))


def test_mappings_without_user_namespace(tmp_path: Path) -> None:
    linux = {"namespaces": [{"type": "mount"}], "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}
    assert "need a user namespace" in refusal(make_bundle(tmp_path, config(linux=linux)))


def test_process_user_not_mapped(tmp_path: Path) -> None:
    mapping = [{"containerID": 0, "hostID": 100000, "size": 10}]
    linux = {"namespaces": [{"type": "mount"}, {"type": "user"}], "uidMappings": mapping, "gidMappings": mapping}
    document = config(linux=linux)
    document["process"]["user"]["uid"] = 1000
    bundle = load_bundle(make_bundle(tmp_path, document))
    mappings = bundle.config.linux.uid_mappings if bundle.config.linux else None
    assert mappings is not None
    with pytest.raises(BundleError, match="process uid 1000 is not mapped"):
        check_user_mapped(bundle, mappings, mappings)
