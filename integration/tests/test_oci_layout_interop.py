"""An OCI layout written by pallet.oci is read and copied by the real skopeo.

skopeo inspects `oci:DIR:REF` and copies it into the registry fixtures
(plain, and TLS with basic auth), keeping the digests; a two-platform index
goes across with --all. The rootless case writes the layout and runs skopeo
as the unprivileged test user. Skipped with the reason when skopeo or the
registry is absent (failed instead under PALLET_REQUIRE_ALL=1).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.oci.layout import OciLayout
from pallet.oci.manifest import parse_manifest
from pallet_testing.images import TestImage, TestIndex
from pallet_testing.registry import RegistryServer
from pallet_testing.users import RootlessUser

pytestmark = pytest.mark.interop


def write_with_pallet(directory: Path, ref: str, image: TestImage | TestIndex) -> OciLayout:
    """Store ``image`` in an OCI layout through pallet.oci: blobs, then manifests, then the ref."""
    layout = OciLayout.create(directory)
    for blob in image.blobs():
        layout.put_blob(blob.data, blob.digest, blob.size)
    children = image.images if isinstance(image, TestIndex) else ()
    for child in children:
        layout.put_blob(child.manifest.data, child.digest, child.manifest.size)
    top = parse_manifest(image.manifest.data, image.manifest.media_type)
    layout.put_blob(top.raw, top.digest, top.size)
    layout.add_manifest(top.descriptor(), ref)
    return layout


def skopeo_json(skopeo: str, *args: str) -> dict[str, object]:
    result = subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def registry_digest(registry: RegistryServer, repository: str, tag: str, media_type: str) -> str:
    status, headers, _ = registry.request("HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": media_type})
    assert status == 200
    return headers["docker-content-digest"]


def test_skopeo_inspects_a_layout_written_by_pallet(tmp_path: Path, skopeo: str, test_images) -> None:
    image = test_images.multi_layer
    write_with_pallet(tmp_path / "layout", "v1", image)
    inspected = skopeo_json(skopeo, "inspect", f"oci:{tmp_path / 'layout'}:v1")
    assert inspected["Digest"] == image.digest
    assert inspected["Layers"] == [layer.digest for layer in image.layers]
    assert inspected["Labels"] == {"org.pallet.test": "yes"}
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{tmp_path / 'layout'}:v1"], capture_output=True, check=True)
    assert raw.stdout == image.manifest.data


def test_skopeo_copies_a_pallet_layout_into_the_registry(tmp_path: Path, skopeo: str, registry: RegistryServer, test_images) -> None:
    image = test_images.single_layer_zstd
    write_with_pallet(tmp_path / "layout", "v1", image)
    subprocess.run([skopeo, "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{tmp_path / 'layout'}:v1", f"docker://{registry.host}/interop/zstd:v1"],
                   check=True, capture_output=True, timeout=120)
    assert registry_digest(registry, "interop/zstd", "v1", image.manifest.media_type) == image.digest


def test_skopeo_copies_a_pallet_layout_into_the_tls_registry_with_auth(
    tmp_path: Path, skopeo: str, tls_registry: RegistryServer, test_images
) -> None:
    image = test_images.multi_layer
    write_with_pallet(tmp_path / "layout", "v1", image)
    result = subprocess.run([skopeo, "copy", "--quiet", "--preserve-digests", "--dest-cert-dir", str(tls_registry.cert_dir),
                             "--dest-creds", tls_registry.creds, f"oci:{tmp_path / 'layout'}:v1",
                             f"docker://{tls_registry.host}/interop/multi:v1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert registry_digest(tls_registry, "interop/multi", "v1", image.manifest.media_type) == image.digest


def test_skopeo_copies_a_two_platform_index_with_all(tmp_path: Path, skopeo: str, registry: RegistryServer, test_images) -> None:
    index = test_images.two_platform_index
    write_with_pallet(tmp_path / "layout", "multi", index)
    subprocess.run([skopeo, "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{tmp_path / 'layout'}:multi", f"docker://{registry.host}/interop/index:multi"],
                   check=True, capture_output=True, timeout=120)
    assert registry_digest(registry, "interop/index", "multi", index.manifest.media_type) == index.digest
    for child in index.images:
        assert registry_digest(registry, "interop/index", child.digest, child.manifest.media_type) == child.digest


WRITE_AS_USER = """
import sys
from pathlib import Path
from pallet.oci.layout import OciLayout
from pallet.oci.manifest import parse_manifest
layout = OciLayout.create(Path(sys.argv[1]))
for blob in sys.argv[2:]:
    layout.put_blob(Path(blob).read_bytes())
top = parse_manifest(Path(sys.argv[-1]).read_bytes())
layout.add_manifest(top.descriptor(), "rootless")
"""


@pytest.mark.rootless
def test_rootless_user_writes_a_layout_that_rootless_skopeo_copies(
    rootless_user: RootlessUser, rootless_tmp_path: Path, skopeo: str, registry: RegistryServer, test_images
) -> None:
    image = test_images.single_layer
    inputs = []
    for number, blob in enumerate([*image.blobs(), image.manifest]):
        path = rootless_tmp_path / f"blob-{number}"
        path.write_bytes(blob.data)
        inputs.append(str(path))
    layout_dir = rootless_tmp_path / "layout"
    written = rootless_user.run([sys.executable, "-c", WRITE_AS_USER, str(layout_dir), *inputs])
    assert written.returncode == 0, written.stderr.decode()
    assert layout_dir.stat().st_uid == rootless_user.uid

    copied = rootless_user.run([skopeo, "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                                f"oci:{layout_dir}:rootless", f"docker://{registry.host}/interop/rootless:v1"])
    assert copied.returncode == 0, copied.stderr.decode()
    assert registry_digest(registry, "interop/rootless", "v1", image.manifest.media_type) == image.digest
