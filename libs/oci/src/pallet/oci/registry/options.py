"""The options of a registry client, gathered in one immutable object (no httpx here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pallet.oci import __version__
from pallet.oci.registry.credentials import Credentials
from pallet.oci.shortnames import RegistriesConf, load_registries_conf

if TYPE_CHECKING:
    from pallet.oci.transports.base import SystemContext

DEFAULT_USER_AGENT = f"pallet/{__version__} (containers/image compatible)"
#: containers/image's limit on a manifest body (iolimits.MaxManifestBodySize).
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: containers/image's limit on a token response (iolimits.MaxAuthTokenBodySize).
MAX_TOKEN_RESPONSE_SIZE = 1024 * 1024


@dataclass(frozen=True)
class RegistryOptions:
    """How to talk to registries. Every field has the default skopeo has.

    - ``tls_verify``: None = verify unless registries.conf marks the registry
      insecure; False = skip verification and allow plain HTTP (after HTTPS
      fails); True = always verify.
    - ``cert_dir``: the certs.d-style directory to use instead of the per-host
      lookup (``--cert-dir``).
    - ``credentials``: explicit credentials (``--creds``); else ``registry_token``
      (``--registry-token``, sent as a Bearer token); else the auth files,
      unless ``no_creds``.
    - ``retry_times``/``retry_delay``: retries of idempotent requests (GET,
      HEAD) on temporary errors, with exponential backoff from ``retry_delay``.
    - ``resume_min_progress``/``resume_delay``: a blob download whose
      connection breaks is resumed with a Range request when at least this
      many bytes arrived since the last (re)connection, after this delay.
    - ``env``/``home``: the environment and home directory config is read
      from (None: the process's), for tests.
    """

    tls_verify: bool | None = None
    cert_dir: Path | None = None
    credentials: Credentials | None = None
    registry_token: str | None = None
    no_creds: bool = False
    auth_file: Path | None = None
    registries_conf: RegistriesConf | None = None
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 30.0
    read_timeout: float = 300.0
    retry_times: int = 0
    retry_delay: float = 1.0
    resume_min_progress: int = 1024 * 1024
    resume_delay: float = 1.0
    env: Mapping[str, str] | None = None
    home: Path | None = None

    @classmethod
    def from_system_context(cls, context: SystemContext) -> RegistryOptions:
        """The options a SystemContext describes (registries.conf is read here, once)."""
        env = dict(context.environ) if context.environ is not None else None
        creds = Credentials(*context.credentials) if context.credentials else None
        return cls(
            tls_verify=context.tls_verify,
            cert_dir=context.cert_dir,
            credentials=creds,
            registry_token=context.registry_token,
            no_creds=context.no_creds,
            auth_file=context.auth_file,
            registries_conf=load_registries_conf(context.registries_conf, env=env, home=context.home),
            user_agent=context.user_agent or DEFAULT_USER_AGENT,
            retry_times=context.retry_times,
            env=env,
            home=context.home,
        )
