"""pallet-transfer manifest-digest MANIFEST-FILE: print the digest of a manifest file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    manifest_file: Annotated[Path, typer.Argument(metavar="MANIFEST-FILE", help="the manifest to digest")],
) -> None:
    """Compute a manifest digest of a file (the sha256 of its bytes, exactly as stored)."""
    from pallet.oci.manifest import manifest_digest

    try:
        raw = manifest_file.read_bytes()
    except OSError as exc:
        raise OSError(f"reading manifest {manifest_file}: {exc.strerror}") from exc
    typer.echo(str(manifest_digest(raw)))
