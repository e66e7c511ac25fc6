"""parse_mount_options: flags, propagation, bind and the data string."""

from __future__ import annotations

from pallet.runtime import kernel as k
from pallet.runtime.mount_options import parse_mount_options


def test_flags_data_and_clearing_options() -> None:
    options = parse_mount_options(("nosuid", "noexec", "ro", "rw", "mode=755", "size=65536k"), "tmpfs")
    assert options.flags == k.MS_NOSUID | k.MS_NOEXEC
    assert options.data == "mode=755,size=65536k"
    assert not options.bind and not options.readonly


def test_rbind_with_propagation() -> None:
    options = parse_mount_options(("rbind", "ro", "rslave"), None)
    assert options.bind and options.recursive and options.readonly
    assert options.propagation == (k.MS_SLAVE | k.MS_REC,)
    assert options.data == ""


def test_bind_type_without_options() -> None:
    assert parse_mount_options(None, "bind").bind
