"""pallet-transfer copy streams: a 1 GiB layer goes registry → registry in less than 100 MiB.

The layer is a deterministic tar of one 1 GiB file of incompressible noise
(a 1 MiB pseudo-random block, stamped with its number, so no two blocks are
alike), gzip-framed with deflate's stored blocks (level 0): for
incompressible data that is what any level ends up writing, at a fraction of
the time (level 1 costs some 20 s more here). It is written to a temp file
in 1 MiB pieces and uploaded to the source registry in a streamed PUT, then
removed. The copy runs in a fresh Python process that only waits for it, so
its ``RUSAGE_CHILDREN`` peak RSS is pallet-transfer's own.

Disk: the two registries hold about 1 GiB each; they are stopped and removed
when the test ends.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from pallet_testing import images
from pallet_testing.push import push_blob, push_manifest
from pallet_testing.registry import RegistryServer

pytestmark = pytest.mark.slow

PALLET_TRANSFER = Path(sys.executable).parent / "pallet-transfer"
MiB = 1 << 20
LAYER_DATA = 1024 * MiB
PEAK_RSS_LIMIT = 100 * MiB

# Runs the command, then writes the peak RSS (bytes) of what it waited for to argv[1].
RSS_WRAPPER = """\
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))
sys.exit(code)
"""


@dataclass(frozen=True)
class LayerFile:
    """A layer written to disk: its digest and size, and the DiffID (of the uncompressed tar)."""

    path: Path
    digest: str
    size: int
    diff_id: str


def write_noise_layer(path: Path) -> LayerFile:
    """The layer (see the module docstring), written to ``path``."""
    noise = bytearray(random.Random(1024).randbytes(MiB))
    info = tarfile.TarInfo("noise.bin")
    info.size, info.mtime, info.mode = LAYER_DATA, images.EPOCH, 0o644
    tar_digest, gz_digest = hashlib.sha256(), hashlib.sha256()
    compressor = zlib.compressobj(0, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    with path.open("wb") as out:
        def put(data: bytes | bytearray) -> None:
            tar_digest.update(data)
            compressed = compressor.compress(data)
            gz_digest.update(compressed)
            out.write(compressed)

        put(info.tobuf(tarfile.PAX_FORMAT))
        for block in range(LAYER_DATA // MiB):
            noise[:8] = block.to_bytes(8, "big")
            put(noise)
        put(bytes(2 * tarfile.BLOCKSIZE))  # the end-of-archive marker
        tail = compressor.flush()
        gz_digest.update(tail)
        out.write(tail)
    return LayerFile(path, "sha256:" + gz_digest.hexdigest(), path.stat().st_size, "sha256:" + tar_digest.hexdigest())


def upload_file(registry: RegistryServer, repository: str, path: Path, digest: str) -> None:
    """A monolithic upload of ``path``, streamed from disk (pallet_testing.push holds blobs in memory)."""
    status, headers, body = registry.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
    assert status == 202, body
    location = urlsplit(urljoin(registry.url + "/", headers["location"]))
    connection = http.client.HTTPConnection(registry.host, timeout=300, blocksize=MiB)
    try:
        with path.open("rb") as data:
            connection.request("PUT", f"{location.path}?{location.query}&digest={digest}", body=data, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size)})
        response = connection.getresponse()
        assert response.status == 201, response.read()[:300]
    finally:
        connection.close()


@pytest.fixture
def registries(registry_factory: Callable[..., RegistryServer]) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    """Two fresh registries, removed from disk at the end (pytest keeps tmp_path's otherwise)."""
    servers = (registry_factory(), registry_factory())
    yield servers
    for server in servers:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def big_image(registries: tuple[RegistryServer, RegistryServer], tmp_path: Path) -> tuple[str, int, str]:
    """Push the image with the 1 GiB layer to the first registry as big/app:v1; (manifest digest, layer size, layer digest)."""
    source = registries[0]
    path = tmp_path / "layer.tar.gz"
    try:
        layer = write_noise_layer(path)
        upload_file(source, "big/app", path, layer.digest)
    finally:
        path.unlink(missing_ok=True)
    # make_config reads only the DiffIDs of the layers it is given
    config_doc = images.make_config((images.Layer(images.OCI_LAYER["gzip"], b"", diff_id=layer.diff_id),))
    config = images.Blob(images.OCI_CONFIG, images.canonical_json(config_doc))
    push_blob(source, "big/app", config)
    manifest = images.Blob(images.OCI_MANIFEST, images.canonical_json({
        "schemaVersion": 2, "mediaType": images.OCI_MANIFEST, "config": config.descriptor(),
        "layers": [{"mediaType": images.OCI_LAYER["gzip"], "digest": layer.digest, "size": layer.size}],
    }))
    push_manifest(source, "big/app", manifest, "v1")
    return manifest.digest, layer.size, layer.digest


def test_a_1_gib_layer_is_copied_between_registries_in_less_than_100_mib(
    registries: tuple[RegistryServer, RegistryServer], big_image: tuple[str, int, str], tmp_path: Path
) -> None:
    source, destination = registries
    manifest_digest, layer_size, layer_digest = big_image
    assert layer_size > LAYER_DATA
    home = tmp_path / "home"
    home.mkdir()
    rss_file = tmp_path / "peak-rss"
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, str(rss_file), str(PALLET_TRANSFER), "--insecure-policy", "copy",
         "--src-tls-verify=false", "--dest-tls-verify=false",
         f"docker://{source.host}/big/app:v1", f"docker://{destination.host}/big/copy:v1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    peak = int(rss_file.read_text())
    print(f"pallet-transfer copy of a {layer_size / MiB:.0f} MiB layer: peak RSS {peak / MiB:.1f} MiB")
    status, headers, _ = destination.request("HEAD", "/v2/big/copy/manifests/v1", headers={"Accept": images.OCI_MANIFEST})
    assert status == 200 and headers["docker-content-digest"] == manifest_digest
    status, headers, _ = destination.request("HEAD", f"/v2/big/copy/blobs/{layer_digest}")
    assert status == 200 and int(headers["content-length"]) == layer_size
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / MiB:.1f} MiB copying a {layer_size / MiB:.0f} MiB layer"
