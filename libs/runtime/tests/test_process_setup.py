"""The descriptors a container's or an exec'd process may inherit."""

from __future__ import annotations

import os
from pathlib import Path

from pallet.runtime.process_setup import close_inherited_fds


def test_only_stdio_and_the_preserved_descriptors_stay_inheritable(tmp_path: Path) -> None:
    # in a child: the marks are per process, and pytest's own descriptors must not change
    pid = os.fork()
    if pid == 0:
        try:
            fds = [os.open(tmp_path, os.O_RDONLY) for _ in range(4)]
            for fd in fds:
                os.set_inheritable(fd, True)
            close_inherited_fds(fds[1] - 3)  # preserves 3 .. fds[1] - 1: fds[0] (each open takes the lowest free)
            ok = os.get_inheritable(fds[0]) and not any(os.get_inheritable(fd) for fd in fds[1:])
            os._exit(0 if ok else 1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
