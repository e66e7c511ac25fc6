"""pallet.runtime (skeleton: filled by its own issue)."""

__version__ = "0.1.0"
