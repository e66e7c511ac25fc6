"""Copying an index (OCI index or Docker manifest list): containers/image's ``copy/multiple.go``.

- ``"all"``: every child image is copied through the single-image path,
  one after the other as skopeo does: its blobs, then its manifest (put with
  its ``instance_digest``); then the index, rewritten to point at the
  children as written when any of them changed (or converted in type);
- ``"index-only"``: the index alone, children untouched (a registry accepts
  an index whose children are absent); its type may still be converted.

``--multi-arch system`` does not come here: the engine picks one child and
copies it as a single image.
"""

from __future__ import annotations

from collections.abc import Sequence

from pallet.oci.copy.manifest_convert import Family, build_index, family_of, manifest_type_candidates
from pallet.oci.copy.result import BlobOutcome, CopyResult
from pallet.oci.copy.session import CopySession
from pallet.oci.copy.single import PreparedImage, prepare_image, write_manifest
from pallet.oci.digest import Digest
from pallet.oci.errors import ConversionError, ManifestTypeRejected, UnsupportedMediaType
from pallet.oci.manifest import AnyManifest, ParsedManifest
from pallet.oci.spec.docker import DockerManifestList
from pallet.oci.spec.image import Descriptor, ImageIndex


def copy_index(session: CopySession, index: ParsedManifest[AnyManifest]) -> CopyResult:
    """Copy ``index`` as ``session.options.multi_arch`` says ("all" or "index-only")."""
    model = index.model
    assert isinstance(model, (ImageIndex, DockerManifestList))
    options = session.options
    candidates = manifest_type_candidates(
        index.media_type, session.dest.supported_manifest_types(), options.format, preserve_digests=options.preserve_digests
    )
    signatures = [] if options.remove_signatures else session.source.get_signatures(None)
    if options.multi_arch == "index-only":
        session.progress.instances_started(0, len(model.manifests))
        written = _write_index(session, index, candidates, {}, signatures)
        return CopyResult(written.digest, written.media_type, written.raw, ())
    children_family = _children_family(index.media_type, candidates[0], options.format)
    new_children, outcomes = _copy_children(session, model.manifests, children_family)
    if options.preserve_digests and any(new.digest != old for old, new in new_children.items()):
        raise ConversionError("--preserve-digests: a child manifest would change, and with it the index's digest")
    same_family = [t for t in candidates if family_of(t) == children_family] or candidates
    written = _write_index(session, index, same_family, new_children, signatures)
    instances = tuple(new_children[entry.digest].digest for entry in model.manifests)
    return CopyResult(written.digest, written.media_type, written.raw, tuple(outcomes), instances)


def _children_family(source_type: str, index_type: str, forced: Family | None) -> Family | None:
    """The family children must be converted to: the forced one, or the index's when the index converts."""
    if forced is not None:
        return forced
    return family_of(index_type) if index_type != source_type else None


def _copy_children(
    session: CopySession, entries: Sequence[Descriptor], family: Family | None
) -> tuple[dict[Digest, Descriptor], list[BlobOutcome]]:
    """Copy every child in index order (blobs, then its manifest), telling the progress sink which is at work."""
    session.progress.instances_started(len(entries), len(entries))
    written: dict[Digest, Descriptor] = {}
    outcomes: list[BlobOutcome] = []
    for position, entry in enumerate(entries, start=1):
        session.progress.instance_started(entry.digest, position, len(entries))
        manifest, blobs = write_manifest(session, _prepare_child(session, entry, family), instance=True)
        written[entry.digest] = manifest.descriptor()
        outcomes.extend(blobs)
    return written, outcomes


def _prepare_child(session: CopySession, entry: Descriptor, family: Family | None) -> PreparedImage:
    child = session.read_instance(entry)
    if child.is_index:
        raise UnsupportedMediaType(child.media_type, context="index entry (nested indexes are not copied)")
    return prepare_image(session, child, instance_digest=entry.digest, forced_family=family)


def _write_index(
    session: CopySession,
    index: ParsedManifest[AnyManifest],
    candidates: list[str],
    children: dict[Digest, Descriptor],
    signatures: list[bytes],
) -> ParsedManifest[AnyManifest]:
    """Put the first acceptable form of the index, then its signatures."""
    rejected: ManifestTypeRejected | None = None
    for candidate in candidates:
        written = build_index(index, candidate, children)
        if written.digest != index.digest and (session.options.preserve_digests or signatures):
            why = "--preserve-digests" if session.options.preserve_digests else "the source's signatures (use --remove-signatures)"
            raise ConversionError(f"{why}: the index would have to be rewritten, changing its digest")
        try:
            session.dest.put_manifest(written.raw, written.media_type, None)
        except ManifestTypeRejected as error:
            rejected = error
            continue
        session.progress.index_written(written.digest, written.media_type)
        if signatures:
            session.dest.put_signatures(signatures, None)
        return written
    assert rejected is not None
    raise rejected


__all__ = ["copy_index"]
