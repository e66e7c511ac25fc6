"""A corpus of hostile and tricky layer tars, made with tarfile plus raw header bytes.

Each :class:`Case` says what must happen: ``ok`` (applies, round-trips through
tar-split bit-exactly), ``contained`` (applies; anything that aimed outside
lands inside the layer), or ``refused`` (a TarEngineError). The tests apply
every case into ``<tmp>/layer`` beside ``<tmp>/sentinel`` and check that the
sentinel is untouched and nothing appears outside the layer.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pallet.storage.tarengine.limits import Limits

MTIME = 1_700_000_000
PWNED = "pallet-tarengine-pwned"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # ok | contained | refused
    limits: Limits = field(default_factory=Limits)
    check: Callable[[Path], None] | None = None
    root_only: bool = False


# -- building blocks

def info(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mtime = MTIME
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.uname = ti.gname = ""
    for key, value in attrs.items():
        setattr(ti, key, value)
    return ti


def build(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT,
          pax_headers: dict[str, str] | None = None, encoding: str = "utf-8") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, pax_headers=pax_headers, encoding=encoding,
                      errors="surrogateescape") as tar:
        for ti, data in members:
            if ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return out.getvalue()


def f(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, **attrs), data


def d(name: str, **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.DIRTYPE, **attrs), b""


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.SYMTYPE, linkname=target, mode=0o777), b""


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.LNKTYPE, linkname=target), b""


def raw_header(name: bytes, typeflag: bytes = b"0", size: int = 0, linkname: bytes = b"",
               extra: dict[int, bytes] | None = None, bad_checksum: bool = False) -> bytes:
    """A ustar header block with any bytes in it (what tarfile refuses to write)."""
    block = bytearray(512)
    block[0:len(name[:100])] = name[:100]
    block[100:108] = b"0000644\x00"
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = b"%011o\x00" % size
    block[136:148] = b"%011o\x00" % MTIME
    block[156:157] = typeflag
    block[157:157 + len(linkname[:100])] = linkname[:100]
    block[257:265] = b"ustar\x0000"
    for offset, value in (extra or {}).items():
        block[offset:offset + len(value)] = value
    block[148:156] = b" " * 8
    checksum = sum(block) + (1 if bad_checksum else 0)
    block[148:156] = b"%06o\x00 " % checksum
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


END = bytes(1024)


def raw_tar(*parts: bytes, end: bool = True) -> bytes:
    data = b"".join(parts) + (END if end else b"")
    return data + bytes(-len(data) % 10240)


# -- checks

def exists(rel: str) -> Callable[[Path], None]:
    def check(layer: Path) -> None:
        assert (layer / rel).exists() or (layer / rel).is_symlink(), rel
    return check


def has_content(rel: str, data: bytes) -> Callable[[Path], None]:
    def check(layer: Path) -> None:
        assert (layer / rel).read_bytes() == data
    return check


def _comment(size: int) -> bytes:
    return pax_record(b"comment", b"c" * size)


# -- the corpus

def hostile() -> list[Case]:
    return [
        Case("dotdot", build([f("../" + PWNED, b"x")]), "refused"),
        Case("dotdot-nested", build([d("a/"), f("a/../../" + PWNED, b"x")]), "refused"),
        Case("dotdot-raw-header", raw_tar(raw_header(b"../../" + PWNED.encode(), size=1), padded(b"x")), "refused"),
        Case("absolute-path", build([f("/abs/" + PWNED, b"x")]), "contained", check=exists("abs/" + PWNED)),
        Case("symlink-relative-escape", build([sym("s", "../sentinel"), f("s/" + PWNED, b"x")]), "contained",
             check=exists("sentinel/" + PWNED)),
        Case("symlink-absolute-escape", build([sym("s", "/../../../tmp"), f("s/" + PWNED, b"x")]), "contained",
             check=exists("tmp/" + PWNED)),
        Case("symlink-dotdot-after-link", build([d("a/"), sym("a/link", "../../../.."), f("a/link/../" + PWNED, b"x"),
                                                 f("a/link/x" + PWNED, b"y")]), "contained",
             check=exists("x" + PWNED)),
        Case("symlink-chain-escape", build([sym("l1", "l2"), sym("l2", "../../sentinel"), f("l1/" + PWNED, b"x")]),
             "contained", check=exists("sentinel/" + PWNED)),
        Case("symlink-loop", build([sym("l1", "l2"), sym("l2", "l1"), f("l1/x", b"x")]), "refused"),
        Case("symlink-dir-then-deep-write", build([sym("cfg", "/etc"), d("cfg/cron.d/"), f("cfg/cron.d/" + PWNED, b"x")]),
             "contained", check=exists("etc/cron.d/" + PWNED)),
        Case("symlink-self-loop-absolute", build([sym("etc", "/etc"), f("etc/" + PWNED, b"x")]), "refused"),
        Case("symlink-then-same-name-file", build([sym("a", "../sentinel/victim"), f("a", b"x")]), "refused"),
        Case("hardlink-outside", build([hard("h", "../sentinel/victim")]), "refused"),
        Case("hardlink-absolute-outside", build([hard("h", "/etc/passwd")]), "refused"),
        Case("hardlink-not-yet-in-layer", build([hard("h", "later"), f("later", b"x")]), "refused"),
        Case("hardlink-through-symlink", build([sym("s", "../sentinel"), hard("h", "s/victim")]), "refused"),
        Case("hardlink-to-directory", build([d("dir/"), hard("h", "dir")]), "refused"),
        Case("whiteout-outside", build([f("../.wh.sentinel")]), "refused"),
        Case("whiteout-dotdot-target", build([d("a/"), f("a/.wh..")]), "refused"),
        Case("whiteout-through-symlink", build([sym("s", "../sentinel"), f("s/.wh.victim")]), "contained"),
        Case("absurd-size-truncated", raw_tar(raw_header(b"big", size=1 << 40), b"x" * 512, end=False), "refused"),
        Case("absurd-size-capped", raw_tar(raw_header(b"big", size=1 << 30), b"x" * 512, end=False), "refused",
             limits=Limits(max_file_size=1 << 20)),
        Case("too-many-entries", build([f(f"f{i}") for i in range(50)]), "refused", limits=Limits(max_entries=20)),
        Case("total-size-capped", build([f("a", b"x" * 100_000)]), "refused", limits=Limits(max_total_size=50_000)),
        Case("nul-in-pax-path", raw_tar(raw_header(b"PaxHeaders/x", b"x", size=len(pax_record(b"path", b"a\x00b"))),
                                        padded(pax_record(b"path", b"a\x00b")), raw_header(b"x")), "refused"),
        Case("name-over-path-max", build([f("a/" * 2100 + "x")]), "refused"),
        Case("deeper-than-cap", build([f("a/" * 300 + "x", b"deep")]), "refused"),
        Case("component-over-name-max", build([f("x" * 300)]), "refused"),
        Case("gnu-sparse-old", raw_tar(raw_header(b"sparse", b"S", size=512), padded(b"x")), "refused"),
        Case("gnu-sparse-pax", raw_tar(raw_header(b"PaxHeaders/sp", b"x", size=len(pax_record(b"GNU.sparse.size", b"100"))),
                     padded(pax_record(b"GNU.sparse.size", b"100")), raw_header(b"sp")), "refused"),
        Case("bad-checksum", raw_tar(raw_header(b"x", bad_checksum=True)), "refused"),
        Case("zero-block-then-header", raw_tar(bytes(512), raw_header(b"x"), end=False), "refused"),
        Case("extension-header-too-big", raw_tar(raw_header(b"L", b"L", size=2 << 20), b"a" * (2 << 20)), "refused"),
        Case("root-as-file", raw_tar(raw_header(b"./", b"0", size=1), padded(b"x")), "refused"),
        Case("pax-header-flood", raw_tar(*[raw_header(b"PaxHeaders/x", b"x", size=len(_comment(600_000)))
                                           + padded(_comment(600_000)) for _ in range(3)], raw_header(b"x")),
             "refused"),
        Case("overlay-xattr-smuggling", build([_smuggled_member()]), "contained", check=_check_no_overlay_xattrs),
        Case("duplicate-after-clean", build([f("a/b", b"1"), f("a//./b", b"2")]), "refused"),
    ]


def _xattr_member() -> tuple[tarfile.TarInfo, bytes]:
    ti, data = f("cap", b"#!/bin/true\n", mode=0o755)
    ti.pax_headers = {"SCHILY.xattr.user.pallet": "yes",
                      "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12}
    return ti, data


def _smuggled_member() -> tuple[tarfile.TarInfo, bytes]:
    ti, data = f("redirected", b"x")
    ti.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.overlay.opaque": "y"}
    return ti, data


def _check_no_overlay_xattrs(layer: Path) -> None:
    import os
    assert not [k for k in os.listxattr(layer / "redirected") if ".overlay." in k]


def _check_xattrs(layer: Path) -> None:
    import os
    assert os.getxattr(layer / "cap", "user.pallet") == b"yes"


def _check_modes(layer: Path) -> None:
    import os
    import stat
    assert stat.S_IMODE(os.lstat(layer / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(layer / "tmp").st_mode) == 0o1777
    assert os.lstat(layer / "suid").st_mtime == MTIME
    assert os.lstat(layer / "tmp").st_mtime == MTIME + 5


def _check_hardlinks(layer: Path) -> None:
    import os
    assert os.lstat(layer / "a").st_ino == os.lstat(layer / "b").st_ino == os.lstat(layer / "c").st_ino


def tricky() -> list[Case]:
    long = "d" * 90 + "/" + "e" * 90 + "/" + "f" * 120
    deep = "/".join(f"l{i}" for i in range(60))
    uid_big = info("bigid", uid=10_000_000, gid=3_000_000)
    return [
        Case("empty-archive", bytes(10240), "ok"),
        Case("empty-files", build([f("e1"), f("e2"), d("dir/"), f("dir/e3")]), "ok", check=exists("dir/e3")),
        Case("hardlink-chain", build([f("a", b"data"), hard("b", "a"), hard("c", "b")]), "ok", check=_check_hardlinks),
        Case("gnu-long-names", build([d("d" * 90 + "/"), f(long, b"long"), sym("s" * 150, long), hard("h" * 120, long)],
                                     fmt=tarfile.GNU_FORMAT), "ok", check=has_content(long, b"long")),
        Case("pax-long-names", build([f(long, b"long"), sym("s" * 150, "t" * 200), hard("h" * 120, long)]), "ok",
             check=has_content(long, b"long")),
        Case("ustar-prefix", build([f("p" * 120 + "/name", b"u")], fmt=tarfile.USTAR_FORMAT), "ok"),
        Case("pax-xattrs", build([_xattr_member()]), "ok", check=_check_xattrs, root_only=True),
        Case("modes-and-times", build([f("suid", b"s", mode=0o4755), d("tmp/", mode=0o1777, mtime=MTIME + 5),
                                       f("tmp/x", b"x")]), "ok", check=_check_modes),
        Case("deep-tree", build([f(deep + "/leaf", b"deep")]), "ok", check=has_content(deep + "/leaf", b"deep")),
        Case("unicode-names", build([d("データ/"), f("データ/файл-🙂.txt", b"u")]), "ok",
             check=has_content("データ/файл-🙂.txt", b"u")),
        Case("non-utf8-name", build([f("caf\udce9", b"latin1")], fmt=tarfile.GNU_FORMAT), "ok"),
        Case("block-multiple-sizes", build([f("z512", b"z" * 512), f("z1024", b"y" * 1024), f("z1", b"1")]), "ok"),
        Case("trailing-garbage", build([f("a", b"a")]) + b"GARBAGE" * 1000, "ok"),
        Case("no-end-blocks", raw_tar(raw_header(b"a", size=2), padded(b"ab"), end=False), "ok"),
        Case("short-end", raw_header(b"a", size=2) + padded(b"ab") + bytes(512), "ok"),
        Case("base256-ids", build([(uid_big, b"")], fmt=tarfile.GNU_FORMAT), "ok", root_only=True),
        Case("pax-fractional-mtime", build([f("t", b"t", mtime=MTIME + 0.5)]), "ok"),
        Case("global-pax-header", build([f("g", b"g")], pax_headers={"comment": "global"}), "ok"),
        Case("dot-slash-root", build([d("./"), d("./etc/"), f("./etc/hostname", b"h\n")]), "ok",
             check=has_content("etc/hostname", b"h\n")),
        Case("whiteouts", build([d("dir/"), f("dir/.wh..wh..opq"), f(".wh.gone")]), "ok", root_only=True),
        Case("fifo", build([(info("pipe", tarfile.FIFOTYPE), b"")]), "ok"),
        Case("char-device", build([(info("null", tarfile.CHRTYPE, devmajor=1, devminor=3), b"")]), "ok", root_only=True),
        Case("symlink-replaced-by-dir-content", build([sym("l", "target"), d("target/"), f("l/x", b"x")]), "ok",
             check=has_content("target/x", b"x")),
        Case("read-only-dir-with-children", build([d("ro/", mode=0o555), d("ro/sub/", mode=0o500), f("ro/sub/x", b"x"),
                                                   d("locked/", mode=0o000), f("locked/y", b"y", mode=0o400)]), "ok",
             check=has_content("ro/sub/x", b"x")),
        Case("very-deep-tree", build([f("a/" * 250 + "x", b"deep")]), "ok"),
        Case("many-small-files", build([f(f"dir{i % 7}/f{i}", str(i).encode()) for i in range(300)]), "ok"),
    ]


def corpus() -> list[Case]:
    return hostile() + tricky()
