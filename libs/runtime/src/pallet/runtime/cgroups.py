"""cgroup v1 hierarchies for a container, as crun's cgroupfs driver makes them.

The container's cgroup is ``linux.cgroupsPath`` (``/<id>`` when absent) under
every v1 hierarchy mounted on this host (``/proc/self/mountinfo``). The
runtime creates it, moves the container's first process into it before the
cgroup namespace is made (so that namespace's root is the container's cgroup),
writes ``linux.resources`` (memory, pids, cpu, cpuset, blkio weight, the
device rules followed by the devices every container gets) and removes it
on delete. A runtime without root leaves cgroups alone (v1 cannot be
delegated). Of a cgroup v2 mount beside them (hybrid), only membership is
kept; a host with cgroup v2 alone is not handled yet.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pallet.oci.spec.runtime import DeviceCgroupRule, Resources
from pallet.runtime.errors import KernelCallFailed

RMDIR_ATTEMPTS = 40

# the devices every container may use after its own rules: crun's list in crun's order (mknod of
# anything; null, random, full, tty, zero, urandom), then runc's terminal and tun devices (console,
# ptmx, the pts, tun), which crun 1.8 leaves out
DEFAULT_DEVICE_RULES = (
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
    "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
)


def v1_hierarchies(mountinfo: str = "/proc/self/mountinfo") -> dict[str, Path]:
    """The mount point of each v1 hierarchy by its name (``memory``, ``cpu``, ``name=systemd``...)."""
    found: dict[str, Path] = {}
    with open(mountinfo) as stream:
        for line in stream:
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(tail) >= 3 and tail[0] == "cgroup2":
                found.setdefault("unified", Path(fields[4]))  # membership only: no resources written there
            if len(tail) >= 3 and tail[0] == "cgroup":
                for option in tail[2].split(","):
                    if option not in ("rw", "ro") and not option.startswith(("release_agent", "clone_children")):
                        found.setdefault(option, Path(fields[4]))
    return found


def _device_rule(rule: DeviceCgroupRule) -> str:
    kind = rule.type or "a"
    if kind == "a":
        return "a"
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{kind} {major}:{minor} {rule.access or 'rwm'}"


@dataclass(frozen=True)
class Cgroup:
    """One container's cgroup: ``path`` under each hierarchy of ``hierarchies``."""

    path: str
    hierarchies: dict[str, Path]

    @classmethod
    def for_container(cls, cgroups_path: str | None, container_id: str) -> Cgroup:
        return cls("/" + (cgroups_path or container_id).strip("/"), v1_hierarchies())

    def directory(self, hierarchy: str) -> Path:
        return self.hierarchies[hierarchy] / self.path.lstrip("/")

    def _write(self, hierarchy: str, name: str, value: str) -> None:
        if hierarchy not in self.hierarchies:
            return
        path = self.directory(hierarchy) / name
        try:
            path.write_text(value)
        except OSError as error:
            raise KernelCallFailed("write", error.errno or 0, str(path), f"cgroup value {value!r}") from None

    def create_and_enter(self, pid: int) -> None:
        """Make the cgroup in every hierarchy and move ``pid`` into it."""
        for hierarchy in self.hierarchies:
            directory = self.directory(hierarchy)
            directory.mkdir(parents=True, exist_ok=True)
            if hierarchy == "cpuset":
                self._inherit_cpuset(directory)
            self._write(hierarchy, "cgroup.procs", str(pid))

    def _inherit_cpuset(self, directory: Path) -> None:
        """An empty cpuset takes no tasks: copy cpus and mems down from the nearest set parent."""
        chain = []
        current = directory
        while current != self.hierarchies["cpuset"] and not (current / "cpuset.cpus").read_text().strip():
            chain.append(current)
            current = current.parent
        for child in reversed(chain):
            for name in ("cpuset.cpus", "cpuset.mems"):
                (child / name).write_text((child.parent / name).read_text())

    def apply(self, resources: Resources | None) -> None:
        if resources is None:
            return
        if resources.memory is not None:
            memory = resources.memory
            for name, value in (("memory.limit_in_bytes", memory.limit),
                                ("memory.soft_limit_in_bytes", memory.reservation),
                                ("memory.memsw.limit_in_bytes", memory.swap),
                                ("memory.swappiness", memory.swappiness)):
                if value is not None and (name != "memory.memsw.limit_in_bytes"
                                          or (self.directory("memory") / name).exists()):
                    self._write("memory", name, str(value))
        if resources.pids is not None:
            self._write("pids", "pids.max", str(resources.pids.limit) if resources.pids.limit > 0 else "max")
        if resources.cpu is not None:
            cpu = resources.cpu
            settings: tuple[tuple[str, str, int | str | None], ...] = (
                ("cpu", "cpu.shares", cpu.shares), ("cpu", "cpu.cfs_period_us", cpu.period),
                ("cpu", "cpu.cfs_quota_us", cpu.quota), ("cpuset", "cpuset.cpus", cpu.cpus or None),
                ("cpuset", "cpuset.mems", cpu.mems or None),
            )
            for hierarchy, name, setting in settings:
                if setting is not None:
                    self._write(hierarchy, name, str(setting))
        if resources.block_io is not None and resources.block_io.weight is not None:
            if (self.directory("blkio") / "blkio.weight").exists():
                self._write("blkio", "blkio.weight", str(resources.block_io.weight))
        if resources.devices is not None and "devices" in self.hierarchies:
            for rule in resources.devices:
                self._write("devices", "devices.allow" if rule.allow else "devices.deny", _device_rule(rule))
            for line in DEFAULT_DEVICE_RULES:
                self._write("devices", "devices.allow", line)

    def remove(self) -> None:
        """Remove the cgroup from every hierarchy (its processes must be gone); idempotent."""
        for hierarchy in self.hierarchies:
            directory = self.directory(hierarchy)
            if directory == self.hierarchies[hierarchy]:
                continue
            for _ in range(RMDIR_ATTEMPTS):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)  # busy: a process is still exiting
                else:
                    break
