"""pallet-transfer login REGISTRY: check credentials and store them in auth.json (0600)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pallet.transfer.cli.options import GlobalOptions, prompt
from pallet.transfer.cli.parsing import UsageError

USAGE = "[OPTIONS] REGISTRY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("registry", metavar="REGISTRY", help="host[:port], optionally with a repository path")
    parser.add_argument("-u", "--username", help="username for the registry")
    parser.add_argument("-p", "--password", help="password for the registry")
    parser.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    parser.add_argument("--get-login", action="store_true", help="return the current login user for the registry")
    parser.add_argument("--authfile", type=Path, metavar="PATH", help="path of the authentication file")
    parser.add_argument("--cert-dir", type=Path, metavar="PATH", help="use certificates at PATH (*.crt, *.cert, *.key)")
    parser.add_argument("--tls-verify", metavar="BOOL", help="require HTTPS and verify certificates (default true)")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Log in to REGISTRY: the credentials are checked with the registry before they are stored."""
    from pallet.oci.errors import CredentialsError
    from pallet.oci.registry import RegistryClient, RegistryOptions
    from pallet.oci.registry.credentials import Credentials, default_auth_file, lookup_credentials, set_credentials
    from pallet.oci.shortnames import load_registries_conf

    from pallet.transfer.cli.goflags import parse_bool

    registry: str = args.registry
    key = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    host = key.split("/", 1)[0]
    path = default_auth_file(auth_file=args.authfile)
    if args.get_login:
        found = lookup_credentials(key, auth_file=args.authfile)
        if found is None or not found.username:
            raise CredentialsError(f"not logged into {key}")
        print(found.username)
        return
    if args.password_stdin and args.password is not None:
        raise UsageError("--password and --password-stdin cannot be used together")
    user = args.username or prompt("Username: ")
    if args.password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = args.password if args.password is not None else prompt("Password: ", secret=True)
    options = RegistryOptions(
        tls_verify=None if args.tls_verify is None else parse_bool(args.tls_verify, "--tls-verify"),
        cert_dir=args.cert_dir, credentials=Credentials(user, secret),
        registries_conf=load_registries_conf(globals_.registries_conf),
    )
    with RegistryClient(host, options) as client:
        client.ping()  # Unauthorized when the registry refuses the credentials
    set_credentials(path, key, user, secret)
    print("Login Succeeded!")

