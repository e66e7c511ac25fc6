"""A new process in a running container (``exec``), as runc makes it.

The runtime forks a joining process that enters the container's namespaces
through ``/proc/<init>/ns/*`` (the user namespace first; a namespace the
container shares with the runtime is left alone), and forks the exec process
so that it is in the container's pid namespace. The exec process takes the
config's rlimits, capabilities, user and no_new_privs (or what the options
override), changes to its cwd and execs. A failure before ``execve`` comes
back over a close-on-exec pipe; end of file without a message means the
program runs.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import NoReturn

from pallet.oci.spec.runtime import Process, Seccomp
from pallet.runtime import kernel as k
from pallet.runtime import sync
from pallet.runtime.capabilities import apply_capabilities
from pallet.runtime.errors import ContainerSetupFailed, KernelCallFailed
from pallet.runtime.namespaces import NAMESPACE_FLAGS
from pallet.runtime.process_setup import close_inherited_fds, environment, find_executable, set_rlimits
from pallet.runtime.seccomp import load_seccomp

# /proc/<pid>/ns names, in the order they are joined (user first, mount last but one: pid applies to children)
_NS_FILES = (("user", "user"), ("ipc", "ipc"), ("uts", "uts"), ("network", "net"), ("cgroup", "cgroup"),
             ("pid", "pid"), ("mount", "mnt"))
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@dataclass(frozen=True)
class ExecPlan:
    init_pid: int
    process: Process
    preserve_fds: int = 0
    seccomp: Seccomp | None = None


def start_exec(plan: ExecPlan) -> int:
    """Start the process of ``plan`` in the container; its PID (in the runtime's pid namespace)
    once it has exec'd. ContainerSetupFailed carries the reason when it could not."""
    from_child, to_runtime = os.pipe()
    joining = os.fork()
    if joining == 0:
        os.close(from_child)
        _join_and_fork(plan, to_runtime)
    os.close(to_runtime)
    try:
        message = sync.receive(from_child)
        if message is None or "pid" not in message:
            raise ContainerSetupFailed(str((message or {}).get("error", "the exec process did not start")))
        pid = int(message["pid"])
        failure = sync.receive(from_child)  # end of file: the exec succeeded
        if failure is not None:
            raise ContainerSetupFailed(str(failure.get("error", failure)))
        return pid
    finally:
        os.close(from_child)
        try:
            os.waitpid(joining, 0)
        except ChildProcessError:
            pass


def _join_and_fork(plan: ExecPlan, to_runtime: int) -> NoReturn:
    try:
        close_inherited_fds(plan.preserve_fds)  # while /proc is still the runtime's
        # Until execve the process is the runtime (the host's Python): not dumpable, so the container's processes
        # cannot open its /proc/<pid>/exe (the host's interpreter, CVE-2019-5736), fd, mem, root or environ.
        # execve makes the program dumpable again.
        k.prctl(k.PR_SET_DUMPABLE, 0, what="prctl PR_SET_DUMPABLE")
        _join_namespaces(plan.init_pid)
        pid = os.fork()
        if pid == 0:
            _exec_in_container(plan, to_runtime)
        sync.send(to_runtime, pid=pid)
        os._exit(0)
    except BaseException as error:  # noqa: BLE001 - a forked child never returns into the runtime
        try:
            sync.send(to_runtime, error=str(error))
        finally:
            os._exit(1)


def _join_namespaces(init_pid: int) -> None:
    fds = []
    for kind, name in _NS_FILES:
        path = f"/proc/{init_pid}/ns/{name}"
        try:
            if os.readlink(path) == os.readlink(f"/proc/self/ns/{name}"):
                continue
            fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
        except OSError as error:
            raise KernelCallFailed("open", error.errno or 0, path) from None
    for kind, fd, path in fds:
        try:
            k.setns(fd, NAMESPACE_FLAGS[kind], path)
        finally:
            os.close(fd)


def _exec_in_container(plan: ExecPlan, to_runtime: int) -> NoReturn:
    try:
        process = plan.process
        assert process.args
        env = environment(process.env or (), process.user.uid)
        executable = find_executable(process.args[0], process.env or ())
        set_rlimits(process.rlimits or ())
        if plan.seccomp is not None and not process.no_new_privileges:
            load_seccomp(plan.seccomp)  # needs CAP_SYS_ADMIN without no_new_privs
        apply_capabilities(process.capabilities, process.user)
        if process.no_new_privileges:
            k.prctl(k.PR_SET_NO_NEW_PRIVS, 1, what="prctl PR_SET_NO_NEW_PRIVS")
        if process.user.umask is not None:
            os.umask(process.user.umask)
        try:
            os.chdir(process.cwd)
        except OSError as error:
            raise KernelCallFailed("chdir", error.errno or 0, process.cwd) from None
        for fd in range(3, 3 + plan.preserve_fds):
            os.set_inheritable(fd, True)
        for number in _RESET_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if plan.seccomp is not None and process.no_new_privileges:
            load_seccomp(plan.seccomp)
        os.execve(executable, list(process.args), env)
    except BaseException as error:  # noqa: BLE001
        try:
            sync.send(to_runtime, error=str(error))
        finally:
            os._exit(127)
