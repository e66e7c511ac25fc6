"""pallet-transfer: Inspect, copy, delete and sync container images between registries and formats."""

__version__ = "0.1.0"
