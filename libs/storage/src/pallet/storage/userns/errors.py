"""The exceptions of :mod:`pallet.storage.userns`, under pallet.storage's root ``StorageError``.

    StorageError (pallet.storage.errors)
    └── UsernsError                 the user namespace cannot be set up or the work inside it failed
        ├── SubIDFileInvalid        /etc/subuid or /etc/subgid has a line that is not NAME:START:COUNT
        ├── NoSubIDRanges           the user has no range in /etc/subuid or /etc/subgid
        ├── SubIDRangesTooSmall     the user's ranges hold fewer ids than asked for
        ├── HelperMissing           newuidmap or newgidmap is not installed (Debian package: uidmap)
        ├── UnshareFailed           the kernel refused unshare(CLONE_NEWUSER | CLONE_NEWNS)
        ├── IDMapFailed             newuidmap/newgidmap (or the write of /proc/PID/*_map) failed
        ├── UsernsTimeout           the child or a helper did not answer in time (the child was killed)
        ├── ChildFailed             the child died before returning a result, or raised something unpicklable
        │   └── ExecFailed          the command to run in the namespace could not be executed
        ├── NoUnshareCommand        ``unshare`` without a command and without $SHELL
        └── UnshareNeedsRootless    ``unshare`` as root (podman refuses it; buildah 1.28 fails)

Every message ends with a hint of what to do, as podman's do.
"""

from __future__ import annotations

from pallet.storage.errors import StorageError

_RANGE_HINT = (
    "rootless mode needs subordinate ids: as root, run "
    "`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` "
    "(see podman(1), 'Rootless mode', and subuid(5))"
)


class UsernsError(StorageError):
    """The root of every error of the user-namespace building block."""


class SubIDFileInvalid(UsernsError):
    """A line of a subordinate-id file that is not ``NAME-OR-UID:START:COUNT`` (a hard error, as in idtools)."""

    def __init__(self, path: str, line_number: int, why: str) -> None:
        self.path = path
        self.line_number = line_number
        self.why = why
        super().__init__(f"cannot parse subuid/subgid information: {path}:{line_number}: {why}")


class NoSubIDRanges(UsernsError):
    """The user has no range in the subordinate-id file ``path``."""

    def __init__(self, path: str, user: str, uid: int) -> None:
        self.path = path
        self.user = user
        self.uid = uid
        hint = _RANGE_HINT.format(user=user)
        super().__init__(f"no subordinate ids found for user {user!r} (id {uid}) in {path}: {hint}")


class SubIDRangesTooSmall(UsernsError):
    """The user's ranges in ``path`` hold ``available`` ids, fewer than the ``needed``."""

    def __init__(self, path: str, user: str, available: int, needed: int) -> None:
        self.path = path
        self.user = user
        self.available = available
        self.needed = needed
        hint = _RANGE_HINT.format(user=user)
        super().__init__(
            f"the subordinate ids of user {user!r} in {path} number {available}, fewer than the {needed} needed: {hint}"
        )


class HelperMissing(UsernsError):
    """newuidmap or newgidmap cannot be found or executed."""

    def __init__(self, helper: str, where: str) -> None:
        self.helper = helper
        self.where = where
        super().__init__(
            f"{helper} not found ({where}): rootless mode needs the setuid helpers newuidmap and newgidmap; "
            "install them as root (Debian/Ubuntu: `apt-get install uidmap`, Fedora: `dnf install shadow-utils`)"
        )


class UnshareFailed(UsernsError):
    """unshare(CLONE_NEWUSER | CLONE_NEWNS) failed in the child (``errno`` is the kernel's answer)."""

    def __init__(self, errno: int, why: str) -> None:
        self.errno = errno
        self.why = why
        super().__init__(
            f"cannot create a user namespace: {why}; check that /proc/sys/user/max_user_namespaces is not 0 "
            "and that no security module forbids unprivileged user namespaces"
        )


class IDMapFailed(UsernsError):
    """A helper (or the direct write of /proc/PID/uid_map) could not set the namespace's mapping."""

    def __init__(self, what: str, why: str) -> None:
        self.what = what
        self.why = why
        super().__init__(
            f"{what} failed: {why}; check /etc/subuid and /etc/subgid and that newuidmap/newgidmap are setuid root "
            "or have the setuid/setgid file capabilities"
        )


class UsernsTimeout(UsernsError):
    """A step did not finish within its timeout; the child was killed and reaped."""


class ChildFailed(UsernsError):
    """The child in the namespace died without a result, or its exception could not be sent back."""


class ExecFailed(ChildFailed):
    """execvpe of the command failed inside the namespace (``errno``: ENOENT when not found, EACCES, ...)."""

    def __init__(self, program: str, errno: int, why: str) -> None:
        self.program = program
        self.errno = errno
        self.why = why
        super().__init__(f"cannot execute {program!r} in the user namespace: {why}")


class NoUnshareCommand(UsernsError):
    """``unshare`` was given no command and $SHELL is not set (buildah: "no command specified")."""

    def __init__(self) -> None:
        super().__init__("no command specified: name the command to run, or set $SHELL")


class UnshareNeedsRootless(UsernsError):
    """``unshare`` as root: there is no rootless user namespace to enter (podman's answer)."""

    def __init__(self) -> None:
        super().__init__("please use unshare with rootless: as root there is no rootless user namespace to enter")
