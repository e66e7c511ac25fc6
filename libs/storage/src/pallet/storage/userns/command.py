"""``podman unshare`` and ``buildah unshare`` as functions: run a command inside the rootless user namespace.

- :func:`run_unshared`: the building block: ``argv`` in the namespace with
  the three ``_CONTAINERS_*`` variables, its exit status.
- :func:`unshare`: what ``pallet-build unshare [COMMAND]`` and
  ``pallet-run unshare [COMMAND]`` call: the command (or ``$SHELL``) with the
  environment buildah 1.28 or podman 4.3 gives it.

What the peers give the command (measured as the rootless test user, Debian
12: buildah 1.28.2, podman 4.3.1): the caller's environment plus

================================  =========================  =============================
variable                          ``buildah unshare``        ``podman unshare``
================================  =========================  =============================
``_CONTAINERS_USERNS_CONFIGURED``  ``done``                   ``done``
``_CONTAINERS_ROOTLESS_UID/GID``   the user's ids outside     the user's ids outside
``BUILDAH_ISOLATION``              ``rootless`` if unset      (not set)
``TMPDIR``                         ``/var/tmp`` if unset      ``/var/tmp`` if unset
``CONTAINERS_GRAPHROOT/RUNROOT``   (not set)                  the store's graph and run root
``XDG_CONFIG_HOME``                (not set)                  if unset: ``$HOME/.config`` if
                                                             a directory, else empty
================================  =========================  =============================

and both run ``$SHELL`` when no command is named (an error without it).
Exit status: this module returns the command's status, or 128 + N when it
was killed by signal N, unless the caller names the status for a killed
command (``killed_status``): buildah exits 1 then, podman 255. buildah exits 1
for a command it cannot execute too, podman 127 (not found) or 126; the tool
maps :class:`ExecFailed` to that.
"""

from __future__ import annotations

import errno as errno_codes
import os
import subprocess
from collections.abc import Mapping, Sequence

from typing import Literal

from pallet.storage.config import StoreOptions
from pallet.storage.userns import _proc
from pallet.storage.userns.errors import ChildFailed, ExecFailed, NoUnshareCommand, UnshareNeedsRootless
from pallet.storage.userns.unshare import UsernsSetup, rootless_setup, spawn

USERNS_CONFIGURED = "_CONTAINERS_USERNS_CONFIGURED"
ROOTLESS_UID = "_CONTAINERS_ROOTLESS_UID"
ROOTLESS_GID = "_CONTAINERS_ROOTLESS_GID"
BUILDAH_ISOLATION = "BUILDAH_ISOLATION"
#: containers.conf's ``image_copy_tmp_dir`` default, which both peers put in TMPDIR when it is unset
DEFAULT_TMPDIR = "/var/tmp"


def unshared_environment(env: Mapping[str, str], uid: int, gid: int) -> dict[str, str]:
    """``env`` plus the variables podman sets in its rootless namespace (for a user ``uid``/``gid``)."""
    return {**env, USERNS_CONFIGURED: "done", ROOTLESS_UID: str(uid), ROOTLESS_GID: str(gid)}


def _exec_or_report(argv: Sequence[str], env: Mapping[str, str], to_parent: int) -> int:  # pragma: no cover
    """In the child: execvpe ``argv`` (PATH from ``env``); on failure send an ``X`` frame, return 127/126."""
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except OSError as exc:
        err = exc.errno or errno_codes.ENOENT
        _proc.write_frame(to_parent, _proc.TAG_EXEC_ERROR, f"{err}\0{exc.strerror or exc}".encode(errors="replace"))
        return 127 if err == errno_codes.ENOENT else 126
    return 127  # not reached: execvpe does not return


def _wait(pid: int) -> int:
    """Wait for ``pid``; a Ctrl-C here (which reached the child too) does not stop the waiting."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except KeyboardInterrupt:
            continue


def _check_exec(pid: int, from_child: int, program: str, timeout: float) -> None:
    """EOF on the pipe means the exec succeeded; an ``X`` or ``E`` frame raises (the child is reaped)."""
    try:
        frame = _proc.read_frame(from_child, _proc.deadline_after(timeout))
    except BaseException:
        _proc.kill_and_reap(pid)
        raise
    finally:
        os.close(from_child)
    if frame is None:
        return
    _wait(pid)
    tag, payload = frame
    if tag == _proc.TAG_EXEC_ERROR:
        err, why = payload.decode(errors="replace").split("\0", 1)
        raise ExecFailed(program, int(err), why)
    raise ChildFailed(f"the child could not set up the user namespace: {payload.decode(errors='replace')!r}")


def _run_directly(argv: Sequence[str], env: Mapping[str, str], killed_status: int | None) -> int:
    """Root without a setup: run ``argv`` as is, in this process's namespaces; its exit status."""
    try:
        returncode = subprocess.run(list(argv), env=dict(env), check=False).returncode
    except OSError as exc:
        raise ExecFailed(argv[0], exc.errno or errno_codes.ENOENT, exc.strerror or str(exc)) from exc
    if returncode < 0:
        return 128 - returncode if killed_status is None else killed_status
    return returncode


def run_unshared(argv: Sequence[str], env: Mapping[str, str] | None = None, *, setup: UsernsSetup | None = None,
                 killed_status: int | None = None) -> int:
    """Run ``argv`` in a new user + mount namespace with podman's mapping; its exit status.

    ``env`` (default: this process's environment) gets ``_CONTAINERS_USERNS_CONFIGURED=done``,
    ``_CONTAINERS_ROOTLESS_UID`` and ``_CONTAINERS_ROOTLESS_GID`` (the user's
    ids outside), as podman sets them; ``argv[0]`` is searched on env's PATH.
    The command inherits stdin, stdout and stderr. The status is the exit code,
    or 128 + N when the command was killed by signal N (``killed_status``
    instead, when given). Raises ExecFailed when
    the command cannot be executed, and the setup errors of :func:`rootless_setup`
    and :func:`spawn` before that.

    As root without an explicit ``setup`` the command runs directly, with
    ``env`` unchanged (podman itself refuses ``unshare`` as root; a tool that
    wants the same refuses before calling this).
    """
    if not argv:
        raise ValueError("run_unshared needs a command")
    base = dict(os.environ if env is None else env)
    if setup is None:
        if os.geteuid() == 0:
            return _run_directly(argv, base, killed_status)
        setup = rootless_setup()
    full_env = unshared_environment(base, setup.mapping.uid, setup.mapping.gid)
    pid, from_child = spawn(setup, lambda to_parent: _exec_or_report(argv, full_env, to_parent))
    _check_exec(pid, from_child, argv[0], setup.handshake_timeout)
    status = _wait(pid)
    if killed_status is not None and os.WIFSIGNALED(status):
        return killed_status
    return _proc.exit_code(status)


def tool_environment(env: Mapping[str, str], style: Literal["buildah", "podman"], store: StoreOptions | None = None,
                     tmpdir: str = DEFAULT_TMPDIR) -> dict[str, str]:
    """``env`` plus what ``buildah unshare`` or ``podman unshare`` add before entering (see the module table).

    ``store`` (podman style) gives CONTAINERS_GRAPHROOT and CONTAINERS_RUNROOT.
    The ``_CONTAINERS_*`` variables are added by :func:`run_unshared` itself.
    """
    out = dict(env)
    out.setdefault("TMPDIR", tmpdir)
    if style == "buildah":
        out.setdefault(BUILDAH_ISOLATION, "rootless")
    else:
        if store is not None:
            out["CONTAINERS_GRAPHROOT"] = store.graph_root
            out["CONTAINERS_RUNROOT"] = store.run_root
        if "XDG_CONFIG_HOME" not in out:  # podman: $HOME/.config when that is a directory, else set empty
            config = os.path.join(os.path.realpath(out["HOME"]), ".config") if out.get("HOME") else ""
            out["XDG_CONFIG_HOME"] = config if config and os.path.isdir(config) else ""
    return out


def unshare(command: Sequence[str], env: Mapping[str, str] | None = None, *,
            style: Literal["buildah", "podman"] = "buildah", store: StoreOptions | None = None,
            setup: UsernsSetup | None = None, killed_status: int | None = None) -> int:
    """``buildah unshare [COMMAND]`` (or podman's) as a function: its exit status.

    ``command`` empty runs ``$SHELL`` from ``env`` (default: this process's
    environment); NoUnshareCommand when that is unset too. The environment is
    :func:`tool_environment` for ``style``, then :func:`run_unshared` adds the
    ``_CONTAINERS_*`` variables; the namespace has the user's mapping from
    /etc/subuid and /etc/subgid (or ``setup``'s). As root without a ``setup``
    it raises UnshareNeedsRootless, as podman does. Errors of the setup
    (NoSubIDRanges, HelperMissing, ...) and ExecFailed as :func:`run_unshared`;
    ``killed_status`` as there (buildah's 1, podman's 255).
    """
    base = dict(os.environ if env is None else env)
    argv = list(command)
    if not argv:
        shell = base.get("SHELL", "")
        if not shell:
            raise NoUnshareCommand()
        argv = [shell]
    if setup is None and os.geteuid() == 0:
        raise UnshareNeedsRootless()
    return run_unshared(argv, tool_environment(base, style, store), setup=setup, killed_status=killed_status)
