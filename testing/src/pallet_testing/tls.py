"""Certificates for the TLS registry fixture, made with the openssl command.

A throw-away CA signs a server certificate for 127.0.0.1 and localhost. The
layout follows containers' certs.d convention: a directory holding ``ca.crt``
is what ``--cert-dir`` and ``/etc/containers/certs.d/HOST:PORT/`` expect.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerCertificate:
    ca_cert: Path
    cert: Path
    key: Path
    cert_dir: Path  # holds only ca.crt: what clients are given to trust


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed (Debian package: openssl)")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_server_certificate(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ServerCertificate:
    """Write a CA and a server certificate for ``hosts`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Pallet test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    (directory / "server.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.crt", cwd=directory)
    cert_dir = directory / "certs.d"
    cert_dir.mkdir(exist_ok=True)
    shutil.copy(directory / "ca.crt", cert_dir / "ca.crt")
    for path in (cert_dir, directory):
        path.chmod(0o755)
    for name in ("ca.crt", "server.crt"):
        (directory / name).chmod(0o644)
    (cert_dir / "ca.crt").chmod(0o644)
    return ServerCertificate(directory / "ca.crt", directory / "server.crt", directory / "server.key", cert_dir)
