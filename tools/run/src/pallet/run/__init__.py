"""pallet-run: Run containers without a daemon, rootless by default; a command line compatible with podman and docker."""

__version__ = "0.1.0"
