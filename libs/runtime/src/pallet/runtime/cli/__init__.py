"""pallet-runtime: the runc/crun-compatible command line over :class:`pallet.runtime.containers.Runtime`."""

from pallet.runtime.cli.main import main

__all__ = ["main"]
