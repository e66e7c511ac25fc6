"""``copy_image``: copy an image (or index) from one transport to another, as ``skopeo copy`` does.

The engine knows only the transport protocol (``pallet.oci.transports.base``):
it asks the destination what it supports and never checks which transport
it has. Order of work:

1. open the source, evaluate the policy on it (before anything is copied);
2. read the top-level manifest; for an index, ``multi_arch`` decides:
   ``system`` picks the child for this host (or the ``--override-*``
   choices of the source context: ``pallet.oci.image.wanted_platform``)
   and copies it as a single image;
   ``all`` and ``index-only`` go to ``multiple.copy_index``;
3. open the destination and tell it where the blobs come from
   (``set_source_hint``: a registry mounts blobs across its repositories);
   blobs, then manifests, then ``commit``. Progress goes to the
   ``ProgressSink`` in the order ``copy.progress`` describes.

Any failure closes the destination without ``commit``: it keeps no image.
Temporary failures are retried (``pallet.oci.retry.with_retries``).
"""

from __future__ import annotations

from pallet.oci.copy.multiple import copy_index
from pallet.oci.copy.options import CopyOptions
from pallet.oci.copy.policy import Policy, load_policy
from pallet.oci.copy.progress import NullProgress, ProgressSink
from pallet.oci.copy.result import CopyResult
from pallet.oci.copy.session import CopySession
from pallet.oci.copy.single import prepare_image, write_manifest
from pallet.oci.image import choose_instance, read_top_manifest
from pallet.oci.manifest import AnyManifest, ParsedManifest
from pallet.oci.retry import with_retries
from pallet.oci.transports.base import ImageReference, ImageSource


def copy_image(
    source_ref: ImageReference,
    dest_ref: ImageReference,
    options: CopyOptions | None = None,
    *,
    policy: Policy | None = None,
    progress: ProgressSink | None = None,
) -> CopyResult:
    """Copy the image ``source_ref`` names to ``dest_ref``; see the module docstring.

    ``policy`` None loads the default policy.json (``load_policy`` with the
    source context's home; ``InvalidPolicy`` when there is no valid one).
    Raises ``PolicyRejected`` before any blob moves when the policy refuses
    the image; ``DigestMismatch``/``SizeMismatch``
    when the source serves other bytes than its manifest promises;
    ``ConversionError`` when the copy cannot be done as asked;
    ``ManifestTypeRejected`` when the destination takes no form of the
    manifest; ``NoMatchingPlatform`` when an index has no image for the
    platform wanted. Whatever fails, the destination is not committed.
    """
    options = options or CopyOptions()
    policy = policy if policy is not None else load_policy(context=options.source_context)
    with source_ref.new_source(options.source_context) as source:
        policy.check(source_ref)
        top = _read_manifest(source, options)
        with dest_ref.new_destination(options.dest_context) as dest:
            dest.set_source_hint(source_ref)
            session = CopySession(source, dest, options, progress or NullProgress())
            result = _copy_top(session, top)
            dest.commit()
    return result


def _read_manifest(source: ImageSource, options: CopyOptions) -> ParsedManifest[AnyManifest]:
    return with_retries(
        lambda: read_top_manifest(source),
        times=options.retry_times,
        delay=options.retry_delay,
        what="reading the manifest",
    )


def _copy_top(session: CopySession, top: ParsedManifest[AnyManifest]) -> CopyResult:
    several = top.is_index and session.options.multi_arch != "system"
    session.progress.copy_started(index=several)
    if several:
        return copy_index(session, top)
    image = _choose_instance(session, top) if top.is_index else top
    prepared = prepare_image(session, image, instance_digest=image.digest if top.is_index else None, forced_family=None)
    written, blobs = write_manifest(session, prepared, instance=False)
    return CopyResult(written.digest, written.media_type, written.raw, blobs)


def _choose_instance(session: CopySession, index: ParsedManifest[AnyManifest]) -> ParsedManifest[AnyManifest]:
    """The child of ``index`` for the wanted platform, read and verified against its descriptor."""
    return session.read_instance(choose_instance(index, session.options.source_context))
