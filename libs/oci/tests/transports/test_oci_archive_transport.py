"""The ``oci-archive:`` transport: archives written and read through the protocol, hostile archives, skopeo."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import ImageNotFound, InvalidImageName, RefUnknown, UnsafeArchive, UnsupportedOperation
from pallet.oci.transports import default_transports
from pallet.oci.transports.base import BlobInfo, ImageReference, SystemContext
from pallet_testing.images import write_oci_layout

REF_NAME = "org.opencontainers.image.ref.name"


def oci_archive(text: str) -> ImageReference:
    return default_transports(plugins=False).parse_image_name(f"oci-archive:{text}")


@pytest.fixture
def ctx(tmp_path: Path) -> SystemContext:
    """A context whose staging directory the tests can watch: it must be empty after each use."""
    staging = tmp_path / "staging"
    staging.mkdir()
    return SystemContext(tmp_dir=staging)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {info.name: info for info in tar.getmembers()}


def tar_of_layout(layout: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=path.relative_to(layout).as_posix(), recursive=False)
    return archive


# --- parsing ---------------------------------------------------------------------------


def test_parse_like_oci() -> None:
    reference = oci_archive("/tmp/a.tar:example.com/app:v1")
    assert reference.string_within_transport() == "/tmp/a.tar:example.com/app:v1"
    assert oci_archive(reference.string_within_transport()) == reference
    with pytest.raises(InvalidImageName):
        oci_archive("")
    with pytest.raises(InvalidImageName):
        oci_archive("/tmp/a.tar:no spaces")


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single_layer", "multi_layer", "two_platform_index"])
def test_round_trip(
    name: str,
    test_images: Any,
    put: Callable[..., None],
    check: Callable[..., None],
    ctx: SystemContext,
    tmp_path: Path,
) -> None:
    image = getattr(test_images, name)
    reference = oci_archive(f"{tmp_path}/image.tar:v1")
    with reference.new_destination(ctx) as dest:
        put(dest, image)
    assert list(ctx.tmp_dir.iterdir()) == []  # type: ignore[union-attr]
    names = members(tmp_path / "image.tar")
    assert {"oci-layout", "index.json", "blobs", "blobs/sha256", f"blobs/sha256/{image.digest[7:]}"} <= set(names)
    assert not any(n.startswith(".pallet-tmp") for n in names)
    with reference.new_source(ctx) as src:
        check(src, image)
        assert len(list(ctx.tmp_dir.iterdir())) == 1  # type: ignore[union-attr]
    assert list(ctx.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


def test_archives_are_deterministic(
    test_images: Any, put: Callable[..., None], ctx: SystemContext, tmp_path: Path
) -> None:
    digests = set()
    for name in ("one.tar", "two.tar"):
        with oci_archive(f"{tmp_path}/{name}:v1").new_destination(ctx) as dest:
            put(dest, test_images.multi_layer)
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
        infos = members(tmp_path / name).values()
        assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, 0, "", "")}
    assert len(digests) == 1


def test_an_existing_archive_is_replaced_whole(
    test_images: Any, put: Callable[..., None], ctx: SystemContext, tmp_path: Path
) -> None:
    archive = tmp_path / "image.tar"
    for ref, image in (("a", test_images.single_layer), ("b", test_images.multi_layer)):
        with oci_archive(f"{archive}:{ref}").new_destination(ctx) as dest:
            put(dest, image)
    with oci_archive(f"{archive}:b").new_source(ctx) as src:
        assert src.get_manifest()[0] == test_images.multi_layer.manifest.data
    with pytest.raises(RefUnknown):
        oci_archive(f"{archive}:a").new_source(ctx)


def test_close_without_commit_writes_no_archive(test_images: Any, ctx: SystemContext, tmp_path: Path) -> None:
    image = test_images.single_layer
    with oci_archive(f"{tmp_path}/image.tar:v1").new_destination(ctx) as dest:
        for blob in image.blobs():
            dest.put_blob(io.BytesIO(blob.data), BlobInfo(Digest.parse(blob.digest), blob.size))
        dest.put_manifest(image.manifest.data, image.manifest.media_type)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging"]
    assert list(ctx.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


def test_compressed_archives_are_read(
    test_images: Any, check: Callable[..., None], ctx: SystemContext, tmp_path: Path
) -> None:
    write_oci_layout(tmp_path / "layout", {"v1": test_images.single_layer})
    with tarfile.open(tmp_path / "image.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "layout", arcname=".")
    with oci_archive(f"{tmp_path}/image.tar.gz:v1").new_source(ctx) as src:
        check(src, test_images.single_layer)


def test_missing_archive_and_ref_are_image_not_found(test_images: Any, ctx: SystemContext, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="does not exist"):
        oci_archive(f"{tmp_path}/none.tar:v1").new_source(ctx)
    write_oci_layout(tmp_path / "layout", {"v1": test_images.single_layer})
    tar_of_layout(tmp_path / "layout", tmp_path / "image.tar")
    with pytest.raises(ImageNotFound):
        oci_archive(f"{tmp_path}/image.tar:v2").new_source(ctx)
    assert list(ctx.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


def test_delete_is_unsupported(tmp_path: Path, ctx: SystemContext) -> None:
    with pytest.raises(UnsupportedOperation):
        oci_archive(f"{tmp_path}/image.tar:v1").delete(ctx)


# --- hostile archives ----------------------------------------------------------------------


def _hostile_member(kind: str, outside: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    def file(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, bytes]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info, data

    def link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        return info, b""

    if kind == "dotdot":
        return [file(f"blobs/../../{outside.name}/evil")]
    if kind == "absolute":
        return [file(f"{outside}/evil")]
    if kind == "symlink-escape":
        return [link("blobs", str(outside), tarfile.SYMTYPE), file("blobs/evil")]
    if kind == "hardlink":
        return [link("blobs/evil", str(outside / "victim"), tarfile.LNKTYPE)]
    device = tarfile.TarInfo("blobs/dev")
    device.type = tarfile.CHRTYPE
    return [(device, b"")]


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-escape", "hardlink", "device"])
def test_hostile_archives_are_refused_and_nothing_escapes(kind: str, ctx: SystemContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("intact")
    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w") as tar:
        tar.addfile(*_info_and_stream(tarfile.TarInfo("oci-layout"), b'{"imageLayoutVersion":"1.0.0"}'))
        for info, data in _hostile_member(kind, outside):
            tar.addfile(*_info_and_stream(info, data))
    with pytest.raises(UnsafeArchive, match="hostile.tar: member"):
        oci_archive(f"{archive}:v1").new_source(ctx)
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "intact"
    assert list(ctx.tmp_dir.iterdir()) == []  # type: ignore[union-attr]


def _info_and_stream(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
        return info, io.BytesIO(data)
    return info, None


# --- interop with skopeo ---------------------------------------------------------------------


@pytest.mark.interop
def test_skopeo_reads_what_we_write(
    test_images: Any, put: Callable[..., None], run_skopeo: Callable[..., str], ctx: SystemContext, tmp_path: Path
) -> None:
    index = test_images.two_platform_index
    with oci_archive(f"{tmp_path}/ours.tar:v1").new_destination(ctx) as dest:
        put(dest, index)
    raw = run_skopeo("inspect", "--raw", f"oci-archive:{tmp_path}/ours.tar:v1")
    assert hashlib.sha256(raw.encode()).hexdigest() == index.digest[7:]
    run_skopeo(
        "copy", "--all", "--preserve-digests", f"oci-archive:{tmp_path}/ours.tar:v1", f"oci:{tmp_path}/theirs:v2"
    )
    entries = json.loads((tmp_path / "theirs" / "index.json").read_text())["manifests"]
    assert [e["digest"] for e in entries] == [index.digest]


@pytest.mark.interop
def test_we_read_what_skopeo_writes(
    test_images: Any, check: Callable[..., None], run_skopeo: Callable[..., str], ctx: SystemContext, tmp_path: Path
) -> None:
    image = test_images.multi_layer
    write_oci_layout(tmp_path / "src", {"v1": image})
    run_skopeo("copy", f"oci:{tmp_path}/src:v1", f"oci-archive:{tmp_path}/theirs.tar:copied")
    with oci_archive(f"{tmp_path}/theirs.tar:copied").new_source(ctx) as src:
        check(src, image)
