"""The tags of a registry repository, for list-tags and sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pallet.oci.reference import Reference
    from pallet.oci.transports import SystemContext


def repository_tags(ref: Reference, context: SystemContext, retry_times: int = 0) -> list[str]:
    """Every tag of the repository ``ref`` names (its tag or digest, if any, is ignored)."""
    from pallet.oci.registry import RegistryClient, RegistryOptions, push_endpoint
    from pallet.oci.registry.retry import with_retries

    options = RegistryOptions.from_system_context(context)
    endpoint = push_endpoint(ref, options.registries_conf)
    with RegistryClient.for_endpoint(endpoint, options) as client:
        return with_retries(lambda: client.list_tags(endpoint.repository), retry_times)
