"""Trying again what failed for a temporary reason (skopeo's ``--retry-times``).

One helper for the whole lib: the registry client, the copy engine and the
CLIs all retry through ``with_retries``. Only errors that say so
(``OciError.temporary``: 429, 5xx, a dropped connection) are retried;
everything else, every verification failure included, is raised at once.
The n-th retry waits ``delay * 2**(n-1)`` seconds, at most ``max_delay``
(1s, 2s, 4s... by default, as containers/common's retry does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from pallet.oci.errors import OciError

T = TypeVar("T")

#: The longest wait between two tries, whatever ``delay`` and the number of tries.
MAX_DELAY_SECONDS = 60.0

_log = logging.getLogger(__name__)


def is_temporary(error: BaseException) -> bool:
    """True when trying the same operation again may succeed."""
    return isinstance(error, OciError) and error.temporary


def with_retries(
    operation: Callable[[], T],
    times: int,
    delay: float = 1.0,
    *,
    what: str = "",
    sleep: Callable[[float], None] = time.sleep,
    max_delay: float = MAX_DELAY_SECONDS,
) -> T:
    """``operation()``, tried up to ``times`` more times after a temporary error.

    Waits ``min(delay * 2**n, max_delay)`` (n = 0, 1, ...) through ``sleep``
    before each new try, longer when the error carries a ``retry_after`` (a
    registry's Retry-After header) but never more than ``max_delay``, and logs it at INFO, naming ``what`` when given.
    A permanent error is raised at the first try; the last temporary one is
    raised unchanged when all tries fail. The operation must be safe to
    repeat (idempotent, or restarting from scratch).
    """
    attempt = 0
    while True:
        try:
            return operation()
        except OciError as error:
            if not error.temporary or attempt >= times:
                raise
            wait = min(max(delay * (2**attempt), error.retry_after or 0.0), max_delay)
            attempt += 1
            failed = f"{what} failed ({error})" if what else str(error)
            _log.info("%s; retrying in %.1fs (%d of %d)", failed, wait, attempt, times)
            sleep(wait)
