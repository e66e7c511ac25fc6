"""pallet-transfer list-tags REPOSITORY-NAME: the tags of a repository (skopeo list-tags).

As skopeo: ``docker://`` repositories (no tag or digest in the name) and
``docker-archive:`` files.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pallet.transfer.cli.options import GlobalOptions, add_image_flags, add_retry_times, context_from_flags

SUPPORTED = ("docker", "docker-archive")
USAGE = "[OPTIONS] REPOSITORY-NAME"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repository_name", metavar="REPOSITORY-NAME")
    add_retry_times(parser)
    add_image_flags(parser)


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """List the tags of REPOSITORY-NAME."""
    from pallet.oci.errors import InvalidImageName

    repository_name: str = args.repository_name
    context = context_from_flags(vars(args), globals_)
    transport, colon, within = repository_name.partition(":")
    if not colon:
        raise InvalidImageName("", repository_name, "expected TRANSPORT:NAME, e.g. docker://busybox")
    if transport not in SUPPORTED:
        raise InvalidImageName(transport, within, f"tag listing is supported only for {', '.join(SUPPORTED)}")
    listing = (_registry_tags(within, context, args.retry_times) if transport == "docker"
               else _archive_tags(repository_name, context))
    print(json.dumps(listing, indent=4))


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
