"""Copying one image (a manifest, its config and layers): containers/image's ``copy/single.go``.

Steps, in order:

1. plan: which layers change compression (``plan_compression``), which
   manifest types may be written (``manifest_type_candidates``), and refuse
   early what cannot be done (preserve-digests, signatures that a change
   would invalidate, a format that cannot hold the planned layers);
2. copy the layers (in parallel, largest first) and then the config;
3. build the manifest for the first candidate type that can express the
   result; ``write_manifest`` then puts it, falling back to the next type
   when the destination refuses one (``ManifestTypeRejected``).

Only the layer descriptors (digest, size, media type) and the media types
change; the config's bytes never do: a DiffID is the digest of the
uncompressed tar, which recompression leaves as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import cast

from pallet.oci import mediatypes as mt
from pallet.oci.copy.blobs import BlobCopier, BlobJob, CopiedBlob, blob_info
from pallet.oci.copy.manifest_convert import (
    Family,
    StoredLayer,
    build_image_manifest,
    check_expressible,
    manifest_type_candidates,
)
from pallet.oci.copy.result import BlobOutcome
from pallet.oci.copy.session import CopySession
from pallet.oci.digest import Digest, verify_bytes
from pallet.oci.errors import (
    ConversionError,
    ManifestTypeRejected,
    NoMatchingPlatform,
    UnsupportedMediaType,
    UnsupportedOperation,
)
from pallet.oci.manifest import AnyManifest, ParsedManifest, parse_config
from pallet.oci.platform import host_platform
from pallet.oci.spec.docker import DockerManifest
from pallet.oci.spec.image import Descriptor, ImageManifest


_MAX_CONFIG_SIZE = 16 << 20  # a config read whole must be small (containers/image reads it whole too)


@dataclass(frozen=True)
class PreparedImage:
    """An image whose blobs are at the destination, and the manifests that may describe it.

    ``manifests`` holds one manifest per acceptable type, best first; the
    first one the destination accepts is written. ``signatures`` go with it.
    """

    source: ParsedManifest[AnyManifest]
    manifests: tuple[ParsedManifest[AnyManifest], ...]
    blobs: tuple[CopiedBlob, ...]
    signatures: tuple[bytes, ...]


def plan_compression(session: CopySession, layer: Descriptor, *, can_modify: bool) -> mt.Compression | None:
    """The compression to give ``layer``, or None to copy it as it is.

    The user's explicit choice wins; else the destination's wish, which only
    compresses plain layers or decompresses compressed ones (a gzip layer
    stays gzip where zstd is merely preferred, as in containers/image).
    Non-layers and non-distributable layers are never changed.
    """
    if not mt.is_layer(layer.media_type) or mt.is_nondistributable(layer.media_type):
        return None
    current = mt.layer_compression(layer.media_type)
    requested = session.options.requested_compression
    if requested is not None:
        if requested == current:
            return None
        if not can_modify:
            raise ConversionError(_why_unmodifiable(session, f"recompressing layer {layer.digest} to {requested}"))
        return requested
    desired = session.dest.desired_layer_compression()
    if not can_modify or desired not in ("gzip", "zstd", "none") or desired == current:
        return None
    if desired == "none" or current == "none":
        return cast(mt.Compression, desired)
    return None


def _why_unmodifiable(session: CopySession, change: str) -> str:
    if session.options.preserve_digests:
        return f"--preserve-digests: {change} would change digests"
    return f"{change} would invalidate the source's signatures (use --remove-signatures)"


def prepare_image(
    session: CopySession,
    source: ParsedManifest[AnyManifest],
    *,
    instance_digest: Digest | None,
    forced_family: Family | None,
) -> PreparedImage:
    """Copy the blobs of the image ``source`` and build its candidate manifests (nothing is put yet)."""
    parsed = source
    model = parsed.model
    if not isinstance(model, (ImageManifest, DockerManifest)):
        raise UnsupportedMediaType(parsed.media_type, context="image manifest")
    signatures = _signatures(session, instance_digest)
    can_modify = not session.options.preserve_digests and not signatures
    layers = _layers_for_copy(session, model, instance_digest, can_modify=can_modify)
    plans = [plan_compression(session, layer, can_modify=can_modify) for layer in layers]
    candidates = _feasible_types(session, parsed, forced_family, layers, plans, can_modify=can_modify)
    copier = BlobCopier(session)
    if session.dest.must_match_runtime_os():
        check_runtime_os(session, model.config)
    substitute = can_modify and session.options.requested_compression is None
    layer_jobs = [
        BlobJob(layer, target=plan, can_substitute=substitute, can_modify=can_modify,
                variants=session.source.blob_variants(layer) if substitute else ())
        for layer, plan in zip(layers, plans)
    ]
    copied_layers = copier.copy_all(layer_jobs)
    config = copier.copy(BlobJob(model.config, is_config=True))
    copied = (config, *copied_layers)
    manifests = _build_manifests(parsed, candidates, [blob.stored for blob in copied])
    return PreparedImage(parsed, manifests, copied, tuple(signatures))


def _layers_for_copy(
    session: CopySession, model: ImageManifest | DockerManifest, instance_digest: Digest | None, *, can_modify: bool
) -> tuple[Descriptor, ...]:
    """The manifest's layers, or those the source says it really serves (``layer_infos_for_copy``)."""
    updated = session.source.layer_infos_for_copy(instance_digest)
    if updated is None or tuple(updated) == tuple(model.layers):
        return tuple(model.layers)
    if len(updated) != len(model.layers):
        raise ConversionError(
            f"{session.source.reference} lists {len(updated)} layers to copy for a manifest of {len(model.layers)}")
    if not can_modify:
        raise ConversionError(_why_unmodifiable(session, "storing the layers as this source holds them"))
    return tuple(updated)


def check_runtime_os(session: CopySession, config: Descriptor) -> None:
    """For destinations that run images (``must_match_runtime_os``): the config's OS must be the wanted one.

    The wanted OS is the destination context's ``--override-os``, else the
    host's; ``NoMatchingPlatform`` otherwise (containers/image refuses too).
    """
    if config.size > _MAX_CONFIG_SIZE:
        raise ConversionError(f"the image config {config.digest} is too large to check ({config.size} bytes)")
    stream, _ = session.source.get_blob(blob_info(config))
    with closing(stream):
        raw = stream.read(config.size + 1)
    verify_bytes(raw, config.digest, config.size)
    parsed = parse_config(raw, config.media_type)
    wanted = session.options.dest_context.os_choice or host_platform().os
    if parsed.model.os != wanted:
        raise NoMatchingPlatform(wanted, [f"{parsed.model.os}/{parsed.model.architecture}"])


def _signatures(session: CopySession, instance_digest: Digest | None) -> list[bytes]:
    if session.options.remove_signatures:
        return []
    signatures = session.source.get_signatures(instance_digest)
    if signatures and not session.dest.supports_signatures():
        raise UnsupportedOperation(
            f"cannot copy signatures to {session.dest.reference}: the destination does not support them "
            "(use --remove-signatures)"
        )
    return signatures


def _feasible_types(
    session: CopySession,
    parsed: ParsedManifest[AnyManifest],
    forced_family: Family | None,
    layers: Sequence[Descriptor],
    plans: Sequence[mt.Compression | None],
    *,
    can_modify: bool,
) -> list[str]:
    forced = session.options.format or forced_family
    candidates = manifest_type_candidates(
        parsed.media_type,
        session.dest.supported_manifest_types(),
        forced,
        preserve_digests=False,
    )
    if not can_modify:
        if candidates[0] != parsed.media_type:
            raise ConversionError(_why_unmodifiable(session, f"converting the manifest to {candidates[0]}"))
        candidates = candidates[:1]
    model = parsed.model
    assert isinstance(model, (ImageManifest, DockerManifest))
    planned = [StoredLayer(model.config, model.config.digest, model.config.size)]
    planned += [StoredLayer(layer, layer.digest, layer.size, plan) for layer, plan in zip(layers, plans)]
    feasible, errors = [], []
    for candidate in candidates:
        try:
            check_expressible(parsed, candidate, planned)
        except ConversionError as error:
            errors.append(error)
        else:
            feasible.append(candidate)
    if not feasible:
        raise errors[0]
    return feasible


def _build_manifests(
    parsed: ParsedManifest[AnyManifest], candidates: Sequence[str], stored: Sequence[StoredLayer]
) -> tuple[ParsedManifest[AnyManifest], ...]:
    built, errors = [], []
    for candidate in candidates:
        try:
            built.append(build_image_manifest(parsed, candidate, stored))
        except ConversionError as error:  # a layer turned out to be compressed otherwise than declared
            errors.append(error)
    if not built:
        raise errors[0]
    return tuple(built)


def write_manifest(
    session: CopySession, prepared: PreparedImage, *, instance: bool
) -> tuple[ParsedManifest[AnyManifest], tuple[BlobOutcome, ...]]:
    """Put the first manifest of ``prepared`` the destination accepts, then its signatures.

    Returns the manifest written and the outcomes of its blobs (media types
    as written). Raises the last ``ManifestTypeRejected`` when none is accepted.
    """
    rejected: ManifestTypeRejected | None = None
    for manifest in prepared.manifests:
        instance_digest = manifest.digest if instance else None
        try:
            session.dest.put_manifest(manifest.raw, manifest.media_type, instance_digest)
        except ManifestTypeRejected as error:
            rejected = error
            continue
        session.progress.manifest_written(manifest.digest, manifest.media_type, instance=instance)
        if prepared.signatures:
            session.dest.put_signatures(list(prepared.signatures), instance_digest)
        return manifest, _outcomes(prepared.blobs, manifest)
    assert rejected is not None
    raise rejected


def _outcomes(blobs: Sequence[CopiedBlob], manifest: ParsedManifest[AnyManifest]) -> tuple[BlobOutcome, ...]:
    model = manifest.model
    assert isinstance(model, (ImageManifest, DockerManifest))
    descriptors = (model.config, *model.layers)
    return tuple(
        BlobOutcome(
            source_digest=blob.stored.source.digest,
            digest=descriptor.digest,
            size=descriptor.size,
            media_type=descriptor.media_type,
            action=blob.action,
            is_config=blob.is_config,
            diff_id=blob.diff_id,
        )
        for blob, descriptor in zip(blobs, descriptors)
    )


