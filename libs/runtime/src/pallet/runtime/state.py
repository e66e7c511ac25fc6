"""The state of containers on disk: one directory per container under the state root.

Layout (``root`` is ``--root``; :func:`default_state_root` when not given)::

    root/<id>/container.json   the record: pid, its start time, bundle, rootfs, created, owner, annotations
    root/<id>/exec.fifo        present from create until start (its presence means "created")

Records are written atomically (temporary file, fsync, rename). The status is
never stored: :meth:`ContainerRecord.status` derives it from the process (gone,
a zombie or a recycled PID means ``stopped``) and the fifo, as runc does.
The state a CLI prints is :meth:`ContainerRecord.state`, the runtime spec's
state object (``ociVersion``, ``id``, ``status``, ``pid``, ``bundle``,
``annotations``) with runc's and crun's extra ``rootfs``, ``created`` and
``owner``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pallet.runtime.errors import ContainerExists, ContainerNotFound, InvalidContainerID, StateCorrupt

OCI_VERSION = "1.1.0"
RECORD_NAME = "container.json"
EXEC_FIFO_NAME = "exec.fifo"

_ID = re.compile(r"^[A-Za-z0-9_+.-]{1,1024}$")


def default_state_root() -> Path:
    """``/run/pallet-runtime`` for root, ``$XDG_RUNTIME_DIR/pallet-runtime`` otherwise
    (``/run/user/<uid>/pallet-runtime`` when the variable is unset)."""
    if os.geteuid() == 0:
        return Path("/run/pallet-runtime")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return Path(runtime_dir) / "pallet-runtime"


def check_container_id(container_id: str) -> str:
    if not _ID.match(container_id) or container_id in (".", ".."):
        raise InvalidContainerID(f"invalid container ID {container_id!r}: use 1 to 1024 of [A-Za-z0-9_+.-]")
    return container_id


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks since boot), or None for a process
    that is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True)
class ContainerRecord:
    """What ``create`` records about a container (everything but the live status)."""

    id: str
    pid: int
    pid_start_time: int
    bundle: str
    rootfs: str
    created: str
    owner: str
    annotations: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, Any] = field(default_factory=dict)  # the config's hooks object (JSON), for start and delete
    cgroup_path: str = ""  # under each cgroup v1 hierarchy; empty: no cgroup
    directory: Path = field(default=Path(), compare=False)

    @property
    def exec_fifo(self) -> Path:
        return self.directory / EXEC_FIFO_NAME

    def status(self) -> str:
        """``created``, ``running`` or ``stopped`` (``creating`` is never recorded)."""
        if process_start_time(self.pid) != self.pid_start_time:
            return "stopped"
        return "created" if self.exec_fifo.exists() else "running"

    def spec_state(self, status: str) -> dict[str, Any]:
        """The runtime spec's state object as hooks get it, with ``status`` given."""
        return {"ociVersion": OCI_VERSION, "id": self.id, "status": status, "pid": self.pid, "bundle": self.bundle,
                "annotations": dict(self.annotations)}

    def state(self) -> dict[str, Any]:
        """The runtime spec's state object, with runc's ``rootfs``, ``created`` and ``owner``."""
        status = self.status()
        state: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            state["annotations"] = dict(self.annotations)
        return state


@dataclass(frozen=True)
class StateRoot:
    """The directory holding one state directory per container."""

    path: Path

    def container_dir(self, container_id: str) -> Path:
        return self.path / check_container_id(container_id)

    def reserve(self, container_id: str) -> Path:
        """Make the container's directory (mode 0700); ContainerExists when it is there already."""
        self.path.mkdir(mode=0o711, parents=True, exist_ok=True)
        directory = self.container_dir(container_id)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        return directory

    def write(self, record: ContainerRecord) -> None:
        """Write ``record`` atomically into its directory."""
        directory = self.container_dir(record.id)
        data = {key: value for key, value in asdict(record).items() if key != "directory"}
        temporary = directory / f".{RECORD_NAME}.tmp"
        with open(temporary, "w") as stream:
            json.dump(data, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, directory / RECORD_NAME)

    def load(self, container_id: str) -> ContainerRecord:
        directory = self.container_dir(container_id)
        path = directory / RECORD_NAME
        try:
            data = json.loads(path.read_bytes())
            return ContainerRecord(**data, directory=directory)
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        except (ValueError, TypeError) as error:
            raise StateCorrupt(f"{path}: {error}") from None

    def remove(self, container_id: str) -> None:
        shutil.rmtree(self.container_dir(container_id), ignore_errors=True)

    def ids(self) -> list[str]:
        """The IDs of the containers that have a record, sorted."""
        try:
            entries = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []
        return [name for name in entries if (self.path / name / RECORD_NAME).exists()]
