"""The layer tar engine: apply a layer safely, record tar-split, and rebuild the exact tar.

    apply_layer(stream, layer_dir, tar_split=out, options=ApplyOptions(...)) -> ApplyResult
    reassemble(tar_split_gz, [layer_dir, *lower_dirs], out) -> (digest, size)

Security model: :mod:`pallet.storage.tarengine.safety`. Errors:
:mod:`pallet.storage.tarengine.errors`. Importing this package imports no
third-party module (zstandard is imported when a zstd layer is applied).
"""

from __future__ import annotations

from pallet.storage.tarengine.apply import ApplyOptions, ApplyResult, apply_layer
from pallet.storage.tarengine.fsops import FsOps, RootFsOps, UnprivilegedFsOps, UsernsFsOps, default_fsops
from pallet.storage.tarengine.limits import Limits
from pallet.storage.tarengine.tarsplit import reassemble
from pallet.storage.tarengine.whiteouts import WhiteoutFormat

__all__ = [
    "ApplyOptions", "ApplyResult", "FsOps", "Limits", "RootFsOps", "UnprivilegedFsOps", "UsernsFsOps", "WhiteoutFormat",
    "apply_layer", "default_fsops", "reassemble",
]
