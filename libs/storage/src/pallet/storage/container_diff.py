"""The layer diff of a container's read-write layer, for commit: a tar stream with its diff_id.

As containers/storage 1.43's ``Store.Diff`` of a layer without tar-split
(a container's layer has none):

- overlay: the layer's upper directory (``<home>/<id>/diff``) is read
  directly, nothing is mounted (the overlay driver's ``Diff`` does the same);
  char devices 0/0 become ``.wh.NAME`` and a directory with
  ``trusted.overlay.opaque`` or ``user.overlay.opaque`` = ``y`` gets a
  ``DIR/.wh..wh..opq`` entry (:func:`pallet.storage.tarengine.diff.diff_upper`);
- vfs: the layer's full tree against its parent layer's tree (c/storage's
  naive diff, which "mounts" both; for vfs that is only the directory):
  changed entries by type, mode, owner, size, mtime and xattrs, and
  ``.wh.NAME`` for removed ones (:func:`~pallet.storage.tarengine.diff.diff_trees`).

The tar is deterministic (:mod:`pallet.storage.tarengine.diff`): the same
directory gives the same bytes. It can be compressed on the way out (gzip
with a zero mtime and no name, or zstd, single frame), in constant memory;
both the uncompressed digest (the diff_id a config lists) and the digest of
what was written (the blob digest a manifest lists) are returned.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

from pallet.storage.layer_store import LayerDriver
from pallet.storage.records import Layer
from pallet.storage.tarengine import WhiteoutFormat
from pallet.storage.tarengine.diff import DiffResult, diff_new_tree, diff_trees, diff_upper

COMPRESSIONS = ("none", "gzip", "zstd")
GZIP_LEVEL = 6  # Go's gzip.DefaultCompression, what c/image compresses layers with
ZSTD_LEVEL = 3  # zstd's default, as c/image's zstd (klauspost SpeedDefault) roughly


@dataclass(frozen=True)
class ContainerDiff:
    """What :func:`write_container_diff` wrote.

    ``diff_id``/``size``: sha256 and length of the uncompressed tar (the
    config's ``rootfs.diff_ids`` entry). ``digest``/``written``: of the bytes
    written to the caller's file (equal to the former for ``"none"``).
    ``entries``: tar members written.
    """

    layer: str
    diff_id: str
    size: int
    compression: str
    digest: str
    written: int
    entries: int


class _Hashing:
    """A write-only file object that hashes and counts what passes through to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.out.write(view)
        return len(view)

    def flush(self) -> None:
        self.out.flush()


class _Closing(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


def _compressor(compression: str, sink: _Hashing) -> _Closing | None:
    """A writer compressing into ``sink`` (None for ``"none"``); closing it finishes the stream, not ``sink``."""
    if compression == "none":
        return None
    if compression == "gzip":
        return gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=cast(BinaryIO, sink), mtime=0)
    import zstandard  # only when asked for, as the tar engine does

    return cast(_Closing, zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(
        cast(BinaryIO, sink), closefd=False, write_return_read=True))


def write_container_diff(driver: LayerDriver, layer: Layer, out: BinaryIO, compression: str = "none") -> ContainerDiff:
    """Write the diff of ``layer`` (a container's read-write layer, or any layer) against its parent to ``out``.

    The caller holds ``layers.lock`` (read is enough: nothing is changed,
    mounted or counted). ``compression``: ``"none"``, ``"gzip"`` or
    ``"zstd"`` (ValueError otherwise). ``out`` is written sequentially, never
    sought or closed. A layer still in use by a running container gives a
    diff of whatever the walk finds; commit a stopped (or paused) container.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r} (one of {', '.join(COMPRESSIONS)})")
    sink = _Hashing(out)
    compressor = _compressor(compression, sink)
    target = cast(BinaryIO, compressor if compressor is not None else sink)
    tree = driver.diff_roots(layer.id)[0]
    result: DiffResult
    if driver.whiteouts is not WhiteoutFormat.VFS:
        result = diff_upper(tree, target)  # overlay: the upper dir holds only the changes
    elif layer.parent:
        result = diff_trees(tree, driver.diff_roots(layer.parent)[0], target)
    else:
        result = diff_new_tree(tree, target)
    if compressor is not None:
        compressor.close()
    sink.flush()
    return ContainerDiff(layer.id, result.digest, result.size, compression, "sha256:" + sink.sha.hexdigest(),
                         sink.size, result.entries)
