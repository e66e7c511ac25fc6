"""Retrying an operation on temporary errors, with exponential backoff (skopeo's ``--retry-times``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from pallet.oci.errors import OciError

T = TypeVar("T")

MAX_DELAY_SECONDS = 60.0

_log = logging.getLogger(__name__)


def with_retries(
    operation: Callable[[], T],
    times: int,
    backoff: float = 1.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_delay: float = MAX_DELAY_SECONDS,
) -> T:
    """Call ``operation``; on an ``OciError`` whose ``temporary`` is True, try again up to ``times`` more.

    The n-th retry waits ``backoff * 2**(n-1)`` seconds (1s, 2s, 4s... by
    default, at most ``max_delay``), as containers/common's retry does. Other
    errors, and the last temporary one, are raised as they are. The operation
    must be safe to repeat (idempotent, or restarting from scratch).
    """
    attempt = 0
    while True:
        try:
            return operation()
        except OciError as error:
            if not error.temporary or attempt >= times:
                raise
            delay = min(backoff * (2**attempt), max_delay)
            attempt += 1
            _log.info("%s: retrying in %.1fs (attempt %d of %d)", error, delay, attempt, times)
            sleep(delay)
