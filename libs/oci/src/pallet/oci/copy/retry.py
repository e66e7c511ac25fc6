"""Trying again what failed for a temporary reason (skopeo's ``--retry-times``).

Only errors that say so (``OciError.temporary``: 429, 5xx, a dropped
connection) are retried; everything else, and every verification failure,
is raised at once. The delay doubles: ``delay``, ``2*delay``, ``4*delay``...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from pallet.oci.errors import OciError

T = TypeVar("T")

_log = logging.getLogger(__name__)


def is_temporary(error: BaseException) -> bool:
    """True when trying the same operation again may succeed."""
    return isinstance(error, OciError) and error.temporary


def with_retries(
    operation: Callable[[], T],
    *,
    times: int,
    delay: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``operation()``, tried up to ``times`` more times after a temporary error.

    The last error is raised unchanged when all tries fail; a permanent error
    is raised at the first try.
    """
    attempt = 0
    while True:
        try:
            return operation()
        except OciError as error:
            if not error.temporary or attempt >= times:
                raise
            wait = delay * (2**attempt)
            attempt += 1
            _log.info("%s failed (%s); retrying in %.1fs (%d of %d)", what, error, wait, attempt, times)
            sleep(wait)
