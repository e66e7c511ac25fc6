"""Pulling through registries.conf: mirrors first, then the primary location.

As containers/image's docker source does: each endpoint of
``pull_endpoints`` is tried in order by fetching the manifest; the first one
that serves it is used for the whole pull (its client stays open). When all
fail, the primary's error is raised (its class kept, so a missing image is
still ``ImageNotFound``), naming what the mirrors answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.oci.errors import OciError, RegistryError, RegistryUnreachable
from pallet.oci.reference import DEFAULT_TAG, Reference
from pallet.oci.registry.client import FetchedManifest, RegistryClient
from pallet.oci.registry.endpoints import Endpoint, pull_endpoints
from pallet.oci.registry.options import RegistryOptions


@dataclass
class PullSource:
    """The endpoint that served the manifest, its open client, and the manifest. Close ``client``."""

    endpoint: Endpoint
    client: RegistryClient
    manifest: FetchedManifest


def open_pull_source(ref: Reference, options: RegistryOptions | None = None) -> PullSource:
    """The first endpoint (mirrors, then primary) that serves ``ref``'s manifest."""
    options = options or RegistryOptions()
    failures: list[tuple[Endpoint, OciError]] = []
    for endpoint in pull_endpoints(ref, options.registries_conf):
        wanted = endpoint.reference.digest or endpoint.reference.tag or DEFAULT_TAG
        client: RegistryClient | None = None
        try:
            client = RegistryClient.for_endpoint(endpoint, options)
            manifest = client.get_manifest(endpoint.repository, wanted)
        except OciError as error:
            if client is not None:
                client.close()
            failures.append((endpoint, error))
            continue
        except BaseException:
            if client is not None:
                client.close()
            raise
        return PullSource(endpoint, client, manifest)
    raise _combined(failures)


def _combined(failures: list[tuple[Endpoint, OciError]]) -> OciError:
    last = failures[-1][1]
    if len(failures) == 1:
        return last
    tried = "; ".join(f"{endpoint.reference}: {error}" for endpoint, error in failures[:-1])
    message = f"{last} (mirrors tried first: {tried})"
    if isinstance(last, RegistryError):
        return type(last)(message, status=last.status, codes=last.codes, detail=last.detail)
    if isinstance(last, RegistryUnreachable):
        return RegistryUnreachable(message, temporary=last.temporary)
    return last
