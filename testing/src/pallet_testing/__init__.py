"""Test support for the Pallet monorepo (not shipped)."""
