"""RegistryClient against the real registry (distribution 2.8, plain HTTP): what a user sees."""

from __future__ import annotations

import io
import json
import secrets
import tracemalloc

import pytest

from pallet.oci import mediatypes
from pallet.oci.digest import Digest
from pallet.oci.errors import (
    DigestMismatch,
    ImageNotFound,
    InvalidReference,
    ManifestUnknown,
    NameUnknown,
    RegistryUnreachable,
    SizeMismatch,
)
from pallet.oci.registry import RegistryClient, RegistryOptions
from pallet_testing.push import push_blob, push_image
from pallet_testing.registry import RegistryServer

MiB = 1024 * 1024


def repo(name: str) -> str:
    return f"{name}/{secrets.token_hex(4)}"


@pytest.fixture
def client(registry: RegistryServer, plain_options: RegistryOptions):
    with RegistryClient(registry.host, plain_options) as opened:
        yield opened


def test_ping_answers_over_http_when_tls_verification_is_off(client: RegistryClient) -> None:
    client.ping()
    assert client.session.base_url().scheme == "http"


def test_plain_http_is_not_used_while_tls_is_verified(registry: RegistryServer, plain_options) -> None:
    from dataclasses import replace

    with RegistryClient(registry.host, replace(plain_options, tls_verify=None)) as strict:
        with pytest.raises(RegistryUnreachable) as caught:
            strict.ping()
    assert caught.value.temporary is False
    assert str(caught.value).startswith(f"pinging container registry {registry.host}: ")


def test_reads_what_an_independent_writer_pushed_byte_for_byte(client, registry, test_images) -> None:
    name = repo("plain/read")
    image = test_images.multi_layer
    push_image(registry, name, image, "v1")

    by_tag = client.get_manifest(name, "v1")
    assert by_tag.data == image.manifest.data
    assert by_tag.media_type == mediatypes.OCI_MANIFEST
    assert str(by_tag.digest) == image.digest

    by_digest = client.get_manifest(name, Digest.parse(image.digest))
    assert by_digest == by_tag
    head = client.head_manifest(name, "v1")
    assert (str(head.digest), head.media_type, head.size) == (image.digest, mediatypes.OCI_MANIFEST, len(image.manifest.data))

    for layer in image.layers:
        assert client.head_blob(name, Digest.parse(layer.digest)) == layer.size
        with client.get_blob(name, Digest.parse(layer.digest)) as stream:
            assert stream.size == layer.size
            assert stream.read() == layer.data


def test_index_and_docker_media_types_come_back_as_pushed(client, registry, test_images) -> None:
    name = repo("plain/types")
    push_image(registry, name, test_images.two_platform_index, "multi")
    push_image(registry, name, test_images.docker_schema2, "docker")
    assert client.get_manifest(name, "multi").media_type == mediatypes.OCI_INDEX
    assert client.get_manifest(name, "docker").media_type == mediatypes.DOCKER_MANIFEST
    child = test_images.two_platform_index.images[0]
    assert client.get_manifest(name, Digest.parse(child.digest)).data == child.manifest.data


def test_monolithic_and_chunked_uploads_store_the_same_blob(client, registry) -> None:
    name = repo("plain/upload")
    data = secrets.token_bytes(3 * MiB + 17)
    digest = Digest.from_bytes(data)

    pushed = client.push_blob(name, io.BytesIO(data), digest=digest, size=len(data))
    assert (pushed.digest, pushed.size) == (digest, len(data))
    other = repo("plain/upload")
    chunked = client.push_blob(other, io.BytesIO(data), chunk_size=MiB)  # digest computed while streaming
    assert (chunked.digest, chunked.size) == (digest, len(data))

    for where in (name, other):
        status, _, body = registry.request("GET", f"/v2/{where}/blobs/{digest}")
        assert (status, body) == (200, data)


def test_a_streamed_upload_without_digest_or_size_is_committed_under_its_digest(client, registry) -> None:
    name = repo("plain/stream")
    data = secrets.token_bytes(100_000)
    pushed = client.push_blob(name, io.BytesIO(data))
    assert pushed.digest == Digest.from_bytes(data) and pushed.size == len(data)
    assert registry.request("HEAD", f"/v2/{name}/blobs/{pushed.digest}")[0] == 200


def test_an_upload_whose_bytes_do_not_match_is_refused_and_not_stored(client, registry) -> None:
    name = repo("plain/wrong")
    data = b"what is really sent"
    claimed = Digest.from_bytes(b"something else")
    with pytest.raises(DigestMismatch):
        client.push_blob(name, io.BytesIO(data), digest=claimed, chunk_size=8)
    with pytest.raises(SizeMismatch):
        client.push_blob(name, io.BytesIO(data), digest=Digest.from_bytes(data), size=len(data) + 1)
    assert client.head_blob(name, claimed) is None
    assert client.head_blob(name, Digest.from_bytes(data)) is None


def test_a_50_mib_layer_goes_up_and_down_in_constant_memory(client, helpers) -> None:
    size = 50 * MiB
    digest = Digest.parse(helpers.digest_of_stream(size, seed=7))
    name = repo("plain/big")
    tracemalloc.start()
    try:
        client.push_blob(name, helpers.PseudoRandomStream(size, seed=7), digest=digest, size=size)
        _, monolithic_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        client.push_blob(repo("plain/big"), helpers.PseudoRandomStream(size, seed=7), digest=digest, chunk_size=4 * MiB)
        _, chunked_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with client.get_blob(name, digest) as stream:
            received = 0
            while piece := stream.read(MiB):
                received += len(piece)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert monolithic_peak < 4 * MiB, monolithic_peak
    assert chunked_peak < 4 * MiB + 2 * MiB, chunked_peak  # one 4 MiB chunk at a time
    assert download_peak < 4 * MiB, download_peak


def test_mount_across_repositories_of_the_same_registry(client, registry, test_images) -> None:
    source, target = repo("plain/mount-from"), repo("plain/mount-to")
    layer = test_images.single_layer.layers[0]
    push_blob(registry, source, layer)
    assert client.mount_blob(target, Digest.parse(layer.digest), source) is True
    assert client.head_blob(target, Digest.parse(layer.digest)) == layer.size
    # a blob the source does not hold cannot be mounted: the registry starts an upload instead
    missing = Digest.from_bytes(b"not in the source repository")
    assert client.mount_blob(repo("plain/mount-to"), missing, source) is False


def test_put_then_get_manifest_by_tag_and_digest(client, registry, test_images) -> None:
    name = repo("plain/put")
    image = test_images.single_layer
    for blob in image.blobs():
        client.push_blob(name, io.BytesIO(blob.data), digest=Digest.parse(blob.digest), size=blob.size)
    digest = client.put_manifest(name, "v1", image.manifest.data, image.manifest.media_type)
    assert str(digest) == image.digest
    assert client.put_manifest(name, digest, image.manifest.data, image.manifest.media_type) == digest
    status, headers, body = registry.request("GET", f"/v2/{name}/manifests/v1",
                                             headers={"Accept": image.manifest.media_type})
    assert (status, body, headers["docker-content-digest"]) == (200, image.manifest.data, image.digest)
    with pytest.raises(DigestMismatch):  # checked before anything is sent
        client.put_manifest(name, Digest.from_bytes(b"other"), image.manifest.data, image.manifest.media_type)


def test_delete_by_tag_removes_the_manifest(client, registry, test_images) -> None:
    name = repo("plain/delete")
    image = test_images.single_layer
    push_image(registry, name, image, "doomed")
    assert str(client.delete_manifest(name, "doomed")) == image.digest
    with pytest.raises(ManifestUnknown):
        client.get_manifest(name, Digest.parse(image.digest))
    with pytest.raises(ManifestUnknown):
        client.delete_manifest(name, Digest.parse(image.digest))


def test_tags_of_a_registry_without_tag_pagination_come_whole(client, registry, test_images) -> None:
    # distribution 2.8 ignores n and last on tags/list (3.0 added them): one page, no Link
    name = repo("plain/tags")
    tags = [f"t{number}" for number in range(7)]
    for tag in tags:
        push_image(registry, name, test_images.single_layer, tag)
    assert sorted(client.list_tags(name, page_size=3)) == tags
    assert sorted(client.list_tags(name)) == tags


def test_catalog_is_listed_page_by_page_through_the_link_header(registry_factory, plain_options, test_images) -> None:
    fresh = registry_factory()
    names = [f"catalog/r{number}" for number in range(7)]
    for name in names:
        push_image(fresh, name, test_images.single_layer, "v1")
    with RegistryClient(fresh.host, plain_options) as client:
        assert client.catalog(page_size=3) == names
        assert client.catalog() == names
    pages = [line for line in fresh.log_path.read_text().splitlines() if '"GET /v2/_catalog?' in line]
    assert len(pages) == 3, pages  # 3 + 3 + 1 repositories, each next page named by the Link header
    assert "last=catalog%2Fr2" in pages[1] and "last=catalog%2Fr5" in pages[2]


def test_tags_follow_the_link_header_of_a_paginating_registry(loopback, plain_options, helpers) -> None:
    tags = [f"t{number}" for number in range(7)]

    def paginate(handler, seen) -> None:
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(seen.path)
        if url.path == "/v2/":
            return helpers.send(handler, 200, b"{}")
        query = parse_qs(url.query)
        size, last = int(query["n"][0]), query.get("last", [""])[0]
        rest = [tag for tag in tags if tag > last]
        page, more = rest[:size], len(rest) > size
        headers = {"Content-Type": "application/json"}
        if more:
            headers["Link"] = f'</v2/lb/tags/list?n={size}&last={page[-1]}>; rel="next"'
        helpers.send(handler, 200, json.dumps({"name": "lb", "tags": page}).encode(), headers)

    server = loopback(paginate)
    with RegistryClient(server.host, plain_options) as client:
        assert client.list_tags("lb", page_size=3) == tags
    listed = [seen.path for seen in server.seen if "tags/list" in seen.path]
    assert listed == ["/v2/lb/tags/list?n=3", "/v2/lb/tags/list?n=3&last=t2", "/v2/lb/tags/list?n=3&last=t5"]


def test_missing_things_raise_typed_errors_saying_what_was_done(client, registry, test_images) -> None:
    name = repo("plain/missing")
    push_image(registry, name, test_images.single_layer, "v1")
    with pytest.raises(ManifestUnknown) as caught:
        client.get_manifest(name, "latest")
    assert str(caught.value) == f"reading manifest latest in {registry.host}/{name}: manifest unknown"
    assert caught.value.status == 404 and caught.value.codes == ("MANIFEST_UNKNOWN",)
    assert isinstance(caught.value, ImageNotFound)
    with pytest.raises(ManifestUnknown):
        client.head_manifest(name, "latest")
    with pytest.raises(NameUnknown) as unknown:
        client.list_tags(repo("plain/never-pushed"))
    assert unknown.value.codes == ("NAME_UNKNOWN",)
    assert client.head_blob(name, Digest.from_bytes(b"absent")) is None


def test_references_that_would_escape_the_url_are_refused(client) -> None:
    with pytest.raises(InvalidReference):
        client.get_manifest("a/../../v2/_catalog", "latest")
    with pytest.raises(InvalidReference):
        client.get_manifest("ok/name", "bad/tag")


def test_referrers_fall_back_to_the_tag_schema(client, registry, test_images) -> None:
    name = repo("plain/referrers")
    image = test_images.single_layer
    push_image(registry, name, image, "v1")
    subject = Digest.parse(image.digest)
    assert client.referrers(name, subject) == []  # distribution 2.8 has no referrers API: 404, no tag yet

    config = b"{}"
    client.push_blob(name, io.BytesIO(config), digest=Digest.from_bytes(config))
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "artifactType": "application/x.pallet.sbom",
        "config": {"mediaType": mediatypes.OCI_EMPTY, "digest": str(Digest.from_bytes(config)), "size": 2},
        "layers": [{"mediaType": mediatypes.OCI_EMPTY, "digest": str(Digest.from_bytes(config)), "size": 2}],
        "subject": {"mediaType": mediatypes.OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest.data)},
    }).encode()
    artifact_digest = client.put_manifest(name, Digest.from_bytes(artifact), artifact, mediatypes.OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": str(artifact_digest), "size": len(artifact),
         "artifactType": "application/x.pallet.sbom"}]}).encode()
    client.put_manifest(name, f"sha256-{subject.encoded}", index, mediatypes.OCI_INDEX)

    found = client.referrers(name, subject)
    assert [str(d.digest) for d in found] == [str(artifact_digest)]
    assert client.referrers(name, subject, artifact_type="application/x.pallet.sbom") == found
    assert client.referrers(name, subject, artifact_type="application/x.other") == []


def test_one_client_serves_several_threads(client, registry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = repo("plain/threads")
    blobs = [secrets.token_bytes(200_000 + n) for n in range(8)]

    def roundtrip(data: bytes) -> bool:
        digest = Digest.from_bytes(data)
        client.push_blob(name, io.BytesIO(data), digest=digest, size=len(data))
        with client.get_blob(name, digest) as stream:
            return stream.read() == data

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(roundtrip, blobs))
