"""pallet.runtime.kernel: libc calls that raise KernelCallFailed naming the call and the path."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pallet.runtime import kernel
from pallet.runtime.errors import KernelCallFailed, OciRuntimeError


def test_failed_mount_names_call_path_and_errno(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(KernelCallFailed) as caught:
        kernel.mount("none", str(missing), "tmpfs", 0)
    assert caught.value.call == "mount"
    assert caught.value.path == str(missing)
    assert caught.value.errno in (errno.ENOENT, errno.EPERM)
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, OciRuntimeError)


def test_umount_of_a_directory_that_is_no_mount_point(tmp_path: Path) -> None:
    with pytest.raises(KernelCallFailed) as caught:
        kernel.umount2(str(tmp_path))
    assert caught.value.call == "umount2"
    assert caught.value.errno in (errno.EINVAL, errno.EPERM)


def test_capget_reads_the_callers_masks() -> None:
    effective, permitted, _ = kernel.capget()
    assert effective & ~permitted == 0
    if os.geteuid() != 0:
        assert effective == 0


def test_prctl_reads_no_new_privs() -> None:
    assert kernel.prctl(kernel.PR_GET_NO_NEW_PRIVS) in (0, 1)


def test_unshare_with_an_invalid_flag_fails_with_einval() -> None:
    with pytest.raises(KernelCallFailed) as caught:
        kernel.unshare(0x1)  # CSIGNAL bits are not namespaces
    assert caught.value.errno == errno.EINVAL
    assert "unshare" in str(caught.value)
