"""pallet-transfer login REGISTRY: check credentials and store them in auth.json (0600)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pallet.transfer.cli.options import GlobalOptions


def command(
    ctx: typer.Context,
    registry: Annotated[str, typer.Argument(metavar="REGISTRY", help="host[:port], optionally with a repository path")],
    username: Annotated[Optional[str], typer.Option("--username", "-u", help="username for the registry")] = None,
    password: Annotated[Optional[str], typer.Option("--password", "-p", help="password for the registry")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="take the password from stdin")] = False,
    get_login: Annotated[bool, typer.Option("--get-login", help="return the current login user for the registry")] = False,
    authfile: Annotated[Optional[Path], typer.Option("--authfile", help="path of the authentication file")] = None,
    cert_dir: Annotated[Optional[Path], typer.Option("--cert-dir", metavar="PATH", help="use certificates at PATH (*.crt, *.cert, *.key)")] = None,
    tls_verify: Annotated[Optional[str], typer.Option("--tls-verify", metavar="BOOL", help="require HTTPS and verify certificates (default true)")] = None,
) -> None:
    """Log in to REGISTRY: the credentials are checked with the registry before they are stored."""
    from pallet.oci.errors import CredentialsError
    from pallet.oci.registry import RegistryClient, RegistryOptions
    from pallet.oci.registry.credentials import Credentials, default_auth_file, lookup_credentials, set_credentials

    from pallet.transfer.cli.goflags import parse_bool

    globals_: GlobalOptions = ctx.obj
    key = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    host = key.split("/", 1)[0]
    path = default_auth_file(auth_file=authfile)
    if get_login:
        found = lookup_credentials(key, auth_file=authfile)
        if found is None or not found.username:
            raise CredentialsError(f"not logged into {key}")
        typer.echo(found.username)
        return
    if password_stdin and password is not None:
        raise typer.BadParameter("--password and --password-stdin cannot be used together")
    user = username or typer.prompt("Username", err=True)
    if password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = password if password is not None else typer.prompt("Password", hide_input=True, err=True)
    options = RegistryOptions(
        tls_verify=None if tls_verify is None else parse_bool(tls_verify, "--tls-verify"), cert_dir=cert_dir,
        credentials=Credentials(user, secret),
        registries_conf=_registries_conf(globals_),
    )
    with RegistryClient(host, options) as client:
        client.ping()  # Unauthorized when the registry refuses the credentials
    set_credentials(path, key, user, secret)
    typer.echo("Login Succeeded!")


def _registries_conf(globals_: GlobalOptions):  # type: ignore[no-untyped-def]
    from pallet.oci.shortnames import load_registries_conf

    return load_registries_conf(globals_.registries_conf)
