"""The corpus and the device/xattr policy, run as the unprivileged test user (no user namespace)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from corpus import corpus

SCRIPT = r"""
import io, json, os, sys, tarfile
sys.path.insert(0, sys.argv[1])
from corpus import corpus
from pallet.storage.tarengine import ApplyOptions, apply_layer, reassemble
from pallet.storage.tarengine.errors import TarEngineError
top = sys.argv[2]
results = {}
for case in corpus():
    base = os.path.join(top, case.name)
    os.makedirs(os.path.join(base, "layer"))
    os.makedirs(os.path.join(base, "sentinel"))
    split = io.BytesIO()
    try:
        result = apply_layer(io.BytesIO(case.data), os.path.join(base, "layer"), tar_split=split,
                             options=ApplyOptions(limits=case.limits))
    except TarEngineError as exc:
        results[case.name] = "refused:" + type(exc).__name__
        continue
    out = io.BytesIO()
    try:
        reassemble(io.BytesIO(split.getvalue()), [os.path.join(base, "layer")], out, case.limits)
        results[case.name] = "roundtrip" if out.getvalue() == case.data else "applied"
    except TarEngineError as exc:
        results[case.name] = "applied:" + type(exc).__name__
    results[case.name + ":outside"] = sorted(os.listdir(base)) + sorted(os.listdir(os.path.join(base, "sentinel")))
from pallet.storage.tarengine import WhiteoutFormat
case = next(c for c in corpus() if c.name == "whiteouts")
os.makedirs(os.path.join(top, "userxattr"))
apply_layer(io.BytesIO(case.data), os.path.join(top, "userxattr"),
            options=ApplyOptions(whiteouts=WhiteoutFormat.OVERLAY_USERXATTR))
results["userxattr"] = [os.getxattr(os.path.join(top, "userxattr", "dir"), "user.overlay.opaque").decode(),
                        os.stat(os.path.join(top, "userxattr", "gone"), follow_symlinks=False).st_rdev]
print(json.dumps(results))
"""


@pytest.mark.rootless
def test_corpus_as_unprivileged_user(rootless_user, rootless_tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = rootless_user.run([sys.executable, "-c", SCRIPT, str(Path(__file__).parent), str(rootless_tmp_path)])
    assert done.returncode == 0, done.stderr.decode()
    results = json.loads(done.stdout)
    for case in corpus():
        got = results[case.name]
        if case.name == "char-device":
            assert got == "refused:UnsupportedEntryError"
        elif case.expect == "refused":
            assert got.startswith("refused:"), case.name
        elif case.name == "read-only-dir-with-children":
            assert got == "applied:TarSplitError"  # mode 000 dirs: unreadable without privilege, so no reassembly
        elif case.name == "whiteouts":
            assert got == "refused:ApplyError"  # trusted.overlay.opaque needs CAP_SYS_ADMIN: an error, not a warning
        elif case.expect == "ok":
            assert got == "roundtrip", case.name
        else:
            assert got in ("applied", "roundtrip"), case.name
        if case.name == "read-only-dir-with-children":
            continue
        if not got.startswith("refused"):
            assert results[case.name + ":outside"] == ["layer", "sentinel"], case.name
    assert results["userxattr"] == ["y", 0]  # rootless overlay form: 0/0 device (allowed since Linux 5.8) + user xattr
