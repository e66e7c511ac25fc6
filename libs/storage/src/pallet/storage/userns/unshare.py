"""Run a callable or a command inside a rootless user namespace with podman's mapping.

What runs where (the unprivileged case, euid != 0):

1. The calling process resolves everything that can fail cheaply *before*
   forking: the user's ranges (:func:`rootless_setup`: NoSubIDRanges,
   SubIDRangesTooSmall, SubIDFileInvalid) and the helpers (HelperMissing).
2. It flushes stdio and forks. The child asks to be SIGKILLed if the parent
   dies, calls libc ``unshare(CLONE_NEWUSER | CLONE_NEWNS)`` and sends
   ``U`` on the child-to-parent pipe (or an ``E`` frame and exits 125).
3. The parent runs ``newuidmap PID ...`` and ``newgidmap PID ...`` (it writes
   no map itself), then sends ``G`` on the parent-to-child pipe and closes it.
   If the child does not answer within ``handshake_timeout``, or a helper
   fails or times out, the parent SIGKILLs and reaps the child and raises
   (UsernsTimeout, IDMapFailed, UnshareFailed). The child waits for ``G`` at
   most ``handshake_timeout`` as well and exits 125 on EOF or timeout, so it is
   never left waiting forever.
4. The child, now uid 0 in the namespace, sets its real/effective/saved uid
   and gid to 0, drops supplementary groups where the kernel allows it, makes
   every mount private (``mount --make-rprivate /``) and then runs the work:
   a callable (result pickled back in an ``R`` frame) or ``execvpe`` of a
   command (the pipe is close-on-exec: EOF means the exec succeeded, an
   ``X`` frame that it failed).

Two pipes are used; both are created close-on-exec, and the child closes the
parent's ends and vice versa. No other fd is touched: the child inherits the
caller's open fds (stdin/stdout/stderr included), as a fork does.

Forking copies the whole calling process: call this from a single-threaded
process (as the tools are), since a lock held by another thread at the fork
stays held in the child. The child is SIGKILLed by the kernel when the
parent *thread* that forked it exits (PR_SET_PDEATHSIG), also after a
command was exec'd.

A process that already is uid 0 inside such a namespace (as a tool re-run by
``run_unshared`` is) has euid 0 and so runs the work directly, as podman does
when ``_CONTAINERS_USERNS_CONFIGURED`` is set.

As root (euid 0) podman uses no user namespace by default, and so
:func:`run_in_userns` and :func:`run_unshared` run the work directly in the
calling process's namespaces when no setup is given. When root passes a
setup explicitly, the namespace is made as above and the parent writes
/proc/PID/uid_map and gid_map itself instead of running the helpers.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pallet.storage.userns import _proc
from pallet.storage.userns.errors import ChildFailed, HelperMissing, IDMapFailed, UnshareFailed, UsernsTimeout
from pallet.storage.userns.idmap import DEFAULT_MIN_SUBIDS, IDMap, RootlessMapping, newidmap_args, proc_map_text, rootless_mapping
from pallet.storage.userns.subids import SUBGID_PATH, SUBUID_PATH

T = TypeVar("T")
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
_SETUP_FAILED = 125  # the child's exit code when it could not set itself up (as podman's 125)


@dataclass(frozen=True)
class Helpers:
    """Absolute paths of the setuid helpers from shadow (Debian package ``uidmap``)."""

    newuidmap: str
    newgidmap: str


def find_helpers(search_path: str | None = None) -> Helpers:
    """newuidmap and newgidmap on ``search_path`` (default: $PATH, then /usr/bin); HelperMissing if absent."""
    where = search_path if search_path is not None else os.environ.get("PATH", "") + os.pathsep + "/usr/bin"
    found = {name: shutil.which(name, path=where) for name in ("newuidmap", "newgidmap")}
    for name, path in found.items():
        if path is None:
            raise HelperMissing(name, f"searched {where!r}")
    return Helpers(newuidmap=str(found["newuidmap"]), newgidmap=str(found["newgidmap"]))


@dataclass(frozen=True)
class UsernsSetup:
    """Everything needed to make the namespace: the mapping, the helpers (None: write the maps directly)."""

    mapping: RootlessMapping
    helpers: Helpers | None
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT


def rootless_setup(
    *,
    user: str | None = None,
    subuid_path: Path = SUBUID_PATH,
    subgid_path: Path = SUBGID_PATH,
    helper_search_path: str | None = None,
    min_subids: int = DEFAULT_MIN_SUBIDS,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> UsernsSetup:
    """The setup podman would use for the calling user (real uid/gid; ``user`` overrides the name).

    Raises before anything is forked: NoSubIDRanges, SubIDRangesTooSmall,
    SubIDFileInvalid, and HelperMissing (only when unprivileged: root writes
    the maps itself).
    """
    mapping = rootless_mapping(user=user, subuid_path=subuid_path, subgid_path=subgid_path, min_subids=min_subids)
    helpers = None if os.geteuid() == 0 else find_helpers(helper_search_path)
    return UsernsSetup(mapping, helpers, handshake_timeout)


# ---------------------------------------------------------------- the parent


def _run_helper(helper: str, pid: int, idmap: IDMap, timeout: float) -> None:
    """Run ``helper PID ...`` for ``idmap``; IDMapFailed or UsernsTimeout when it does not succeed."""
    argv = [helper, *newidmap_args(pid, idmap)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UsernsTimeout(f"{' '.join(argv)} did not finish within {timeout} s") from exc
    except OSError as exc:
        raise HelperMissing(helper, str(exc)) from exc
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise IDMapFailed(" ".join(argv), why)


def _write_map_directly(pid: int, kind: str, idmap: IDMap) -> None:
    """Write /proc/PID/{kind}_map (root only); IDMapFailed on error."""
    path = f"/proc/{pid}/{kind}_map"
    try:
        with open(path, "w", encoding="ascii") as file:
            file.write(proc_map_text(idmap))
    except OSError as exc:
        raise IDMapFailed(f"writing {path}", str(exc)) from exc


def _write_maps(pid: int, setup: UsernsSetup) -> None:
    """Give the child ``pid`` its uid and gid maps, by the helpers or (root) directly."""
    mapping = setup.mapping
    if setup.helpers is None:
        _write_map_directly(pid, "uid", mapping.uid_map)
        _write_map_directly(pid, "gid", mapping.gid_map)
        return
    _run_helper(setup.helpers.newuidmap, pid, mapping.uid_map, setup.handshake_timeout)
    _run_helper(setup.helpers.newgidmap, pid, mapping.gid_map, setup.handshake_timeout)


def _raise_setup_error(payload: bytes) -> NoReturn:
    """Turn an ``E`` frame from the child into the matching exception."""
    stage, errno, message = payload.decode(errors="replace").split("\0", 2)
    if stage == "unshare":
        raise UnshareFailed(int(errno), message)
    raise ChildFailed(f"the child could not set up the user namespace ({stage}): {message}")


def _handshake(pid: int, from_child: int, to_child: int, setup: UsernsSetup) -> None:
    """Wait for ``U``, write the maps, send ``G``; errors propagate (the caller kills the child)."""
    frame = _proc.read_frame(from_child, _proc.deadline_after(setup.handshake_timeout))
    if frame is None:
        raise ChildFailed("the child exited before creating the user namespace")
    if frame[0] == _proc.TAG_SETUP_ERROR:
        _raise_setup_error(frame[1])
    _write_maps(pid, setup)
    _proc.write_frame(to_child, _proc.TAG_GO)


def spawn(setup: UsernsSetup, work: Callable[[int], int]) -> tuple[int, int]:
    """Fork a child that enters the namespace and runs ``work(fd_to_parent)``; return (pid, fd_from_child).

    The child exits with the value ``work`` returns (125 if it raised). On any
    error of the handshake the child is SIGKILLed and reaped before raising.
    """
    libc = _proc.load_libc()
    from_child, child_out = os.pipe()
    child_in, to_child = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, measured by the rootless tests
        os.close(from_child)
        os.close(to_child)
        _child_main(libc, child_out, child_in, setup.handshake_timeout, work)
    os.close(child_out)
    os.close(child_in)
    try:
        _handshake(pid, from_child, to_child, setup)
    except BaseException:
        _proc.kill_and_reap(pid)
        os.close(from_child)
        raise
    finally:
        os.close(to_child)
    return pid, from_child


# ---------------------------------------------------------------- the child


def _send_setup_error(fd: int, stage: str, exc: BaseException) -> None:
    """Report a setup failure to the parent (best effort)."""
    errno = exc.errno if isinstance(exc, OSError) and exc.errno else 0
    payload = f"{stage}\0{errno}\0{exc}".encode(errors="replace")
    try:
        _proc.write_frame(fd, _proc.TAG_SETUP_ERROR, payload)
    except OSError:
        pass


def _become_root(libc: ctypes.CDLL, to_parent: int) -> bool:
    """In the mapped namespace: ids 0, no extra groups, private mounts. False (reported) on failure."""
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        try:
            os.setgroups([])
        except PermissionError:  # /proc/PID/setgroups says "deny": keep what we have
            pass
        _proc.make_mounts_private(libc)
    except OSError as exc:
        _send_setup_error(to_parent, "become root", exc)
        return False
    return True


def _enter(libc: ctypes.CDLL, to_parent: int, from_parent: int, timeout: float) -> bool:
    """Unshare, signal the parent, wait for its ``G``, become root. False when the child must exit."""
    try:
        _proc.die_with_parent(libc)
        _proc.unshare_user_and_mount(libc)
    except OSError as exc:
        _send_setup_error(to_parent, "unshare", exc)
        return False
    _proc.write_frame(to_parent, _proc.TAG_UNSHARED)
    try:
        go = _proc.read_frame(from_parent, _proc.deadline_after(timeout * 3))
    except UsernsTimeout:
        return False
    os.close(from_parent)
    return go is not None and go[0] == _proc.TAG_GO and _become_root(libc, to_parent)


def _child_main(libc: ctypes.CDLL, to_parent: int, from_parent: int, timeout: float, work: Callable[[int], int]) -> NoReturn:  # pragma: no cover
    """The forked child: enter the namespace, run ``work``, and ``_exit`` with its code, whatever happens."""
    code = _SETUP_FAILED
    try:
        if _enter(libc, to_parent, from_parent, timeout):
            code = work(to_parent)
    except BaseException:  # noqa: BLE001 - the child must reach _exit
        code = _SETUP_FAILED
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _call_and_send(func: Callable[..., Any], args: Sequence[Any], to_parent: int) -> int:  # pragma: no cover
    """Run ``func(*args)`` and send (True, result) or (False, exception) pickled; exit code 0."""
    try:
        outcome: tuple[bool, Any] = (True, func(*args))
    except BaseException as exc:  # noqa: BLE001 - sent to the parent and re-raised there
        outcome = (False, exc)
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001
        data = pickle.dumps((False, ChildFailed(f"cannot send the outcome back: {exc!r} ({outcome[1]!r})")))
    _proc.write_frame(to_parent, _proc.TAG_RESULT, data)
    return 0


# ---------------------------------------------------------------- the API


def _unpickle_outcome(payload: bytes) -> Any:
    """The result of an ``R`` frame, or raise the exception it carries."""
    try:
        ok, value = pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - an exception class that cannot be rebuilt here
        raise ChildFailed(f"cannot read the outcome sent back by the child: {exc!r}") from exc
    if not ok:
        raise value
    return value


def _collect_result(pid: int, from_child: int, timeout: float | None) -> Any:
    """Read the ``R`` (or ``E``) frame, reap the child, return the result or raise; kill on timeout."""
    try:
        frame = _proc.read_frame(from_child, _proc.deadline_after(timeout))
    except BaseException:
        _proc.kill_and_reap(pid)
        raise
    finally:
        os.close(from_child)
    status = os.waitpid(pid, 0)[1]
    if frame is None:
        raise ChildFailed(f"the child exited without a result (exit code {_proc.exit_code(status)})")
    if frame[0] == _proc.TAG_SETUP_ERROR:
        _raise_setup_error(frame[1])
    return _unpickle_outcome(frame[1])


def run_in_userns(
    func: Callable[..., T], *args: Any, setup: UsernsSetup | None = None, timeout: float | None = None
) -> T:
    """``func(*args)`` run in a new user + mount namespace with podman's rootless mapping; its result.

    Unprivileged, ``setup`` defaults to :func:`rootless_setup` (its errors are
    raised before forking). ``func``, ``args`` and the result must be picklable
    for the trip back (the arguments travel by fork, so they need not be);
    an exception raised by ``func`` is re-raised here when it pickles, else
    ChildFailed. With ``timeout`` (seconds, for ``func`` itself) the child is
    SIGKILLed and UsernsTimeout raised when it passes. As root without an
    explicit ``setup``, ``func(*args)`` is called directly, in this process.
    """
    if setup is None:
        if os.geteuid() == 0:
            return func(*args)
        setup = rootless_setup()
    pid, from_child = spawn(setup, lambda to_parent: _call_and_send(func, args, to_parent))
    result: T = _collect_result(pid, from_child, timeout)
    return result
