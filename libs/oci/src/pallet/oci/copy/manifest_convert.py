"""Manifest formats: choosing the one to write, and converting OCI ↔ Docker schema2.

Pure functions over parsed manifests; no I/O. The rules follow
containers/image:

- a manifest is rewritten only when something in it changes; otherwise its
  raw bytes (and so its digest) are kept;
- OCI → schema2: the config type becomes Docker's, layers ``+gzip`` → Docker
  gzip, plain tar → Docker tar, non-distributable gzip → Docker foreign;
  annotations are dropped (schema2 has none). zstd layers, artifacts (a
  config that is not an image config), ``subject`` and ``artifactType``
  cannot be expressed and raise ``ConversionError``;
- schema2 → OCI: the reverse; nothing is lost;
- index ↔ manifest list: entries keep their platform (a list entry without
  one gets an empty platform, as containers/image writes), lose annotations
  going to Docker, and point at the converted children.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest
from pallet.oci.errors import ConversionError, ManifestTypeRejected
from pallet.oci.manifest import AnyManifest, ParsedManifest
from pallet.oci.spec.docker import DockerManifest, DockerManifestList
from pallet.oci.spec.image import Descriptor, ImageIndex, ImageManifest, Platform

Family = Literal["oci", "v2s2"]

_IMAGE_TYPES: dict[Family, str] = {"oci": mt.OCI_MANIFEST, "v2s2": mt.DOCKER_MANIFEST}
_INDEX_TYPES: dict[Family, str] = {"oci": mt.OCI_INDEX, "v2s2": mt.DOCKER_MANIFEST_LIST}
_CONFIG_TYPES: dict[Family, str] = {"oci": mt.OCI_CONFIG, "v2s2": mt.DOCKER_CONFIG}


def family_of(media_type: str) -> Family:
    """``"v2s2"`` for Docker media types, else ``"oci"``."""
    return "v2s2" if mt.is_docker(media_type) else "oci"


def manifest_type(family: Family, *, index: bool) -> str:
    """The manifest (or index, when ``index``) media type of a family."""
    return (_INDEX_TYPES if index else _IMAGE_TYPES)[family]


@dataclass(frozen=True, slots=True)
class StoredLayer:
    """A blob of an image as the destination holds it.

    ``compression`` is None when the blob is the source's, unchanged in
    kind; else the compression the engine gave it.
    """

    source: Descriptor
    digest: Digest
    size: int
    compression: mt.Compression | None = None

    @property
    def changed(self) -> bool:
        return self.digest != self.source.digest or self.compression is not None


def manifest_type_candidates(
    source_type: str, supported: Sequence[str], forced: Family | None, *, preserve_digests: bool
) -> list[str]:
    """The manifest types to try writing, best first (containers/image's order).

    The source's own type first when the destination takes it and no format
    was forced, then the other types the destination takes, in its order.
    Raises ``ManifestTypeRejected`` when the destination takes no type of
    this kind (or not the forced one), ``ConversionError`` when
    ``preserve_digests`` forbids the conversion that would be needed.
    """
    index = mt.is_index(source_type)
    kind_types = list(_INDEX_TYPES.values() if index else _IMAGE_TYPES.values())
    acceptable = [t for t in supported if t in kind_types] if supported else kind_types
    if forced is not None:
        acceptable = [t for t in acceptable if t == manifest_type(forced, index=index)]
    if not acceptable:
        wanted = manifest_type(forced, index=index) if forced else source_type
        kind = "indexes" if index else "image manifests"
        raise ManifestTypeRejected(wanted, tuple(supported), f"the destination stores no such {kind}")
    candidates = sorted(acceptable, key=lambda t: t != source_type)
    if preserve_digests and candidates[0] != source_type:
        raise ConversionError(
            f"--preserve-digests: the manifest would have to be converted from {source_type} to {candidates[0]}, "
            "which changes its digest"
        )
    return candidates[:1] if preserve_digests else candidates


def layer_media_type(source_type: str, compression: mt.Compression | None, family: Family) -> str:
    """The media type of a layer stored with ``compression`` (None: as in the source) in ``family``."""
    if not mt.is_layer(source_type):  # an artifact's blob: kept as it is, where the family can hold it
        if family_of(source_type) == family:
            return source_type
        raise ConversionError(f"a blob of type {source_type} cannot be put in a {_IMAGE_TYPES[family]} manifest")
    if compression is None and family_of(source_type) == family:
        return source_type
    chosen = mt.layer_compression(source_type) if compression is None else compression
    foreign = mt.is_nondistributable(source_type)
    if family == "oci":
        return mt.oci_layer_media_type(chosen, nondistributable=foreign)
    if chosen == "zstd":
        raise ConversionError("zstd-compressed layers cannot be in a Docker schema2 manifest (use --format oci)")
    if foreign:
        if chosen != "gzip":
            raise ConversionError(f"a non-distributable {chosen} layer cannot be in a Docker schema2 manifest")
        return mt.DOCKER_LAYER_FOREIGN_GZIP
    return mt.DOCKER_LAYER_GZIP if chosen == "gzip" else mt.DOCKER_LAYER_TAR


def config_media_type(source_type: str, family: Family) -> str:
    """The config media type in ``family``; only image configs convert."""
    if mt.is_config(source_type):
        return _CONFIG_TYPES[family]
    if family == "oci" and not mt.is_docker(source_type):
        return source_type
    raise ConversionError(f"an artifact with config type {source_type} cannot be put in a Docker schema2 manifest")


def check_expressible(source: ParsedManifest[AnyManifest], target_type: str, layers: Sequence[StoredLayer]) -> None:
    """Raise ``ConversionError`` unless the image can be written as ``target_type``."""
    _image_descriptors(source, target_type, layers)


def build_image_manifest(
    source: ParsedManifest[AnyManifest], target_type: str, layers: Sequence[StoredLayer]
) -> ParsedManifest[AnyManifest]:
    """The manifest to write for ``layers`` (the config first, then the layers, as stored).

    ``source`` itself (same bytes, same digest) when nothing changes.
    """
    config, layer_descriptors = _image_descriptors(source, target_type, layers)
    model = source.model
    assert isinstance(model, (ImageManifest, DockerManifest))
    if target_type == source.media_type and config == model.config and layer_descriptors == model.layers:
        return source
    new_model: AnyManifest
    if target_type == mt.OCI_MANIFEST:
        if isinstance(model, ImageManifest):
            new_model = model.model_copy(update={"config": config, "layers": layer_descriptors})
        else:
            new_model = ImageManifest(schema_version=2, media_type=mt.OCI_MANIFEST, config=config, layers=layer_descriptors)
    elif isinstance(model, DockerManifest):
        new_model = model.model_copy(update={"config": config, "layers": layer_descriptors})
    else:
        _refuse_oci_only_fields(model, "manifest")
        new_model = DockerManifest(schema_version=2, media_type=mt.DOCKER_MANIFEST, config=config, layers=layer_descriptors)
    return ParsedManifest.from_model(new_model)


def _image_descriptors(
    source: ParsedManifest[AnyManifest], target_type: str, layers: Sequence[StoredLayer]
) -> tuple[Descriptor, tuple[Descriptor, ...]]:
    family = family_of(target_type)
    if family == "v2s2" and isinstance(source.model, ImageManifest):
        _refuse_oci_only_fields(source.model, "manifest")
    config_layer, *image_layers = layers
    config_type = config_media_type(config_layer.source.media_type, family)
    config = _descriptor(config_layer, config_type, family)
    described = tuple(
        _descriptor(layer, layer_media_type(layer.source.media_type, layer.compression, family), family)
        for layer in image_layers
    )
    return config, described


def _descriptor(layer: StoredLayer, media_type: str, family: Family) -> Descriptor:
    source = layer.source
    if media_type == source.media_type and not layer.changed:
        return source
    if family == "v2s2" and not mt.is_docker(source.media_type):
        return Descriptor(media_type=media_type, digest=layer.digest, size=layer.size, urls=source.urls)
    return source.model_copy(update={"media_type": media_type, "digest": layer.digest, "size": layer.size})


def _refuse_oci_only_fields(model: ImageManifest | ImageIndex, what: str) -> None:
    for name, value in (("subject", model.subject), ("artifactType", model.artifact_type)):
        if value is not None:
            raise ConversionError(f"an OCI {what} with {name} cannot be converted to Docker schema2")


def build_index(
    source: ParsedManifest[AnyManifest], target_type: str, children: Mapping[Digest, Descriptor]
) -> ParsedManifest[AnyManifest]:
    """The index to write: ``source`` with each entry in ``children`` (by old digest) replaced.

    Entries not in ``children`` keep their digest, size and media type. The
    entry's platform (and, for OCI, annotations) stay. ``source`` itself
    when nothing changes.
    """
    model = source.model
    assert isinstance(model, (ImageIndex, DockerManifestList))
    family = family_of(target_type)
    to_docker = family == "v2s2" and isinstance(model, ImageIndex)
    entries = tuple(_index_entry(entry, children.get(entry.digest), to_docker) for entry in model.manifests)
    if target_type == source.media_type and entries == model.manifests:
        return source
    new_model: AnyManifest
    if target_type == mt.OCI_INDEX:
        if isinstance(model, ImageIndex):
            new_model = model.model_copy(update={"manifests": entries})
        else:
            new_model = ImageIndex(schema_version=2, media_type=mt.OCI_INDEX, manifests=entries)
    elif isinstance(model, DockerManifestList):
        new_model = model.model_copy(update={"manifests": entries})
    else:
        _refuse_oci_only_fields(model, "index")
        new_model = DockerManifestList(schema_version=2, media_type=mt.DOCKER_MANIFEST_LIST, manifests=entries)
    return ParsedManifest.from_model(new_model)


def _index_entry(entry: Descriptor, copied: Descriptor | None, to_docker: bool) -> Descriptor:
    updated = entry
    if copied is not None and (copied.media_type, copied.digest, copied.size) != (entry.media_type, entry.digest, entry.size):
        updated = entry.model_copy(update={"media_type": copied.media_type, "digest": copied.digest, "size": copied.size})
    if not to_docker:
        return updated
    return Descriptor(
        media_type=updated.media_type,
        digest=updated.digest,
        size=updated.size,
        urls=updated.urls,
        platform=updated.platform or Platform(architecture="", os=""),
    )
