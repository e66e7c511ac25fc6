"""TLS for one registry host: the certs.d directory and the ssl context made from it.

A cert directory holds, as containers-certs.d(5) describes:

- ``*.crt``: CA certificates trusted in addition to the system's;
- ``NAME.cert`` with ``NAME.key``: a client certificate and its key (one
  without the other is an error).

``cert_dir_for_host`` finds the directory containers/image uses when none is
given: the first existing one of ``~/.config/containers/certs.d/HOST``,
``/etc/containers/certs.d/HOST`` and ``/etc/docker/certs.d/HOST`` (the
per-user directory first, as containers/image searches them).
"""

from __future__ import annotations

import os
import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pallet.oci.errors import CredentialsError

SYSTEM_CERTS_DIRS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
USER_CERTS_DIR = Path(".config/containers/certs.d")


def cert_dir_for_host(
    host: str,
    *,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    system_dirs: tuple[Path, ...] = SYSTEM_CERTS_DIRS,
) -> Path | None:
    """The certs.d directory for ``host`` (``host[:port]``), or None when there is none."""
    env = os.environ if env is None else env
    home_dir = home if home is not None else (Path(env["HOME"]) if env.get("HOME") else Path.home())
    for base in (home_dir / USER_CERTS_DIR, *system_dirs):
        candidate = base / host
        try:
            if candidate.is_dir():
                return candidate
        except PermissionError:
            continue
    return None


@dataclass(frozen=True)
class CertDirContents:
    """What a cert directory offers: CA files and (certificate, key) pairs, sorted by name."""

    ca_files: tuple[Path, ...] = ()
    client_pairs: tuple[tuple[Path, Path], ...] = ()


def read_cert_dir(directory: Path) -> CertDirContents:
    """The CA files and client pairs of ``directory``; CredentialsError for a lone .cert or .key."""
    try:
        names = sorted(entry.name for entry in directory.iterdir() if entry.is_file())
    except FileNotFoundError:
        return CertDirContents()
    except OSError as error:
        raise CredentialsError(f"{directory}: cannot list certificates: {error.strerror}") from error
    present = set(names)
    pairs: list[tuple[Path, Path]] = []
    for name in names:
        stem, suffix = os.path.splitext(name)
        if suffix == ".cert":
            if f"{stem}.key" not in present:
                raise CredentialsError(f"{directory}: missing key {stem}.key for client certificate {name}")
            pairs.append((directory / name, directory / f"{stem}.key"))
        elif suffix == ".key" and f"{stem}.cert" not in present:
            raise CredentialsError(f"{directory}: missing client certificate {stem}.cert for key {name}")
    cas = tuple(directory / name for name in names if name.endswith(".crt"))
    return CertDirContents(cas, tuple(pairs))


def make_ssl_context(*, verify: bool, cert_dir: Path | None) -> ssl.SSLContext:
    """An ssl context trusting the system CAs plus ``cert_dir``'s, with its client certificate.

    ``verify=False`` checks neither the chain nor the host name (skopeo's
    ``--tls-verify=false``) and loads no CA at all; a client certificate is
    still presented. Loading the system CA bundle costs tens of milliseconds,
    so the context without extra CAs or client certificate is made once per
    process and shared (an SSLContext is safe to share between clients and
    threads; nothing changes it after it is made).
    """
    contents = read_cert_dir(cert_dir) if cert_dir is not None else CertDirContents()
    if verify and not contents.ca_files and not contents.client_pairs:
        return _system_context()
    if verify:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        for ca_file in contents.ca_files:
            _load(context.load_verify_locations, ca_file, cafile=str(ca_file))
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if contents.client_pairs:
        cert, key = contents.client_pairs[0]
        _load(context.load_cert_chain, cert, certfile=str(cert), keyfile=str(key))
    return context


@functools.lru_cache(maxsize=1)
def _system_context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


def _load(loader: object, path: Path, **arguments: str) -> None:
    try:
        loader(**arguments)  # type: ignore[operator]
    except (ssl.SSLError, OSError) as error:
        raise CredentialsError(f"{path}: cannot load certificate or key: {error}") from error
