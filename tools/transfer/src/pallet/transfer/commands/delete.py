"""pallet-transfer delete IMAGE-NAME: delete an image where it lives (skopeo delete)."""

from __future__ import annotations

import argparse

from pallet.transfer.cli.options import GlobalOptions, add_image_flags, add_retry_times, context_from_flags

USAGE = "[OPTIONS] IMAGE-NAME"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_name", metavar="IMAGE-NAME")
    add_retry_times(parser)
    add_image_flags(parser)


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Delete IMAGE-NAME (for a registry: the manifest, by digest; the registry must allow deletes)."""
    from pallet.oci.registry.retry import with_retries
    from pallet.oci.transports import default_transports

    context = context_from_flags(vars(args), globals_)
    reference = default_transports().parse_image_name(args.image_name)
    with_retries(lambda: reference.delete(context), args.retry_times)
