"""Run the calling tool again inside the rootless user namespace, as skopeo, podman and buildah do.

containers/storage's ``unshare.MaybeReexecUsingUserNamespace``: an
unprivileged tool that touches a containers-storage store runs itself again
as uid 0 of a user namespace with podman's mapping (the user's uid -> 0, the
user's /etc/subuid and /etc/subgid ranges -> 1...), so that the layer files
it extracts get the owners podman gives them, and it waits for that run and
exits with its status. skopeo decides by the image names (any
``containers-storage:`` one); so does :func:`needs_reexec`.

The process run again sees ``_CONTAINERS_USERNS_CONFIGURED=done`` and the
user's ``_CONTAINERS_ROOTLESS_UID``/``_CONTAINERS_ROOTLESS_GID``, so its
:func:`needs_reexec` is false and :class:`pallet.storage.config.Host` still
resolves the user's rootless store. Killing the waiting parent (even with
SIGKILL) kills the run inside too (PR_SET_PDEATHSIG), so a killed command
leaves nothing running.

A tool calls, before doing any work::

    if reexec.needs_reexec(image_names):
        return reexec.reexec_in_userns([sys.executable, "-m", "pallet.transfer", *args])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

#: the transport prefix that needs the namespace (hard-coded, as skopeo's reexecIfNecessaryForImages does)
STORAGE_PREFIX = "containers-storage:"
_CONFIGURED = "_CONTAINERS_USERNS_CONFIGURED"  # the same name as userns.command.USERNS_CONFIGURED (not imported: startup cost)


def in_user_namespace(env: Mapping[str, str] | None = None) -> bool:
    """True inside the namespace podman, buildah or :func:`reexec_in_userns` made (their variable is set)."""
    return bool((os.environ if env is None else env).get(_CONFIGURED))


def needs_reexec(image_names: Iterable[str], env: Mapping[str, str] | None = None, euid: int | None = None) -> bool:
    """True when an unprivileged process, not yet in the namespace, names a ``containers-storage:`` image."""
    if (os.geteuid() if euid is None else euid) == 0 or in_user_namespace(env):
        return False
    return any(name.startswith(STORAGE_PREFIX) for name in image_names)


def reexec_in_userns(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` (the tool again) as uid 0 of the rootless user namespace; its exit status.

    The setup errors come before anything runs, each with a hint: NoSubIDRanges
    and SubIDRangesTooSmall (no or too few /etc/subuid, /etc/subgid ids),
    SubIDFileInvalid, HelperMissing (newuidmap/newgidmap), then UnshareFailed
    and IDMapFailed. The status is the run's exit code, or 128 + N when it was
    killed by signal N. stdin, stdout and stderr are shared with it.
    """
    from pallet.storage.userns.command import run_unshared

    return run_unshared(argv, env)
