"""Every corpus tar is refused or contained with nothing outside the layer; well-formed ones round-trip."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from corpus import PWNED, Case, corpus

from pallet.storage.tarengine import ApplyOptions, apply_layer, reassemble
from pallet.storage.tarengine.errors import TarEngineError

IS_ROOT = os.geteuid() == 0


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under ``top`` but ``skip``, with mode, size and content."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path == skip:
                continue
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[str(path)] = (st.st_mode, st.st_size, data)
    return out


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "victim").write_bytes(b"untouched")
    target = tmp_path / "layer"
    target.mkdir()
    return target


def _cases() -> list[object]:
    return [pytest.param(case, id=case.name,
                         marks=[pytest.mark.skipif(case.root_only and not IS_ROOT, reason="needs root")])
            for case in corpus()]


def test_corpus_size() -> None:
    cases = corpus()
    assert sum(1 for c in cases if c.expect != "ok") >= 25
    assert len(cases) >= 50
    assert len({c.name for c in cases}) == len(cases)


@pytest.mark.parametrize("case", _cases())
def test_corpus_case(case: Case, layer: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path, layer)
    split = io.BytesIO()
    options = ApplyOptions(limits=case.limits)
    if case.expect == "refused":
        with pytest.raises(TarEngineError):
            apply_layer(io.BytesIO(case.data), layer, tar_split=split, options=options)
    else:
        result = apply_layer(io.BytesIO(case.data), layer, tar_split=split, options=options)
        assert result.diff_id == "sha256:" + hashlib.sha256(case.data).hexdigest()
        assert result.size == len(case.data)
        if case.check is not None:
            case.check(layer)
        if case.expect == "ok":
            rebuilt = io.BytesIO()
            digest, size = reassemble(io.BytesIO(split.getvalue()), [layer], rebuilt, case.limits)
            assert rebuilt.getvalue() == case.data
            assert (digest, size) == (result.diff_id, result.size)
    assert snapshot(tmp_path, layer) == before
    for outside in ("/", "/tmp", "/etc", "/etc/cron.d", str(tmp_path)):
        assert not os.path.lexists(os.path.join(outside, PWNED))
