"""The per-blob pipeline: reuse check → get_blob → verify while streaming → recompress → put_blob.

Memory stays constant whatever the blob's size: bytes flow through chained
readers, pulled by the destination's ``put_blob``; nothing reads a whole
blob. The source's bytes are always checked against the source descriptor
(``VerifyingReader``): when the blob is passed on unchanged the check ends
the stream, and when it is recompressed the rest of the source is drained
and checked before the new stream ends, so a destination never sees the end
of a stream whose source was wrong (and keeps nothing of it).

A temporary failure restarts the whole blob (``CopySession.retried``).
Layers are copied by a pool of ``CopySession.parallel_copies()`` threads,
largest first; the first failure cancels the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass
from typing import BinaryIO, Literal, cast

from pallet.oci.compression import (
    CHUNK_SIZE,
    MAGIC_LENGTH,
    PeekableReader,
    decompression_errors,
    detect_compression,
)
from pallet.oci.copy.compression import recompress
from pallet.oci.copy.gate import destination_key
from pallet.oci.copy.manifest_convert import StoredLayer
from pallet.oci.copy.result import BlobAction
from pallet.oci.copy.session import CopySession
from pallet.oci.digest import Digest, VerifyingReader
from pallet.oci.errors import ConversionError, DigestMismatch, OciError, VerificationError
from pallet.oci.mediatypes import Compression, is_layer, layer_compression, oci_layer_media_type
from pallet.oci.spec.image import Descriptor
from pallet.oci.transports.base import BlobInfo, ReusedBlob

_PROGRESS_STEP = 256 * 1024  # report progress at most once per this many bytes

#: Why a blob is not streamed (``ProgressSink.blob_skipped``'s reason).
SkipReason = Literal["exists", "mounted", "foreign"]


@dataclass(frozen=True, slots=True)
class BlobJob:
    """One blob to copy: its source descriptor, and the compression to give it (None: as it is).

    ``can_modify``: the layer may be stored otherwise than the source has it
    (no --preserve-digests, no signatures); a layer whose bytes turn out to
    be compressed otherwise than its media type says is then stored as the
    destination wants it, and described as it really is.
    """

    descriptor: Descriptor
    is_config: bool = False
    target: Compression | None = None
    can_substitute: bool = False
    can_modify: bool = False
    variants: tuple[Descriptor, ...] = ()  # the source's other encodings of this content (ImageSource.blob_variants)


@dataclass(frozen=True, slots=True)
class CopiedBlob:
    """A blob as the destination now holds it, and how it got there."""

    stored: StoredLayer
    action: BlobAction
    is_config: bool
    diff_id: Digest | None = None


class _Cancelled(Exception):
    """Raised inside a read when another blob of the copy failed."""


def blob_info(descriptor: Descriptor) -> BlobInfo:
    """The ``BlobInfo`` a transport is given for a descriptor."""
    return BlobInfo(
        digest=descriptor.digest,
        size=descriptor.size,
        media_type=descriptor.media_type,
        urls=tuple(descriptor.urls or ()),
        annotations=tuple(sorted((descriptor.annotations or {}).items())),
    )


class _SourceReader:
    """The source stream, verified; reports progress, stops when cancelled, remembers its failure."""

    def __init__(self, stream: BinaryIO, descriptor: Descriptor, session: CopySession) -> None:
        self._verifying = VerifyingReader(stream, descriptor.digest, descriptor.size)
        self._digest = descriptor.digest
        self._session = session
        self._reported = 0
        self.failure: OciError | None = None

    def read(self, size: int = -1) -> bytes:
        if self._session.cancelled.is_set():
            raise _Cancelled()
        try:
            data = self._verifying.read(size)
        except OciError as error:
            self.failure = error
            raise
        done = self._verifying.bytes_read
        if not data or done - self._reported >= _PROGRESS_STEP:
            self._reported = done
            self._session.progress.blob_progress(self._digest, done)
        return data

    def drain_and_verify(self) -> None:
        """Read what is left of the source and check it (after a recompressed stream ended)."""
        while self.read(CHUNK_SIZE):
            pass
        self._verifying.verify()


class _EndCheckedReader:
    """Ends only after ``source.drain_and_verify()`` passed: a wrong source fails before EOF.

    Remembers a failure of the (de)compressors, to tell corrupt data from a
    failing destination.
    """

    def __init__(self, stream: BinaryIO, source: _SourceReader) -> None:
        self._stream = stream
        self._source = source
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
        except decompression_errors() as error:
            self.failure = error
            raise
        if not data and size != 0:
            self._source.drain_and_verify()
        return data


class BlobCopier:
    """Copies blobs of one image from the session's source to its destination."""

    def __init__(self, session: CopySession) -> None:
        self._session = session

    def copy_all(self, jobs: Sequence[BlobJob]) -> list[CopiedBlob]:
        """Copy ``jobs`` (in parallel when allowed, largest first); results in the order of ``jobs``."""
        workers = min(self._session.parallel_copies(), len(jobs))
        if workers <= 1:
            return [self.copy(job) for job in jobs]
        order = sorted(range(len(jobs)), key=lambda i: -jobs[i].descriptor.size)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pallet-copy") as pool:
            futures: dict[Future[CopiedBlob], int] = {pool.submit(self.copy, jobs[i]): i for i in order}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [future for future in done if future.exception() is not None]
            if failed:
                self._session.cancelled.set()
                for future in futures:
                    future.cancel()
                raise _first_real_error(failed, futures)
        results = {futures[future]: future.result() for future in futures}
        return [results[i] for i in range(len(jobs))]

    def copy(self, job: BlobJob) -> CopiedBlob:
        """Copy one blob, or find it at the destination already; retried when temporarily failing."""
        session = self._session
        info = blob_info(job.descriptor)
        if job.descriptor.urls and session.dest.accepts_foreign_layer_urls():
            return self._skipped(job, None, "foreign")
        what = f"copying {'config' if job.is_config else 'blob'} {job.descriptor.digest}"
        try:
            gate = session.options.blob_gate
            if gate is None:
                return session.retried(lambda: self._reuse_or_stream(job, info), what)
            with gate.hold(destination_key(session.dest.reference), job.descriptor.digest):
                return session.retried(lambda: self._reuse_or_stream(job, info), what)
        except VerificationError as error:  # say which blob, from where: the bare mismatch names neither
            error.args = (f"{what} from {session.source.reference}: {error}",)
            raise

    def _reuse_or_stream(self, job: BlobJob, info: BlobInfo) -> CopiedBlob:
        if job.target is None:  # a blob to recompress cannot be found under its source digest
            reused = self._session.dest.try_reusing_blob(info, can_substitute=job.can_substitute)
            if reused is not None:
                mounted = isinstance(reused, ReusedBlob) and reused.mounted
                return self._skipped(job, reused, "mounted" if mounted else "exists")
        elif job.can_substitute:  # ...but an encoding of it that the source knows of may be there already
            for variant in job.variants:
                if layer_compression(variant.media_type) != job.target:
                    continue
                reused = self._session.dest.try_reusing_blob(blob_info(variant), can_substitute=True)
                if reused is not None and reused.digest in (None, variant.digest):
                    mounted = isinstance(reused, ReusedBlob) and reused.mounted
                    return self._variant_reused(job, variant, "mounted" if mounted else "exists")
        return self._stream(job, info)

    def _variant_reused(self, job: BlobJob, variant: Descriptor, reason: SkipReason) -> CopiedBlob:
        """The destination holds ``variant``: the layer is stored as the variant describes it, unchanged."""
        self._session.progress.blob_skipped(job.descriptor.digest, variant.size, is_config=job.is_config, reason=reason)
        action: BlobAction = "skipped" if reason == "exists" else reason
        return CopiedBlob(StoredLayer(variant, variant.digest, variant.size), action, job.is_config)

    def _skipped(self, job: BlobJob, reused: BlobInfo | None, reason: SkipReason) -> CopiedBlob:
        """The blob is not streamed: the destination holds it (``reused``), mounted it, or it is foreign."""
        descriptor = job.descriptor
        digest = reused.digest if reused is not None and reused.digest is not None else descriptor.digest
        size = reused.size if reused is not None and reused.size >= 0 else descriptor.size
        compression: Compression | None = None
        if reused is not None and digest != descriptor.digest and is_layer(reused.media_type):
            compression = layer_compression(reused.media_type)  # a substitute, perhaps compressed otherwise
        self._session.progress.blob_skipped(descriptor.digest, size, is_config=job.is_config, reason=reason)
        action: BlobAction = "skipped" if reason == "exists" else reason
        return CopiedBlob(StoredLayer(descriptor, digest, size, compression), action, job.is_config)

    def _stream(self, job: BlobJob, info: BlobInfo) -> CopiedBlob:
        session = self._session
        if session.cancelled.is_set():
            raise _Cancelled()
        descriptor = job.descriptor
        session.progress.blob_started(descriptor.digest, descriptor.size, is_config=job.is_config)
        stream, _ = session.source.get_blob(info)
        with closing(stream):
            source = _SourceReader(stream, descriptor, session)
            if job.target is None:
                copied = self._put_as_it_is(job, info, source)
            else:
                copied = self._put_recompressed(job, info, source, job.target)
        session.progress.blob_done(descriptor.digest, copied.stored.digest, copied.stored.size)
        return copied

    def _put_unchanged(
        self, job: BlobJob, info: BlobInfo, source: _SourceReader, stream: BinaryIO, compression: Compression | None
    ) -> CopiedBlob:
        try:
            stored = self._session.dest.put_blob(stream, info, is_config=job.is_config)
        except Exception as error:
            if source.failure is not None and source.failure is not error:
                raise source.failure from error
            raise
        source.drain_and_verify()
        if stored.digest is not None and stored.digest != job.descriptor.digest:
            raise DigestMismatch(str(job.descriptor.digest), str(stored.digest))
        stored_layer = StoredLayer(job.descriptor, job.descriptor.digest, job.descriptor.size, compression)
        return CopiedBlob(stored_layer, "copied", job.is_config)

    def _put_as_it_is(self, job: BlobJob, info: BlobInfo, source: _SourceReader) -> CopiedBlob:
        """A blob planned to go unchanged; but a layer whose bytes belie its media type is handled as
        containers/image does (an uncompressed layer is compressed where the destination wants
        compression) and is described as it really is (docker-archive sources serve every layer
        uncompressed under a gzip media type)."""
        if job.is_config or not job.can_modify or not is_layer(job.descriptor.media_type):
            return self._put_unchanged(job, info, source, cast(BinaryIO, source), None)
        peekable = PeekableReader(cast(BinaryIO, source))
        actual = detect_compression(peekable.peek(MAGIC_LENGTH))
        if actual == layer_compression(job.descriptor.media_type) or actual not in ("none", "gzip", "zstd"):
            return self._put_unchanged(job, info, source, cast(BinaryIO, peekable), None)
        wanted = self._session.dest.desired_layer_compression()
        if actual == "none" and wanted in ("gzip", "zstd"):
            return self._put_recompressed(job, info, source, cast(Compression, wanted), peekable)
        relabelled = BlobInfo(info.digest, info.size, oci_layer_media_type(actual), info.urls, info.annotations)
        return self._put_unchanged(job, relabelled, source, cast(BinaryIO, peekable), actual)

    def _put_recompressed(
        self,
        job: BlobJob,
        info: BlobInfo,
        source: _SourceReader,
        target: Compression,
        peekable: PeekableReader | None = None,
    ) -> CopiedBlob:
        peekable = peekable or PeekableReader(cast(BinaryIO, source))
        if detect_compression(peekable.peek(MAGIC_LENGTH)) == target:  # the media type said otherwise
            same = BlobInfo(info.digest, info.size, oci_layer_media_type(target), info.urls, info.annotations)
            return self._put_unchanged(job, same, source, cast(BinaryIO, peekable), target)
        recompressed = recompress(peekable, target, self._session.options.dest_compression_level)
        end_checked = _EndCheckedReader(recompressed.reader, source)
        new_info = BlobInfo(None, -1, oci_layer_media_type(target), (), info.annotations)
        try:
            stored = self._session.dest.put_blob(cast(BinaryIO, end_checked), new_info)
        except Exception as error:
            explained = self._explain_failure(job, source, end_checked, recompressed.detected, error)
            if explained is error:
                raise
            raise explained from error
        digest, size = recompressed.digest(), recompressed.size
        if stored.digest is not None and (stored.digest != digest or stored.size not in (-1, size)):
            raise DigestMismatch(str(digest), str(stored.digest))
        layer = StoredLayer(job.descriptor, digest, size, target)
        return CopiedBlob(layer, "copied", job.is_config, recompressed.diff_id())

    @staticmethod
    def _explain_failure(
        job: BlobJob, source: _SourceReader, stream: _EndCheckedReader, detected: str, error: Exception
    ) -> BaseException:
        if source.failure is not None:
            return source.failure
        if stream.failure is None:
            return error
        try:
            source.drain_and_verify()
        except OciError as verification:
            return verification
        return ConversionError(f"layer {job.descriptor.digest}: its {detected} data cannot be decompressed: {stream.failure}")


def _first_real_error(failed: list[Future[CopiedBlob]], order: dict[Future[CopiedBlob], int]) -> BaseException:
    errors = [future.exception() for future in sorted(failed, key=lambda f: order[f])]
    real = [error for error in errors if error is not None and not isinstance(error, _Cancelled)]
    chosen = (real or errors)[0]
    assert chosen is not None
    return chosen


