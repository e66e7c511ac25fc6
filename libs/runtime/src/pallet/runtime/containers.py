"""The lifecycle of containers, as the runtime spec defines it: :class:`Runtime`.

``create`` loads the bundle, reserves the state directory, launches the
container process up to ``ready`` and records it; ``start`` releases it
through the exec fifo; ``kill`` signals it; ``delete`` removes what is left;
``state`` and ``containers`` report. ``run`` is create, start and wait, as
``runc run`` does. A failed create removes its state directory and kills what
it started.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import select
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.oci.spec.runtime import Capabilities, Hook, Hooks, IDMapping, Process, User
from pallet.runtime import kernel as k
from pallet.runtime.cgroups import Cgroup, v1_hierarchies
from pallet.runtime.bundle import Bundle, check_user_mapped, load_bundle
from pallet.runtime.console import connect_console_socket
from pallet.runtime.container_process import LaunchPlan
from pallet.runtime.errors import BundleError, WrongStatus
from pallet.runtime.exec_process import ExecPlan, start_exec
from pallet.runtime.hooks import hooks_of, run_hooks
from pallet.runtime.idmap import default_mapping, subordinate_ranges
from pallet.runtime.launch import launch
from pallet.runtime.processes import container_processes
from pallet.runtime.state import (
    EXEC_FIFO_NAME,
    ContainerRecord,
    StateRoot,
    check_container_id,
    default_state_root,
    owner_name,
    process_start_time,
)

logger = logging.getLogger(__name__)

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
STOP_WAIT_SECONDS = 10


@dataclass(frozen=True)
class ExecOptions:
    """The options of ``exec``: ``process`` (a whole process object, as ``--process``) or ``args``
    with the overrides of the config's process (env replaced, cwd, user, capabilities added)."""

    args: tuple[str, ...] = ()
    process: Process | None = None
    env: tuple[str, ...] = ()
    cwd: str | None = None
    user: User | None = None
    capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = False
    pid_file: Path | None = None
    preserve_fds: int = 0


def _exec_process(config_process: Process, options: ExecOptions) -> Process:
    if options.process is not None:
        return options.process
    if not options.args:
        raise BundleError("exec: no command given")
    # as crun: --env replaces the config's environment (runc would append)
    update: dict[str, Any] = {"args": options.args, "terminal": False,
                              "env": options.env or tuple(config_process.env or ())}
    if options.cwd:
        update["cwd"] = options.cwd
    if options.user is not None:
        update["user"] = options.user
    # as crun: no_new_privs only when asked for (--process carries its own)
    update["no_new_privileges"] = options.no_new_privileges
    if options.capabilities:
        sets = config_process.capabilities or Capabilities()
        update["capabilities"] = sets.model_copy(update={
            name: tuple(getattr(sets, name) or ()) + options.capabilities
            for name in ("bounding", "effective", "permitted")})
    return config_process.model_copy(update=update)


@dataclass(frozen=True)
class CreateOptions:
    """The options of ``create`` and ``run`` besides the container ID."""

    bundle: Path
    pid_file: Path | None = None
    console_socket: Path | None = None
    preserve_fds: int = 0
    annotations: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _write_pid_file(path: Path, pid: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(str(pid))
    os.replace(temporary, path)


def _cgroup(bundle: Bundle, container_id: str) -> Cgroup | None:
    """The container's cgroup: as root, under the v1 hierarchies (none without root or v1)."""
    if os.geteuid() != 0:
        return None
    cgroup = Cgroup.for_container(bundle.config.linux.cgroups_path if bundle.config.linux else None, container_id)
    return cgroup if cgroup.hierarchies else None


def _id_mappings(bundle: Bundle) -> tuple[tuple[IDMapping, ...], tuple[IDMapping, ...]]:
    """The uid and gid maps of a new user namespace: the config's, else the default (see
    :func:`~pallet.runtime.idmap.default_mapping`); the process user must be mapped."""
    linux = bundle.config.linux
    euid, egid = os.geteuid(), os.getegid()
    user = owner_name(euid)
    rootless = euid != 0
    uid_mappings = (linux.uid_mappings if linux else None) or default_mapping(
        euid, subordinate_ranges("/etc/subuid", user, euid) if rootless else None)
    gid_mappings = (linux.gid_mappings if linux else None) or default_mapping(
        egid, subordinate_ranges("/etc/subgid", user, euid) if rootless else None)
    if bundle.new_user_namespace():
        check_user_mapped(bundle, uid_mappings, gid_mappings)
    return uid_mappings, gid_mappings


@dataclass(frozen=True)
class Runtime:
    """Containers under one state root (``--root``)."""

    state_root: StateRoot = field(default_factory=lambda: StateRoot(default_state_root()))

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None) -> Runtime:
        return cls(StateRoot(Path(root) if root else default_state_root()))

    def create(self, container_id: str, options: CreateOptions) -> ContainerRecord:
        check_container_id(container_id)
        bundle = load_bundle(options.bundle)
        uid_mappings, gid_mappings = _id_mappings(bundle)  # refuses unmapped users before anything is made
        if bundle.process.terminal and options.console_socket is None:
            raise BundleError(f"{bundle.path}/config.json: process.terminal: needs --console-socket")
        directory = self.state_root.reserve(container_id)
        console = None
        pid: int | None = None
        cgroup = _cgroup(bundle, container_id)
        try:
            if bundle.process.terminal:
                console = connect_console_socket(str(options.console_socket))
            exec_fifo = directory / EXEC_FIFO_NAME
            os.mkfifo(exec_fifo, 0o600)
            pid = launch(LaunchPlan(container_id, bundle, exec_fifo, options.preserve_fds, uid_mappings, gid_mappings,
                                    console.fileno() if console else None, cgroup))
            start_time = process_start_time(pid)
            annotations = dict(bundle.config.annotations or {}) | options.annotations
            record = ContainerRecord(
                container_id, pid, start_time or 0, str(bundle.path), str(bundle.rootfs), _now(),
                owner_name(os.geteuid()), annotations,
                bundle.config.hooks.to_json_dict() if bundle.config.hooks else {}, cgroup.path if cgroup else "",
                directory,
            )
            self.state_root.write(record)
            if options.pid_file is not None:
                _write_pid_file(options.pid_file, pid)
            return record
        except BaseException:
            if pid is not None:
                _kill_and_wait(pid)
            if cgroup is not None:
                cgroup.remove()
            self.state_root.remove(container_id)
            raise
        finally:
            if console is not None:
                console.close()

    def start(self, container_id: str) -> None:
        record = self.state_root.load(container_id)
        status = record.status()
        if status != "created":
            raise WrongStatus(container_id, "start", status)
        try:
            fd = os.open(record.exec_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            if error.errno == errno.ENXIO:  # nobody reads: the container process is gone
                raise WrongStatus(container_id, "start", "stopped") from None
            raise
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        record.exec_fifo.unlink()
        self._warn(run_hooks(_hooks(record, "poststart"), record.spec_state("running"), warn_only=True))

    def state(self, container_id: str) -> dict[str, Any]:
        return self.state_root.load(container_id).state()

    def containers(self) -> list[ContainerRecord]:
        return [self.state_root.load(container_id) for container_id in self.state_root.ids()]

    def kill(self, container_id: str, signal_number: int = signal.SIGTERM, all_processes: bool = False) -> None:
        """Signal the init process (``all_processes``: every process of the container)."""
        record = self.state_root.load(container_id)
        status = record.status()
        if status not in ("created", "running"):
            raise WrongStatus(container_id, "kill", status)
        for pid in container_processes(record.pid) if all_processes else [record.pid]:
            try:
                os.kill(pid, signal_number)
            except ProcessLookupError:
                pass

    def exec(self, container_id: str, options: ExecOptions, detach: bool = False) -> int:
        """Run a new process in the running container; its exit status (0 when ``detach``)."""
        record = self.state_root.load(container_id)
        status = record.status()
        if status not in ("created", "running"):
            raise WrongStatus(container_id, "exec in", status)
        bundle = load_bundle(record.bundle)
        process = _exec_process(bundle.process, options)
        if not detach:
            k.prctl(k.PR_SET_CHILD_SUBREAPER, 1, what="prctl PR_SET_CHILD_SUBREAPER")
        seccomp = bundle.config.linux.seccomp if bundle.config.linux else None
        pid = start_exec(ExecPlan(record.pid, process, options.preserve_fds, seccomp))
        if options.pid_file is not None:
            _write_pid_file(options.pid_file, pid)
        return 0 if detach else _wait_forwarding_signals(pid)

    def pids(self, container_id: str) -> list[int]:
        """The PIDs of the container's processes (host PIDs), empty when it is stopped."""
        record = self.state_root.load(container_id)
        return container_processes(record.pid) if record.status() != "stopped" else []

    def delete(self, container_id: str, force: bool = False) -> None:
        """Remove a stopped (or created) container; ``force`` kills a running one first."""
        record = self.state_root.load(container_id)
        status = record.status()
        if status == "running" and not force:
            raise WrongStatus(container_id, "delete", status)
        if status != "stopped":
            _kill_and_wait(record.pid)
        if record.cgroup_path:
            Cgroup(record.cgroup_path, v1_hierarchies()).remove()
        self.state_root.remove(container_id)
        self._warn(run_hooks(_hooks(record, "poststop"), record.spec_state("stopped"), warn_only=True))

    @staticmethod
    def _warn(messages: list[str]) -> None:
        for message in messages:
            logger.warning("%s", message)

    def run(self, container_id: str, options: CreateOptions, detach: bool = False) -> int:
        """create, start and (unless ``detach``) wait: the exit status as a shell reports it."""
        if not detach:
            k.prctl(k.PR_SET_CHILD_SUBREAPER, 1, what="prctl PR_SET_CHILD_SUBREAPER")
        record = self.create(container_id, options)
        try:
            self.start(container_id)
        except BaseException:
            if process_start_time(record.pid) == record.pid_start_time:
                _kill_and_wait(record.pid)
            self.state_root.remove(container_id)
            raise
        if detach:
            return 0
        try:
            return _wait_forwarding_signals(record.pid)
        finally:
            self.delete(container_id, force=True)


def _hooks(record: ContainerRecord, stage: str) -> tuple[tuple[str, Hook], ...]:
    return hooks_of(Hooks.model_validate(record.hooks), stage) if record.hooks else ()


def _kill_and_wait(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], STOP_WAIT_SECONDS)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_forwarding_signals(pid: int) -> int:
    previous = {number: signal.signal(number, lambda received, _frame: os.kill(pid, received))
                for number in FORWARDED_SIGNALS}
    try:
        while True:
            waited, status = os.waitpid(-1, 0)  # reap the orphans this subreaper inherits too
            if waited == pid:
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
