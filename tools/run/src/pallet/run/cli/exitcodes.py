"""Exit codes of pallet-run, as podman uses them."""

SUCCESS = 0
# podman's conventions, which scripts that call `docker run` rely on.
FAILURE = 125  # the runner itself failed
CANNOT_INVOKE = 126  # the contained command could not be invoked
NOT_FOUND = 127  # the contained command was not found
USAGE = 125
INTERRUPTED = 130
# `podman unshare` exits 255 when its command was killed by a signal (Go's ExitCode() is -1 then).
KILLED = 255


def for_exception(exc: BaseException) -> int:
    """The exit status for an error that ended the command: 126/127 for a command that cannot be executed."""
    from errno import ENOENT

    from pallet.storage.userns.errors import ExecFailed

    if isinstance(exc, ExecFailed):
        return NOT_FOUND if exc.errno == ENOENT else CANNOT_INVOKE
    return FAILURE
