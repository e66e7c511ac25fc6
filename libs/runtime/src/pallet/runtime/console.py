"""The container's terminal: a pty of the container's devpts, its master sent to a console socket.

As runc does it: the runtime connects to ``--console-socket`` (an AF_UNIX
socket that conmon or podman listens on) and the container process, after
pivot_root, opens ``/dev/ptmx``, sends the master over that connection
(SCM_RIGHTS, with the pty's name as the message), makes the slave its
controlling terminal and its stdin, stdout and stderr, and binds it onto
``/dev/console``.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import socket
import struct
import termios

from pallet.oci.spec.runtime import ConsoleSize
from pallet.runtime import kernel as k
from pallet.runtime.errors import KernelCallFailed, OciRuntimeError

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430


def connect_console_socket(path: str) -> socket.socket:
    """A connection to the console socket at ``path`` (in the runtime's mount namespace)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError as error:
        connection.close()
        raise OciRuntimeError(f"console socket {path}: {error.strerror or error}") from None
    return connection


def send_fd(connection_fd: int, fd: int, name: str) -> None:
    with socket.socket(fileno=os.dup(connection_fd)) as connection:
        fds = array.array("i", [fd])
        connection.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def set_up_terminal(connection_fd: int, size: ConsoleSize | None, uid: int) -> None:
    """In the container, after pivot_root: make the pty, send its master, take the slave."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise KernelCallFailed("open", error.errno or 0, "/dev/ptmx", "process.terminal needs devpts") from None
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, struct.pack("I", 0)))[0]
    slave_path = f"/dev/pts/{number}"
    if size is not None:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))
    send_fd(connection_fd, master, slave_path)
    os.close(master)
    os.close(connection_fd)
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, uid, -1)
    if not os.path.lexists("/dev/console"):
        with open("/dev/console", "w"):
            pass
    k.mount(slave_path, "/dev/console", None, k.MS_BIND)
    try:  # as crun: without devpts' nosuid,noexec (locked, so kept, in a user namespace)
        k.mount(None, "/dev/console", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RELATIME)
    except KernelCallFailed as error:
        if error.errno != errno.EPERM:
            raise
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
