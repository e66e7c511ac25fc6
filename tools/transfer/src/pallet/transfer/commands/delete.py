"""pallet-transfer delete IMAGE-NAME: delete an image where it lives (skopeo delete)."""

from __future__ import annotations

from typing import Annotated

import typer

from pallet.transfer.cli.options import PLAIN, GlobalOptions, context_from_flags


def command(
    ctx: typer.Context,
    image_name: Annotated[str, typer.Argument(metavar="IMAGE-NAME")],
    retry_times: Annotated[int, typer.Option("--retry-times", help="the number of times to possibly retry")] = 0,
    tls_verify: PLAIN.tls_verify = None, cert_dir: PLAIN.cert_dir = None, creds: PLAIN.creds = None,
    username: PLAIN.username = None, password: PLAIN.password = None, no_creds: PLAIN.no_creds = False,
    registry_token: PLAIN.registry_token = None, authfile: PLAIN.authfile = None,
) -> None:
    """Delete IMAGE-NAME (for a registry: the manifest, by digest; the registry must allow deletes)."""
    flags = dict(locals())  # the image flags, read by context_from_flags
    from pallet.oci.registry.retry import with_retries
    from pallet.oci.transports import default_transports

    globals_: GlobalOptions = ctx.obj
    context = context_from_flags(flags, globals_)
    reference = default_transports().parse_image_name(image_name)
    with_retries(lambda: reference.delete(context), retry_times)
