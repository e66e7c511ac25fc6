"""pallet-transfer list-tags REPOSITORY-NAME: the tags of a repository (skopeo list-tags).

As skopeo: ``docker://`` repositories (no tag or digest in the name) and
``docker-archive:`` files.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from pallet.transfer.cli.options import PLAIN, GlobalOptions, context_from_flags

SUPPORTED = ("docker", "docker-archive")


def command(
    ctx: typer.Context,
    repository_name: Annotated[str, typer.Argument(metavar="REPOSITORY-NAME")],
    retry_times: Annotated[int, typer.Option("--retry-times", help="the number of times to possibly retry")] = 0,
    tls_verify: PLAIN.tls_verify = None, cert_dir: PLAIN.cert_dir = None, creds: PLAIN.creds = None,
    username: PLAIN.username = None, password: PLAIN.password = None, no_creds: PLAIN.no_creds = False,
    registry_token: PLAIN.registry_token = None, authfile: PLAIN.authfile = None,
) -> None:
    """List the tags of REPOSITORY-NAME."""
    flags = dict(locals())  # the image flags, read by context_from_flags
    from pallet.oci.errors import InvalidImageName

    globals_: GlobalOptions = ctx.obj
    context = context_from_flags(flags, globals_)
    transport, colon, within = repository_name.partition(":")
    if not colon:
        raise InvalidImageName("", repository_name, "expected TRANSPORT:NAME, e.g. docker://busybox")
    if transport not in SUPPORTED:
        raise InvalidImageName(transport, within, f"tag listing is supported only for {', '.join(SUPPORTED)}")
    listing = _registry_tags(within, context, retry_times) if transport == "docker" else _archive_tags(repository_name, context)
    typer.echo(json.dumps(listing, indent=4))


def _registry_tags(within: str, context: Any, retry_times: int) -> dict[str, Any]:
    from pallet.oci.errors import InvalidImageName
    from pallet.oci.reference import parse_normalized

    from pallet.transfer.repositories import repository_tags

    if not within.startswith("//"):
        raise InvalidImageName("docker", within, "docker: references must start with //")
    ref = parse_normalized(within[2:])
    if ref.tag is not None or ref.digest is not None:
        raise InvalidImageName("docker", within, "no tag or digest allowed in reference")
    return {"Repository": ref.name, "Tags": repository_tags(ref, context, retry_times)}


def _archive_tags(name: str, context: Any) -> dict[str, Any]:
    from pallet.oci.transports.docker_archive import archive_repo_tags

    return {"Tags": archive_repo_tags(name.partition(":")[2], context)}
