"""Reading one image through an ImageSource: the manifest, the platform's
instance of an index, and the config, each verified against its descriptor.

This is what ``inspect`` needs and what the copy engine starts from. It knows
only the transport protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pallet.oci.digest import Digest, VerifyingReader, verify_bytes
from pallet.oci.errors import SizeMismatch, UnsupportedMediaType
from pallet.oci.platform import NormalizedPlatform, choose_manifest, host_platform, normalize_platform

if TYPE_CHECKING:
    from pallet.oci.manifest import AnyConfig, AnyManifest, ParsedConfig, ParsedManifest
    from pallet.oci.spec.image import Descriptor
    from pallet.oci.transports.base import ImageSource, SystemContext

CONFIG_SIZE_LIMIT = 4 * 1024 * 1024  # as containers/image: a config is small; refuse huge ones


@dataclass(frozen=True)
class ImageView:
    """One image as read from a source: the top-level manifest (maybe an
    index), the chosen image manifest and its config, all with raw bytes."""

    top: ParsedManifest[AnyManifest]
    manifest: ParsedManifest[AnyManifest]
    config: ParsedConfig[AnyConfig]
    instance_digest: Digest | None  # the child of ``top`` that was chosen, if top is an index


def wanted_platform(context: SystemContext) -> NormalizedPlatform:
    """The platform to choose from an index: this host's, with the ``--override-os/arch/variant``
    choices of ``context``.

    As in containers/image, overriding the architecture drops the host's
    variant unless a variant is given too (even when the override names the
    host's own architecture).
    """
    host = host_platform()
    variant = context.variant_choice if context.architecture_choice else (context.variant_choice or host.variant)
    return normalize_platform(
        context.os_choice or host.os, context.architecture_choice or host.architecture, variant or None
    )


def read_top_manifest(source: ImageSource) -> ParsedManifest[AnyManifest]:
    """The manifest the source's reference names (maybe an index), parsed; not retried."""
    from pallet.oci.manifest import parse_manifest

    raw, media_type = source.get_manifest()
    return parse_manifest(raw, media_type)


def choose_instance(index: ParsedManifest[AnyManifest], context: SystemContext) -> Descriptor:
    """The entry of ``index`` for ``wanted_platform(context)``; ``NoMatchingPlatform`` when none fits."""
    from pallet.oci.spec.docker import DockerManifestList
    from pallet.oci.spec.image import ImageIndex

    model = index.model
    if not isinstance(model, (ImageIndex, DockerManifestList)):
        raise UnsupportedMediaType(index.media_type, context="index")
    return choose_manifest(model, wanted_platform(context))


def read_instance(source: ImageSource, entry: Descriptor) -> ParsedManifest[AnyManifest]:
    """The child manifest ``entry`` names, checked against its digest and size, parsed.

    ``DigestMismatch``/``SizeMismatch`` when the bytes are not what the
    index promised. The child may itself be an index: callers that need an
    image manifest refuse it.
    """
    from pallet.oci.manifest import parse_manifest

    raw, media_type = source.get_manifest(entry.digest)
    verify_bytes(raw, entry.digest, entry.size)
    return parse_manifest(raw, media_type or entry.media_type)


def read_image(source: ImageSource, context: SystemContext) -> ImageView:
    """The image the source names; for an index, its instance for ``wanted_platform``.

    The instance is checked only by the source (against its digest), as
    skopeo inspect does; an index as the instance raises ``UnsupportedMediaType``.
    """
    from pallet.oci.manifest import parse_image_manifest

    top = read_top_manifest(source)
    manifest, instance = top, None
    if top.is_index:
        entry = choose_instance(top, context)
        instance = entry.digest
        raw, media_type = source.get_manifest(instance)
        manifest = parse_image_manifest(raw, media_type or entry.media_type)
    return ImageView(top, manifest, read_config(source, manifest), instance)


def read_config(source: ImageSource, manifest: ParsedManifest[AnyManifest]) -> ParsedConfig[AnyConfig]:
    """Fetch the manifest's config blob, verified, and parse it."""
    from pallet.oci.manifest import parse_config
    from pallet.oci.transports.base import BlobInfo

    descriptor = manifest.model.config  # type: ignore[union-attr]
    if descriptor.size > CONFIG_SIZE_LIMIT:
        raise SizeMismatch(CONFIG_SIZE_LIMIT, descriptor.size)
    stream, _ = source.get_blob(BlobInfo(descriptor.digest, descriptor.size, descriptor.media_type))
    with stream:
        reader = VerifyingReader(stream, descriptor.digest, descriptor.size)
        chunks = []
        while chunk := reader.read(65536):  # the reader refuses more than descriptor.size
            chunks.append(chunk)
    return parse_config(b"".join(chunks), descriptor.media_type)
