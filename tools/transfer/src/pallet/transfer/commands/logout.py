"""pallet-transfer logout REGISTRY: remove stored credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    registry: Annotated[Optional[str], typer.Argument(metavar="REGISTRY")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="remove the cached credentials for all registries in the auth file")] = False,
    authfile: Annotated[Optional[Path], typer.Option("--authfile", help="path of the authentication file")] = None,
) -> None:
    """Log out of REGISTRY (or of all registries with --all)."""
    from pallet.oci.errors import CredentialsError
    from pallet.oci.registry.credentials import default_auth_file, read_auth_file, remove_credentials, write_auth_file

    path = default_auth_file(auth_file=authfile)
    if all_:
        if registry is not None:
            raise typer.BadParameter("--all takes no REGISTRY")
        document = read_auth_file(path)
        document["auths"] = {}
        write_auth_file(path, document)
        typer.echo("Removed login credentials for all registries")
        return
    if registry is None:
        raise typer.BadParameter("REGISTRY is required (or --all)")
    key = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not remove_credentials(path, key):
        raise CredentialsError(f"not logged into {key}")
    typer.echo(f"Removed login credentials for {key}")
