"""pallet-transfer logout REGISTRY: remove stored credentials."""

from __future__ import annotations

import argparse
from pathlib import Path

from pallet.transfer.cli.options import GlobalOptions
from pallet.transfer.cli.parsing import UsageError

USAGE = "[OPTIONS] REGISTRY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("registry", metavar="REGISTRY", nargs="?")
    parser.add_argument("-a", "--all", dest="all_", action="store_true",
                        help="remove the cached credentials for all registries in the auth file")
    parser.add_argument("--authfile", type=Path, metavar="PATH", help="path of the authentication file")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Log out of REGISTRY (or of all registries with --all)."""
    from pallet.oci.errors import CredentialsError
    from pallet.oci.registry.credentials import default_auth_file, read_auth_file, remove_credentials, write_auth_file

    registry: str | None = args.registry
    path = default_auth_file(auth_file=args.authfile)
    if args.all_:
        if registry is not None:
            raise UsageError("--all takes no REGISTRY")
        document = read_auth_file(path)
        document["auths"] = {}
        write_auth_file(path, document)
        print("Removed login credentials for all registries")
        return
    if registry is None:
        raise UsageError("REGISTRY is required (or --all)")
    key = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not remove_credentials(path, key):
        raise CredentialsError(f"not logged into {key}")
    print(f"Removed login credentials for {key}")
