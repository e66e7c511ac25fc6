"""pallet-transfer copy SOURCE-IMAGE DESTINATION-IMAGE: skopeo copy's job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pallet.transfer.cli.options import DEST, SRC, GlobalOptions, context_from_flags, manifest_format


def command(
    ctx: typer.Context,
    source_image: Annotated[str, typer.Argument(metavar="SOURCE-IMAGE")],
    destination_image: Annotated[str, typer.Argument(metavar="DESTINATION-IMAGE")],
    all_: Annotated[bool, typer.Option("--all", "-a", help="copy all images if SOURCE-IMAGE is a list")] = False,
    multi_arch: Annotated[Optional[str], typer.Option("--multi-arch", help="how to handle multi-architecture images (system, all, or index-only)")] = None,
    format_: Annotated[Optional[str], typer.Option("--format", "-f", metavar="MANIFEST TYPE", help="oci or v2s2: the manifest type of the destination (default: the source's, with fallbacks)")] = None,
    dest_compress: Annotated[bool, typer.Option("--dest-compress", help="compress layers when saving to a directory (the default keeps the source's compression)")] = False,
    dest_compress_format: Annotated[Optional[str], typer.Option("--dest-compress-format", metavar="FORMAT", help="gzip or zstd: the compression of the destination's layers")] = None,
    dest_compress_level: Annotated[Optional[int], typer.Option("--dest-compress-level", metavar="LEVEL", help="LEVEL to use for the compression")] = None,
    dest_decompress: Annotated[bool, typer.Option("--dest-decompress", help="decompress layers when saving to a directory")] = False,
    dest_oci_accept_uncompressed_layers: Annotated[bool, typer.Option("--dest-oci-accept-uncompressed-layers", help="allow uncompressed image layers when saving to an OCI image (default: compress them)")] = False,
    preserve_digests: Annotated[bool, typer.Option("--preserve-digests", help="preserve digests of images and lists (fail rather than change one)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="suppress output information when copying images")] = False,
    remove_signatures: Annotated[bool, typer.Option("--remove-signatures", help="do not copy signatures from SOURCE-IMAGE")] = False,
    retry_times: Annotated[int, typer.Option("--retry-times", help="the number of times to possibly retry")] = 0,
    image_parallel_copies: Annotated[Optional[int], typer.Option("--image-parallel-copies", help="maximum number of image layers to be copied (pulled/pushed) simultaneously")] = None,
    additional_tag: Annotated[Optional[list[str]], typer.Option("--additional-tag", help="additional tags (supports docker-archive)")] = None,
    digestfile: Annotated[Optional[Path], typer.Option("--digestfile", help="write the digest of the pushed image to the specified file")] = None,
    authfile: Annotated[Optional[Path], typer.Option("--authfile", help="path of the authentication file for both images")] = None,
    src_tls_verify: SRC.tls_verify = None, src_cert_dir: SRC.cert_dir = None, src_creds: SRC.creds = None,
    src_username: SRC.username = None, src_password: SRC.password = None, src_no_creds: SRC.no_creds = False,
    src_registry_token: SRC.registry_token = None, src_authfile: SRC.authfile = None,
    dest_tls_verify: DEST.tls_verify = None, dest_cert_dir: DEST.cert_dir = None, dest_creds: DEST.creds = None,
    dest_username: DEST.username = None, dest_password: DEST.password = None, dest_no_creds: DEST.no_creds = False,
    dest_registry_token: DEST.registry_token = None, dest_authfile: DEST.authfile = None,
) -> None:
    """Copy an image from one location to another, converting formats and compression as asked."""
    flags = dict(locals())  # the image flags, read by context_from_flags
    import dataclasses

    from pallet.oci.copy import CopyOptions, Policy, copy_image, load_policy
    from pallet.oci.transports import default_transports

    from pallet.transfer.cli.progress import LineProgress

    globals_: GlobalOptions = ctx.obj
    source_context = context_from_flags(flags, globals_, prefix="src_", authfile=authfile)
    dest_context = context_from_flags(flags, globals_, prefix="dest_", authfile=authfile)
    dest_context = dataclasses.replace(dest_context, docker_archive_additional_tags=tuple(additional_tag or ()),
                                       oci_accept_uncompressed_layers=dest_oci_accept_uncompressed_layers)
    if all_ and multi_arch not in (None, "all"):
        raise typer.BadParameter("--all and --multi-arch cannot be used together")
    try:
        options = CopyOptions(
            multi_arch="all" if all_ else (multi_arch or "system"),  # type: ignore[arg-type]
            format=manifest_format(format_), dest_compression=dest_compress_format,  # type: ignore[arg-type]
            dest_compression_level=dest_compress_level, decompress=dest_decompress, preserve_digests=preserve_digests,
            retry_times=retry_times, remove_signatures=remove_signatures, source_context=source_context,
            dest_context=dest_context, **({"image_parallel_copies": image_parallel_copies} if image_parallel_copies else {}),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    transports = default_transports()
    source_ref = transports.parse_image_name(source_image)
    dest_ref = transports.parse_image_name(destination_image)
    policy = Policy.accept_anything() if globals_.insecure_policy else load_policy(globals_.policy, context=source_context)
    result = copy_image(source_ref, dest_ref, options, policy=policy, progress=None if quiet else LineProgress())
    if digestfile is not None:
        digestfile.write_text(str(result.manifest_digest))
