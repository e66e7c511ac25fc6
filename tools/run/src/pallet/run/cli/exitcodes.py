"""Exit codes of pallet-run, as podman uses them."""

SUCCESS = 0
# podman's conventions, which scripts that call `docker run` rely on.
FAILURE = 125  # the runner itself failed
CANNOT_INVOKE = 126  # the contained command could not be invoked
NOT_FOUND = 127  # the contained command was not found
USAGE = 125
INTERRUPTED = 130
