"""The registry client of pallet.oci: the OCI distribution API over httpx.

- ``client``: ``RegistryClient`` (manifests, blobs, tags, catalog, referrers),
  ``FetchedManifest``, ``ManifestInfo``;
- ``blobs``: ``BlobReader`` (streamed, resumable, verified downloads),
  ``PushedBlob``;
- ``options``: ``RegistryOptions``; ``credentials``: ``Credentials``,
  auth.json lookup and writing, credential helpers;
- ``endpoints``: registries.conf applied (``Endpoint``, ``pull_endpoints``,
  ``push_endpoint``); ``pull``: ``open_pull_source`` (mirrors, then primary);
- ``auth``: the challenge flow (``RegistryAuth``); ``errors_map``: the one
  place HTTP answers become pallet.oci errors; ``retry``: ``with_retries``.

Names are re-exported lazily: httpx is imported only when a name that needs
it is used (``Credentials`` and the auth-file functions do not).
"""

from __future__ import annotations

import sys

from pallet.oci._lazy import lazy_exports

# httpx's package imports its command-line module when click, rich and pygments
# happen to be installed (~60 ms of start-up); nothing here uses it. Every
# module of this package imports httpx after this line has run.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

_EXPORTS: dict[str, str] = {
    "BlobReader": "blobs",
    "PushedBlob": "blobs",
    "FetchedManifest": "client",
    "ManifestInfo": "client",
    "RegistryClient": "client",
    "Credentials": "credentials",
    "lookup_credentials": "credentials",
    "remove_credentials": "credentials",
    "set_credentials": "credentials",
    "Endpoint": "endpoints",
    "pull_endpoints": "endpoints",
    "push_endpoint": "endpoints",
    "RegistryOptions": "options",
    "PullSource": "pull",
    "open_pull_source": "pull",
    "with_retries": "retry",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
