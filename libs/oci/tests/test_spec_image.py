"""pallet.oci.spec.image: OCI image-spec 1.1 models on real documents."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest
from pallet.oci.errors import DigestMismatch, SizeMismatch
from pallet.oci.spec import Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform

DATA = Path(__file__).parent / "data"
SHA = "sha256:" + "ab" * 32


def load(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((DATA / name).read_bytes())
    return value


def descriptor(**overrides: Any) -> dict[str, Any]:
    return {"mediaType": mt.OCI_LAYER_GZIP, "digest": SHA, "size": 10, **overrides}


def test_manifest_fields() -> None:
    manifest = ImageManifest.model_validate(load("oci-manifest.json"))
    assert manifest.schema_version == 2
    assert manifest.media_type == mt.OCI_MANIFEST
    assert manifest.config.media_type == mt.OCI_CONFIG
    assert manifest.config.size == 7023
    assert [layer.size for layer in manifest.layers] == [32654, 16724, 73109]
    assert isinstance(manifest.layers[0].digest, Digest)
    assert str(manifest.layers[0].digest).startswith("sha256:9834876d")
    assert manifest.subject is not None and manifest.subject.size == 7682
    assert manifest.annotations == {"com.example.key1": "value1", "com.example.key2": "value2"}


def test_manifest_dump_is_the_document() -> None:
    document = load("oci-manifest.json")
    manifest = ImageManifest.model_validate(document)
    assert json.loads(manifest.to_json_bytes()) == document
    assert manifest.to_json_dict() == document


def test_index_keeps_unknown_fields_at_every_level() -> None:
    document = load("oci-index.json")
    index = ImageIndex.model_validate(document)
    assert json.loads(index.to_json_bytes()) == document
    assert index.extra_fields == {"io.example.index-extra": "kept"}
    amd64 = index.manifests[1]
    assert amd64.extra_fields == {"io.example.descriptor-extra": {"nested": [1, 2, 3]}}
    assert amd64.platform is not None and amd64.platform.extra_fields == {"com.example.platform-extra": True}


def test_index_platform_fields() -> None:
    index = ImageIndex.model_validate(load("oci-index.json"))
    windows = index.manifests[2].platform
    assert windows is not None
    assert (windows.os, windows.architecture) == ("windows", "amd64")
    assert windows.os_version == "10.0.17763.1040"
    assert windows.os_features == ("win32k",)
    assert index.manifests[3].artifact_type == "application/vnd.example.sbom.v1+json"
    assert str(Platform(os="linux", architecture="arm", variant="v7")) == "linux/arm/v7"


def test_config_fields() -> None:
    config = ImageConfig.model_validate(load("oci-config.json"))
    assert (config.os, config.architecture) == ("linux", "amd64")
    assert config.created_at == datetime(2015, 10, 31, 22, 22, 56, 15925, tzinfo=timezone.utc)
    assert config.config is not None
    assert config.config.user == "alice"
    assert config.config.exposed_ports == {"8080/tcp": {}}
    assert config.config.entrypoint == ("/bin/my-app-binary",)
    assert config.config.cmd == ("--foreground", "--config", "/etc/my-app.d/default.cfg")
    assert config.config.working_dir == "/home/alice"
    assert config.config.stop_signal == "SIGTERM"
    assert config.rootfs.type == "layers"
    assert len(config.rootfs.diff_ids) == 2 and all(isinstance(d, Digest) for d in config.rootfs.diff_ids)
    assert config.history is not None and config.history[1].empty_layer is True
    assert len(config.layer_history) == len(config.rootfs.diff_ids)
    assert str(config.platform) == "linux/amd64"
    assert json.loads(config.to_json_bytes()) == load("oci-config.json")


def test_models_are_frozen() -> None:
    manifest = ImageManifest.model_validate(load("oci-manifest.json"))
    with pytest.raises(ValidationError):
        manifest.layers = ()
    assert isinstance(manifest.layers, tuple)


def test_snake_case_names_are_accepted_when_building() -> None:
    built = Descriptor(media_type=mt.OCI_CONFIG, digest=Digest.parse(SHA), size=2, artifact_type="x/y")
    assert built.to_json_dict() == {"mediaType": mt.OCI_CONFIG, "digest": SHA, "size": 2, "artifactType": "x/y"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (descriptor(digest="sha256:zz"), "digest: invalid digest 'sha256:zz'"),
        (descriptor(digest="md5:" + "a" * 32), "unsupported algorithm 'md5'"),
        (descriptor(digest=12), "digest: a digest must be a string"),
        (descriptor(size=-1), "size: input should be greater than or equal to 0"),
        (descriptor(size="10"), "size: input should be a valid integer"),
        (descriptor(size=True), "size: input should be a valid integer"),
        (descriptor(data="not base64!"), "data is not valid base64"),
        ({"digest": SHA, "size": 1}, "mediaType: field required"),
        (descriptor(platform={"os": "linux"}), "platform.architecture: field required"),
    ],
)
def test_invalid_descriptors_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Descriptor.model_validate(document)
    from pallet.oci.spec._base import describe_validation_error

    assert message in describe_validation_error(caught.value, "descriptor")


def test_manifest_refuses_a_foreign_media_type_and_schema_version() -> None:
    document = load("oci-manifest.json")
    with pytest.raises(ValidationError, match="mediaType of an OCI image manifest"):
        ImageManifest.model_validate({**document, "mediaType": mt.DOCKER_MANIFEST})
    with pytest.raises(ValidationError, match="schemaVersion"):
        ImageManifest.model_validate({**document, "schemaVersion": 1})
    with pytest.raises(ValidationError, match="mediaType of an OCI image index"):
        ImageIndex.model_validate({**load("oci-index.json"), "mediaType": mt.OCI_MANIFEST})


def test_config_refuses_bad_rootfs_and_created() -> None:
    document = load("oci-config.json")
    with pytest.raises(ValidationError, match="rootfs.type"):
        ImageConfig.model_validate({**document, "rootfs": {"type": "tarballs", "diff_ids": []}})
    with pytest.raises(ValidationError, match="RFC 3339"):
        ImageConfig.model_validate({**document, "created": "yesterday"})


def test_embedded_data_is_verified() -> None:
    content = b"{}"
    good = Descriptor(media_type=mt.OCI_EMPTY, digest=Digest.from_bytes(content), size=2, data="e30=")
    assert good.embedded_data() == content
    assert Descriptor.model_validate(descriptor()).embedded_data() is None
    with pytest.raises(SizeMismatch):
        Descriptor(media_type=mt.OCI_EMPTY, digest=Digest.from_bytes(content), size=3, data="e30=").embedded_data()
    with pytest.raises(DigestMismatch):
        Descriptor.model_validate(descriptor(size=2, data="e30=")).embedded_data()
