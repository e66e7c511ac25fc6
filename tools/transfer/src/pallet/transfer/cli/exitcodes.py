"""Exit codes of pallet-transfer, as skopeo uses them."""

SUCCESS = 0
FAILURE = 1
# skopeo exits 2 when the image asked for does not exist (inspect with --retry-times).
IMAGE_NOT_FOUND = 2
USAGE = 1  # skopeo exits 1 on a bad flag or a missing command
INTERRUPTED = 130


def for_exception(exc: BaseException) -> int:
    """The exit status for an error that ended the command."""
    from pallet.oci.errors import ImageNotFound

    return IMAGE_NOT_FOUND if isinstance(exc, ImageNotFound) else FAILURE
