"""pallet-build: Build OCI images from scripts or Containerfiles."""

__version__ = "0.1.0"
