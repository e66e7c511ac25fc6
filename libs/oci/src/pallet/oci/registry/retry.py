"""Retrying on temporary errors: a re-export of ``pallet.oci.retry``, the lib's one helper.

Kept so that ``from pallet.oci.registry.retry import with_retries`` (and
``with_retries(fn, times)``) keeps working; new code imports ``pallet.oci.retry``.
"""

from __future__ import annotations

from pallet.oci.retry import MAX_DELAY_SECONDS, is_temporary, with_retries

__all__ = ["MAX_DELAY_SECONDS", "is_temporary", "with_retries"]
