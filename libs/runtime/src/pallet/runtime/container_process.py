"""The processes that set up a container, forked by :mod:`pallet.runtime.launch`.

``run_intermediate`` joins and creates the namespaces (asking the runtime to
write the ID maps of a new user namespace) and forks the container process,
``run_container_init``, which becomes pid 1 of a new pid namespace. The
container process builds the rootfs, pivots into it, sets up the process,
reports ``ready`` and then blocks reading the exec fifo: ``start`` writes one
byte to it, and the process ``execve``s the configured program. Everything the
process needs after pivot_root is imported before (module imports below):
the Python modules are not inside the rootfs.

Neither function returns: an error is sent to the runtime as
``{"error": "..."}`` and the process exits with status 1.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pallet.oci.spec.runtime import IDMapping
from pallet.runtime import kernel as k
from pallet.runtime import sync
from pallet.runtime.bundle import Bundle
from pallet.runtime.capabilities import apply_capabilities
from pallet.runtime.cgroups import Cgroup
from pallet.runtime.console import set_up_terminal
from pallet.runtime.errors import ContainerSetupFailed, KernelCallFailed
from pallet.runtime.hooks import hooks_of, run_hooks
from pallet.runtime.namespaces import join_paths, unshare_others
from pallet.runtime.process_setup import (
    close_inherited_fds,
    environment,
    find_executable,
    set_names,
    set_oom_score_adj,
    set_rlimits,
    write_sysctls,
)
from pallet.runtime.rootfs import RootfsBuilder, bind_rootfs, make_readonly, make_root_readonly, mask_paths
from pallet.runtime.seccomp import load_seccomp

_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@dataclass(frozen=True)
class LaunchPlan:
    """What the setup processes need: the bundle, the exec fifo, the fds to pass on and,
    for a new user namespace, the maps (the runtime writes them)."""

    container_id: str
    bundle: Bundle
    exec_fifo: Path
    preserve_fds: int
    uid_mappings: tuple[IDMapping, ...]
    gid_mappings: tuple[IDMapping, ...]
    console_fd: int | None = None  # a connection to the console socket, for process.terminal
    cgroup: Cgroup | None = None


def _fail(to_runtime: int, error: BaseException) -> NoReturn:
    try:
        sync.send(to_runtime, error=str(error) or type(error).__name__)
    finally:
        os._exit(1)


def run_intermediate(plan: LaunchPlan, to_runtime: int, from_runtime: int) -> NoReturn:
    try:
        # opened with the runtime's credentials: a new user namespace may not reach the state directory
        fifo = os.open(plan.exec_fifo, os.O_RDWR | os.O_CLOEXEC)
        linux = plan.bundle.config.linux
        namespaces = (linux.namespaces if linux else None) or ()
        join_paths(namespaces)
        new_user_namespace = plan.bundle.new_user_namespace()
        if new_user_namespace:
            k.unshare(k.CLONE_NEWUSER)
        # the runtime writes the ID maps and moves this process into the container's cgroup
        # (before the cgroup namespace is made, so that it is that namespace's root)
        sync.send(to_runtime, joined=True, userns=new_user_namespace)
        if sync.receive_line(from_runtime) != b"ok":
            os._exit(1)
        unshare_others(namespaces)
        pid = os.fork()
        if pid == 0:
            run_container_init(plan, to_runtime, from_runtime, fifo)
        sync.send(to_runtime, pid=pid)
        os._exit(0)
    except BaseException as error:  # noqa: BLE001 - a forked child must never return into the runtime
        _fail(to_runtime, error)


def _become_namespace_root(plan: LaunchPlan) -> None:
    """Take uid and gid 0 of the new user namespace when they are mapped, so files the
    setup creates belong to the container's root."""
    if any(0 in m.container_range for m in plan.gid_mappings):
        os.setresgid(0, 0, 0)
    if any(0 in m.container_range for m in plan.uid_mappings):
        os.setresuid(0, 0, 0)


def run_container_init(plan: LaunchPlan, to_runtime: int, from_runtime: int, fifo: int) -> NoReturn:
    try:
        if not plan.bundle.new_user_namespace():
            _not_dumpable()  # in a user namespace, /proc/self would become the host root's: see the end of _set_up
        host_null = k.open_tree_clone("/dev/null")
        close_inherited_fds(plan.preserve_fds)
        executable, state = _set_up(plan, host_null, to_runtime, from_runtime)
        sync.send(to_runtime, ready=True)
        os.close(to_runtime)
    except BaseException as error:  # noqa: BLE001
        _fail(to_runtime, error)
    try:
        os.read(fifo, 1)
        os.close(fifo)
        run_hooks(hooks_of(plan.bundle.config.hooks, "start_container"), dict(state, status="created"))
        linux = plan.bundle.config.linux
        if linux is not None and linux.seccomp is not None and plan.bundle.process.no_new_privileges:
            load_seccomp(linux.seccomp)  # as late as can be: the filter applies to the program only
    except BaseException as error:  # noqa: BLE001 - after ready, errors go to the container's stderr
        _fail_after_ready(error, 1)
    try:
        _exec(plan, executable)
    except BaseException as error:  # noqa: BLE001
        _fail_after_ready(error, 127)


def _fail_after_ready(error: BaseException, status: int) -> NoReturn:
    try:
        os.write(2, f"pallet-runtime: {error}\n".encode())
    finally:
        os._exit(status)


def _hook_exchange(plan: LaunchPlan, to_runtime: int, from_runtime: int) -> dict[str, Any]:
    """Before pivot_root: let the runtime run the prestart and createRuntime hooks, receive
    the state it gave them, and run the createContainer hooks here. The state (with the
    container's host PID) is returned for the startContainer hooks."""
    hooks = plan.bundle.config.hooks
    if not hooks_of(hooks, "prestart", "create_runtime", "create_container", "start_container"):
        os.close(from_runtime)
        return {}
    sync.send(to_runtime, hooks=True)
    reply = sync.receive(from_runtime)
    os.close(from_runtime)
    if reply is None or "state" not in reply:
        raise ContainerSetupFailed("the runtime did not answer the request for hooks")
    state: dict[str, Any] = reply["state"]
    run_hooks(hooks_of(hooks, "create_container"), state)
    return state


def _set_up(plan: LaunchPlan, host_null: int, to_runtime: int, from_runtime: int) -> tuple[str, dict[str, Any]]:
    bundle = plan.bundle
    config = bundle.config
    linux = config.linux
    process = bundle.process
    namespace_types = bundle.namespace_types()
    root_fd = bind_rootfs(bundle)
    if bundle.new_user_namespace():
        _become_namespace_root(plan)
    builder = RootfsBuilder(bundle, "user" in namespace_types, root_fd)
    builder.prepare()
    state = _hook_exchange(plan, to_runtime, from_runtime)
    builder.pivot()
    if process.terminal and plan.console_fd is not None:
        set_up_terminal(plan.console_fd, process.console_size, process.user.uid)
    set_names(config.hostname, config.domainname, "uts" in namespace_types)
    if linux is not None:
        write_sysctls(linux.sysctl or {})
        mask_paths(linux.masked_paths or (), host_null)
        make_readonly(linux.readonly_paths or ())
    if config.root is not None and config.root.readonly:
        make_root_readonly()
    set_oom_score_adj(process.oom_score_adj)
    set_rlimits(process.rlimits or ())
    assert process.args
    executable = find_executable(process.args[0], process.env or ())
    seccomp = linux.seccomp if linux else None
    if seccomp is not None and not process.no_new_privileges:
        load_seccomp(seccomp)  # without no_new_privs, loading needs CAP_SYS_ADMIN: before the drop
    apply_capabilities(process.capabilities, process.user)
    if process.no_new_privileges:
        k.prctl(k.PR_SET_NO_NEW_PRIVS, 1, what="prctl PR_SET_NO_NEW_PRIVS")
    os.umask(0o022 if process.user.umask is None else process.user.umask)
    try:
        os.chdir(process.cwd)
    except OSError as error:
        raise KernelCallFailed("chdir", error.errno or 0, process.cwd) from None
    _not_dumpable()
    return executable, state


def _not_dumpable() -> None:
    """Until execve the process is the runtime (the host's Python): the processes an exec adds to a created
    container, or a container sharing its pid namespace, must not reach its /proc/<pid>/exe (the host's
    interpreter, CVE-2019-5736), fd (the exec fifo), root, mem or environ. execve makes the program dumpable."""
    k.prctl(k.PR_SET_DUMPABLE, 0, what="prctl PR_SET_DUMPABLE")


def _exec(plan: LaunchPlan, executable: str) -> NoReturn:
    process = plan.bundle.process
    assert process.args
    for fd in range(3, 3 + plan.preserve_fds):
        os.set_inheritable(fd, True)
    for number in _RESET_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    sys.stdout.flush()
    env = environment(process.env or (), process.user.uid)
    os.execve(executable, list(process.args), env)
