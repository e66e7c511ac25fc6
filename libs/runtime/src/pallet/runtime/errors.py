"""The exceptions of pallet.runtime: one tree, raised by every module of the lib.

Callers branch on the leaves; the CLI maps the root to one error line and
exit status 1. This module imports nothing of pallet.runtime.

    OciRuntimeError                 the root of every error of pallet.runtime
    ├── KernelCallFailed            a system call failed (names the call, the path, the errno)
    ├── BundleError                 the bundle cannot be run: no config.json, invalid JSON or schema,
    │                               missing rootfs, a namespace or mapping the runtime cannot set up
    ├── InvalidContainerID          an ID that is empty or not made of [A-Za-z0-9_+.-]
    ├── ContainerNotFound           no state directory for that ID under the root
    ├── ContainerExists             a state directory for that ID is already there
    ├── WrongStatus                 the operation is not allowed in the container's status
    ├── ContainerSetupFailed        the container process reported a failure before it was created
    ├── HookFailed                  a lifecycle hook exited non-zero, timed out or could not run
    └── StateCorrupt                a state file that pallet-runtime did not write
"""

from __future__ import annotations

import os


class OciRuntimeError(Exception):
    """The root of every error raised by pallet.runtime."""


class KernelCallFailed(OciRuntimeError):
    """A system call failed: ``call`` (``mount``, ``pivot_root``...), ``path`` when it names one,
    and ``errno``."""

    def __init__(self, call: str, errno: int, path: str | None = None, detail: str | None = None) -> None:
        self.call = call
        self.errno = errno
        self.path = path
        where = f" {path}" if path else ""
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{call}{where}{extra}: {os.strerror(errno)}")


class BundleError(OciRuntimeError):
    """The bundle cannot be run as it stands (the message names the file or field)."""


class InvalidContainerID(OciRuntimeError, ValueError):
    """A container ID that is empty, too long or not made of ``[A-Za-z0-9_+.-]``."""


class ContainerNotFound(OciRuntimeError):
    """No container of that ID under the state root."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"container {container_id!r} does not exist")


class ContainerExists(OciRuntimeError):
    """A container of that ID exists already under the state root."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"container {container_id!r} already exists")


class WrongStatus(OciRuntimeError):
    """The operation is not allowed in the container's current status."""

    def __init__(self, container_id: str, operation: str, status: str) -> None:
        self.container_id = container_id
        self.status = status
        super().__init__(f"cannot {operation} container {container_id!r}: it is {status}")


class ContainerSetupFailed(OciRuntimeError):
    """The container process failed while it set itself up (its own message is passed on)."""


class HookFailed(OciRuntimeError):
    """A hook of ``stage`` (``createRuntime``...) failed: the message names its path and why."""

    def __init__(self, stage: str, path: str, why: str) -> None:
        self.stage = stage
        self.path = path
        super().__init__(f"{stage} hook {path}: {why}")


class StateCorrupt(OciRuntimeError):
    """A state file under the root that does not parse as pallet-runtime writes it."""
