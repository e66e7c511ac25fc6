"""Exit codes of pallet-build, as buildah uses them."""

SUCCESS = 0
# buildah's conventions: 125 for its own failures, or the exit status of a failed RUN step.
FAILURE = 125
USAGE = 125
INTERRUPTED = 130
# `buildah unshare` exits 1 when it cannot run its command (none, not executable, killed by a
# signal, no user namespace) and when run as root.
UNSHARE_FAILED = 1


def for_exception(exc: BaseException) -> int:
    """The exit status for an error that ended the command: 1 for the user namespace's errors, as buildah."""
    from pallet.storage.userns.errors import UsernsError

    return UNSHARE_FAILED if isinstance(exc, UsernsError) else FAILURE
