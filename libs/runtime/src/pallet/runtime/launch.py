"""The runtime's side of starting a container process: fork, write the ID maps, wait for ready.

:func:`launch` forks the intermediate process (:mod:`pallet.runtime.container_process`),
answers its request for ID maps, learns the PID of the container process and
waits until that process reports ``ready`` (blocked on the exec fifo) or an
error. On any failure both processes are killed before the error is raised,
so a failed create leaves no process behind (the mounts lived in the
container's mount namespace and go with it).
"""

from __future__ import annotations

import os
import select
import signal
from typing import Any

from pallet.runtime import sync
from pallet.runtime.container_process import LaunchPlan, run_intermediate
from pallet.runtime.errors import ContainerSetupFailed
from pallet.runtime.hooks import hooks_of, run_hooks
from pallet.runtime.idmap import write_id_maps
from pallet.runtime.state import OCI_VERSION

KILL_WAIT_SECONDS = 10


def launch(plan: LaunchPlan) -> int:
    """Start the container process of ``plan`` up to ``ready``; its PID."""
    from_child, to_runtime = os.pipe()
    from_runtime, to_child = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        os.close(from_child)
        os.close(to_child)
        run_intermediate(plan, to_runtime, from_runtime)
    os.close(to_runtime)
    os.close(from_runtime)
    init_pid: int | None = None
    ready = hooks_wanted = False
    try:
        # "pid" (from the intermediate process) may come after "hooks" or "ready" (from the container process)
        while init_pid is None or not ready:
            message = sync.receive(from_child)
            init_pid = _handle(message, plan, intermediate, to_child, init_pid)
            ready = ready or bool(message and message.get("ready"))
            hooks_wanted = hooks_wanted or bool(message and message.get("hooks"))
            if hooks_wanted and init_pid is not None:
                hooks_wanted = False
                state = creating_state(plan, init_pid)
                run_hooks(hooks_of(plan.bundle.config.hooks, "prestart", "create_runtime"), state)
                sync.send(to_child, state=state)
        return init_pid
    except BaseException:
        _kill(init_pid)
        _kill(intermediate)
        raise
    finally:
        os.close(from_child)
        os.close(to_child)
        _reap(intermediate)


def creating_state(plan: LaunchPlan, pid: int) -> dict[str, Any]:
    """The state the hooks of the create stages get."""
    return {
        "ociVersion": OCI_VERSION, "id": plan.container_id, "status": "creating", "pid": pid,
        "bundle": str(plan.bundle.path), "annotations": dict(plan.bundle.config.annotations or {}),
    }


def _handle(message: dict[str, Any] | None, plan: LaunchPlan, intermediate: int, to_child: int,
            init_pid: int | None) -> int | None:
    if message is None:
        raise ContainerSetupFailed("the container process exited while it was being set up")
    if "error" in message:
        raise ContainerSetupFailed(str(message["error"]))
    if message.get("joined"):
        if message.get("userns"):
            write_id_maps(intermediate, plan.uid_mappings, plan.gid_mappings)
        if plan.cgroup is not None:
            plan.cgroup.create_and_enter(intermediate)
            linux = plan.bundle.config.linux
            plan.cgroup.apply(linux.resources if linux else None)
        os.write(to_child, b"ok\n")
    if "pid" in message:
        return int(message["pid"])
    return init_pid


def _kill(pid: int | None) -> None:
    """SIGKILL ``pid`` and wait until it is gone (through a pidfd: it may not be our child)."""
    if pid is None:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], KILL_WAIT_SECONDS)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    _reap(pid)


def _reap(pid: int) -> None:
    """Wait for ``pid`` when it is a child of this process (the container process is one
    only when this process is a subreaper)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
