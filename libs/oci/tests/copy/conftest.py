"""Fixtures of the copy engine's tests: memory transports and a copy helper."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pallet.oci.copy import CopyOptions, CopyResult, Policy, copy_image
from pallet_testing.memory_transport import DestinationCapabilities, MemoryTransport, SourceFaults


@pytest.fixture
def memory() -> Callable[..., MemoryTransport]:
    """``memory(**capabilities, faults=SourceFaults(...))``: a new memory transport."""

    def make(*, faults: SourceFaults | None = None, **capabilities: Any) -> MemoryTransport:
        return MemoryTransport(DestinationCapabilities(**capabilities), faults)

    return make


@pytest.fixture
def run_copy() -> Callable[..., CopyResult]:
    """``run_copy(source, dest, name="src", dest_name="dst", policy=..., progress=..., **options)``."""

    def run(
        source: MemoryTransport,
        dest: MemoryTransport,
        name: str = "src",
        dest_name: str = "dst",
        *,
        policy: Policy | None = None,
        progress: Any = None,
        **options: Any,
    ) -> CopyResult:
        return copy_image(
            source.reference(name),
            dest.reference(dest_name),
            CopyOptions(**options),
            policy=policy or Policy.accept_anything(),
            progress=progress,
        )

    return run


def manifest_of(transport: MemoryTransport, name: str = "dst") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(transport.images[name].manifest)
    return document


@pytest.fixture
def stored() -> Callable[..., dict[str, Any]]:
    """``stored(transport, name="dst")``: the manifest stored under ``name``, as JSON."""
    return manifest_of
