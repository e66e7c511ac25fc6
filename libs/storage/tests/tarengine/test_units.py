"""Small contracts: CRC-64/GO-ISO, name cleaning, the tar-split line format, in-root resolution."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
from pathlib import Path

import pytest
from corpus import build, f

from pallet.storage.tarengine import apply_layer, reassemble
from pallet.storage.tarengine.crc64 import Crc64, PurePythonCrc64, crc64
from pallet.storage.tarengine.errors import TarSplitError, UnsafeEntryError
from pallet.storage.tarengine.limits import Limits
from pallet.storage.tarengine.safety import LayerRoot, clean_name


CRC_IMPLEMENTATIONS = pytest.mark.parametrize("crc_class", [Crc64, PurePythonCrc64], ids=["default", "pure-python"])


def test_the_default_crc64_is_the_c_one() -> None:
    # pallet-storage requires anycrc: a silent fall back to the pure-Python CRC makes applying layers ~10x slower
    assert Crc64 is not PurePythonCrc64


@CRC_IMPLEMENTATIONS
def test_crc64_check_values(crc_class: type[Crc64]) -> None:
    assert crc64(b"123456789") == 0xB90956C775A41001
    assert base64.b64encode(crc_class().digest()) == b"AAAAAAAAAAA="
    crc = crc_class()
    crc.update(b"hel")
    crc.update(b"lo\n")
    assert base64.b64encode(crc.digest()) == b"YUw+7uLYEAA="


@CRC_IMPLEMENTATIONS
def test_crc64_matches_table_implementation(crc_class: type[Crc64]) -> None:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0xD800000000000000 if c & 1 else 0)
        table.append(c)

    def slow(data: bytes) -> int:
        c = (1 << 64) - 1
        for b in data:
            c = table[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ ((1 << 64) - 1)

    for size in (0, 1, 7, 8, 9, 100, 4096, 70_001):
        data = os.urandom(size)
        crc = crc_class()
        for start in range(0, size, 997):
            crc.update(data[start:start + 997])
        assert crc.value() == slow(data) == crc64(data)


@pytest.mark.parametrize("name,parts", [
    (b"./etc/passwd", (b"etc", b"passwd")), (b"/abs//x/", (b"abs", b"x")), (b"a/../b", (b"b",)), (b"./", ()),
])
def test_clean_name(name: bytes, parts: tuple[bytes, ...]) -> None:
    assert clean_name(name, Limits()) == parts


@pytest.mark.parametrize("name", [b"..", b"a/../../b", b"a\x00b", b"x" * 256])
def test_clean_name_refuses(name: bytes) -> None:
    with pytest.raises(UnsafeEntryError):
        clean_name(name, Limits())


def test_tar_split_lines(tmp_path: Path) -> None:
    data = build([f("etc/hostname", b"hello\n")])
    split = io.BytesIO()
    apply_layer(io.BytesIO(data), tmp_path, tar_split=split)
    lines = [json.loads(line) for line in gzip.decompress(split.getvalue()).splitlines()]
    assert [line["position"] for line in lines] == list(range(len(lines)))
    files = [line for line in lines if line["type"] == 1]
    assert files == [{"type": 1, "name": "etc/hostname", "size": 6, "payload": "YUw+7uLYEAA=", "position": 1}]
    assert lines[-1] == {"type": 2, "payload": "", "position": len(lines) - 1}
    raw_line = gzip.decompress(split.getvalue()).splitlines()[1]
    assert raw_line == b'{"type":1,"name":"etc/hostname","size":6,"payload":"YUw+7uLYEAA=","position":1}'


def test_reassemble_detects_changed_content(tmp_path: Path) -> None:
    data = build([f("a", b"original")])
    split = io.BytesIO()
    apply_layer(io.BytesIO(data), tmp_path, tar_split=split)
    (tmp_path / "a").write_bytes(b"tampered")
    with pytest.raises(TarSplitError):
        reassemble(io.BytesIO(split.getvalue()), [tmp_path], io.BytesIO())


def test_reassemble_never_reads_through_a_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"original")
    layer = tmp_path / "layer"
    layer.mkdir()
    split = io.BytesIO()
    apply_layer(io.BytesIO(build([f("a", b"original")])), layer, tar_split=split)
    (layer / "a").unlink()
    (layer / "a").symlink_to(secret)
    with pytest.raises(TarSplitError):
        reassemble(io.BytesIO(split.getvalue()), [layer], io.BytesIO())


def test_open_dir_clamps_symlinks_at_the_root(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    os.symlink("../../../../", tmp_path / "up")
    os.symlink("/inside", tmp_path / "abs")
    with LayerRoot(tmp_path) as root:
        for parts in ((b"up",), (b"up", b"inside"), (b"abs", b"..", b"..")):
            fd = root.open_dir(parts)
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            expected = tmp_path / "inside" if parts[-1] == b"inside" else tmp_path
            assert (st.st_dev, st.st_ino) == (expected.stat().st_dev, expected.stat().st_ino)


def test_import_does_not_load_zstandard() -> None:
    import subprocess
    import sys

    probe = "import sys, pallet.storage.tarengine; print('zstandard' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_corrupt_compressed_streams_are_format_errors(tmp_path: Path) -> None:
    import zstandard

    from pallet.storage.tarengine.errors import TarFormatError

    data = build([f("a", os.urandom(50_000))])
    for blob in (gzip.compress(data)[:-100], zstandard.ZstdCompressor().compress(data)[:-50],
                 gzip.compress(data)[:20] + b"\xff" * 200):
        target = tmp_path / str(len(blob))
        target.mkdir()
        with pytest.raises(TarFormatError):
            apply_layer(io.BytesIO(blob), target)
