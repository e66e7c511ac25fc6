"""pallet.oci.manifest: raw bytes and digests travel with parsed manifests; bad input is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest
from pallet.oci.errors import MalformedManifest, ManifestError, Schema1Unsupported, UnsupportedMediaType
from pallet.oci.manifest import (
    ParsedConfig,
    ParsedManifest,
    manifest_digest,
    parse_config,
    parse_image_manifest,
    parse_index,
    parse_manifest,
)
from pallet.oci.spec.docker import DockerImageConfig, DockerManifest, DockerManifestList
from pallet.oci.spec.image import ImageConfig, ImageIndex, ImageManifest, Platform

DATA = Path(__file__).parent / "data"
SHA = "sha256:" + "cd" * 32


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def oci_manifest(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(raw("oci-manifest.json"))
    document.update(overrides)
    return document


@pytest.mark.parametrize(
    ("name", "media_type", "model"),
    [
        ("oci-manifest.json", mt.OCI_MANIFEST, ImageManifest),
        ("oci-index.json", mt.OCI_INDEX, ImageIndex),
        ("docker-manifest.json", mt.DOCKER_MANIFEST, DockerManifest),
        ("docker-manifest-list.json", mt.DOCKER_MANIFEST_LIST, DockerManifestList),
    ],
)
def test_fixtures_parse_with_their_bytes_and_digest(name: str, media_type: str, model: type) -> None:
    data = raw(name)
    parsed = parse_manifest(data)
    assert parsed.raw == data
    assert str(parsed.digest) == sha256(data)
    assert parsed.media_type == media_type
    assert isinstance(parsed.model, model)
    assert parsed.size == len(data)
    assert parsed.is_index is mt.is_index(media_type)
    assert parse_manifest(data, media_type) == parsed


def test_digest_is_of_the_input_bytes_not_a_reserialisation() -> None:
    document = json.loads(raw("oci-manifest.json"))
    odd = ("\n\n  " + json.dumps(document, indent=7, sort_keys=True) + " \t\n").encode()
    parsed = parse_manifest(odd)
    assert str(parsed.digest) == sha256(odd)
    assert parsed.digest == manifest_digest(odd)
    assert parsed.model.to_json_bytes() != odd
    assert json.loads(parsed.model.to_json_bytes()) == document


@given(
    indent=st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    sort_keys=st.booleans(),
    padding=st.text(alphabet=" \t\r\n", max_size=5),
    name=st.sampled_from(["oci-manifest.json", "oci-index.json", "docker-manifest.json"]),
)
def test_any_encoding_of_a_manifest_keeps_its_own_digest(
    indent: int | None, sort_keys: bool, padding: str, name: str
) -> None:
    data = (padding + json.dumps(json.loads(raw(name)), indent=indent, sort_keys=sort_keys) + padding).encode()
    parsed = parse_manifest(data)
    assert parsed.raw == data
    assert str(parsed.digest) == sha256(data)
    assert parsed.model == parse_manifest(raw(name)).model


def test_unknown_fields_survive_a_dump() -> None:
    parsed = parse_manifest(raw("oci-index.json"))
    assert json.loads(parsed.model.to_json_bytes()) == json.loads(raw("oci-index.json"))


def test_content_type_parameters_and_uninformative_types() -> None:
    data = raw("oci-index.json")
    assert parse_manifest(data, f"{mt.OCI_INDEX}; charset=utf-8").media_type == mt.OCI_INDEX
    assert parse_manifest(data, "application/json").media_type == mt.OCI_INDEX
    assert parse_manifest(data, "text/plain; charset=utf-8").media_type == mt.OCI_INDEX


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"schemaVersion": 2, "manifests": []}, mt.OCI_INDEX),
        ({"schemaVersion": 2, "config": json.loads(raw("oci-manifest.json"))["config"], "layers": []}, mt.OCI_MANIFEST),
    ],
)
def test_sniffing_without_media_type(document: dict[str, Any], expected: str) -> None:
    assert parse_manifest(encode(document)).media_type == expected


def test_schema1_is_refused_declared_or_sniffed() -> None:
    data = raw("docker-schema1-signed.json")
    with pytest.raises(Schema1Unsupported) as caught:
        parse_manifest(data)
    assert caught.value.media_type == mt.DOCKER_SCHEMA1_SIGNED_MANIFEST
    with pytest.raises(Schema1Unsupported):
        parse_manifest(data, mt.DOCKER_SCHEMA1_SIGNED_MANIFEST)
    with pytest.raises(Schema1Unsupported) as unsigned:
        parse_manifest(encode({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}))
    assert unsigned.value.media_type == mt.DOCKER_SCHEMA1_MANIFEST
    with pytest.raises(Schema1Unsupported):
        parse_manifest(encode({"schemaVersion": 1}), mt.DOCKER_SCHEMA1_MANIFEST)


@pytest.mark.parametrize("media_type", [mt.OCI_CONFIG, mt.OCI_LAYER_GZIP, "application/vnd.example.thing+json"])
def test_unknown_media_types_are_refused(media_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_manifest(encode({"schemaVersion": 2, "mediaType": media_type}))
    assert caught.value.media_type == media_type
    with pytest.raises(UnsupportedMediaType):
        parse_manifest(raw("oci-manifest.json"), media_type)


def test_declared_and_body_media_types_must_agree() -> None:
    with pytest.raises(MalformedManifest, match="declared media type .*index.* but the body's mediaType is .*manifest"):
        parse_manifest(raw("oci-manifest.json"), mt.OCI_INDEX)
    with pytest.raises(MalformedManifest, match="body's mediaType"):
        parse_manifest(raw("docker-manifest.json"), mt.OCI_MANIFEST)


def test_manifest_index_confusion_is_refused() -> None:
    index_part = {"manifests": json.loads(raw("oci-index.json"))["manifests"]}
    with pytest.raises(MalformedManifest, match="must not have the field"):
        parse_manifest(encode(oci_manifest(**index_part)))
    untyped = oci_manifest(**index_part)
    del untyped["mediaType"]
    with pytest.raises(MalformedManifest, match="'config', 'layers'"):
        parse_manifest(encode(untyped), mt.OCI_INDEX)
    with pytest.raises(MalformedManifest, match="'manifests'"):
        parse_manifest(encode(untyped), mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "manifest: not valid JSON"),
        (b"{", "manifest: not valid JSON"),
        (b"\xff\xfe{}", "manifest: not UTF-8"),
        (b"[]", "manifest: expected a JSON object, got list"),
        (b"null", "manifest: expected a JSON object, got NoneType"),
        (b'{"schemaVersion": 2}', "cannot tell its kind"),
        (b'{"mediaType": 7}', "mediaType: must be a string"),
        (b'{"mediaType": "a", "mediaType": "b"}', "duplicate key 'mediaType'"),
        (encode(oci_manifest(layers=[{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:zz", "size": 1}])),
         "manifest: layers[0].digest: invalid digest 'sha256:zz'"),
        (encode(oci_manifest(layers=[{"mediaType": mt.OCI_LAYER_GZIP, "digest": SHA, "size": -5}])),
         "manifest: layers[0].size: input should be greater than or equal to 0"),
        (encode(oci_manifest(layers=[{"mediaType": mt.OCI_LAYER_GZIP, "digest": SHA, "size": "5"}])),
         "manifest: layers[0].size: input should be a valid integer"),
        (encode(oci_manifest(config={"mediaType": mt.OCI_CONFIG, "size": 5})), "manifest: config.digest: field required"),
        (encode(oci_manifest(schemaVersion=3)), "manifest: schemaVersion: input should be 2"),
        (encode(oci_manifest(layers={"a": 1})), "manifest: layers: input should be a valid tuple"),
        (encode(oci_manifest(annotations={"a": 1})), "manifest: annotations.a: input should be a valid string"),
        (encode({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [{"mediaType": mt.DOCKER_MANIFEST}]}),
         "manifest: manifests[0].digest: field required; manifests[0].size: field required"),
    ],
)
def test_corrupt_manifests_raise_malformed_manifest(data: bytes, message: str) -> None:
    with pytest.raises(MalformedManifest) as caught:
        parse_manifest(data)
    assert message in str(caught.value)
    assert isinstance(caught.value, ManifestError)


def test_parse_index_and_parse_image_manifest_refuse_the_other_kind() -> None:
    assert isinstance(parse_index(raw("oci-index.json")).model, ImageIndex)
    assert isinstance(parse_image_manifest(raw("docker-manifest.json")).model, DockerManifest)
    with pytest.raises(UnsupportedMediaType, match="unsupported index media type"):
        parse_index(raw("oci-manifest.json"))
    with pytest.raises(UnsupportedMediaType, match="unsupported image manifest media type"):
        parse_image_manifest(raw("docker-manifest-list.json"))


def test_from_model_keeps_the_bytes_it_wrote() -> None:
    model = parse_manifest(raw("oci-index.json")).model
    written = ParsedManifest.from_model(model)
    assert written.raw == model.to_json_bytes()
    assert written.digest == Digest.from_bytes(written.raw)
    assert written.media_type == mt.OCI_INDEX
    assert parse_manifest(written.raw) == written


def test_descriptor_of_a_parsed_manifest() -> None:
    parsed = parse_manifest(raw("docker-manifest.json"))
    descriptor = parsed.descriptor(platform=Platform(os="linux", architecture="amd64"))
    assert descriptor.digest == parsed.digest
    assert descriptor.size == len(parsed.raw)
    assert descriptor.media_type == mt.DOCKER_MANIFEST
    assert descriptor.platform is not None and str(descriptor.platform) == "linux/amd64"


def test_parsed_values_are_frozen() -> None:
    parsed = parse_manifest(raw("oci-manifest.json"))
    with pytest.raises(AttributeError):
        parsed.raw = b"{}"  # type: ignore[misc]


def test_parse_config_oci_and_docker() -> None:
    data = raw("oci-config.json")
    parsed = parse_config(data)
    assert isinstance(parsed, ParsedConfig)
    assert type(parsed.model) is ImageConfig
    assert parsed.raw == data and str(parsed.digest) == sha256(data)
    assert parsed.descriptor().size == len(data)

    docker = parse_config(raw("docker-config.json"), mt.DOCKER_CONFIG)
    assert isinstance(docker.model, DockerImageConfig)
    assert docker.media_type == mt.DOCKER_CONFIG
    assert docker.model.docker_version == "20.10.23"
    assert docker.model.config is not None and docker.model.config.healthcheck is not None
    assert docker.model.config.healthcheck.retries == 3
    assert docker.model.config.volumes is None
    without_nulls = _drop_nulls(json.loads(raw("docker-config.json")))
    assert json.loads(docker.model.to_json_bytes()) == without_nulls
    assert ParsedConfig.from_model(docker.model).media_type == mt.DOCKER_CONFIG


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


@pytest.mark.parametrize(
    ("data", "media_type", "error", "message"),
    [
        (b"not json", None, MalformedManifest, "config: not valid JSON"),
        (b'{"os": "linux"}', None, MalformedManifest, "config: architecture: field required"),
        (b'{"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]}}', None,
         MalformedManifest, "config: rootfs.diff_ids[0]: invalid digest"),
        (b"{}", mt.OCI_EMPTY, UnsupportedMediaType, "unsupported config media type"),
        (b"{}", "application/vnd.example.artifact.config+json", UnsupportedMediaType, "unsupported config"),
    ],
)
def test_corrupt_configs(data: bytes, media_type: str | None, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_config(data, media_type)
    assert message in str(caught.value)
