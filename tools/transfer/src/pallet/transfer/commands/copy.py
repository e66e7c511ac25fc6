"""pallet-transfer copy SOURCE-IMAGE DESTINATION-IMAGE: skopeo copy's job."""

from __future__ import annotations

import argparse
from pathlib import Path

from pallet.transfer.cli.options import GlobalOptions, add_image_flags, add_retry_times, context_from_flags, manifest_format
from pallet.transfer.cli.parsing import UsageError

USAGE = "[OPTIONS] SOURCE-IMAGE DESTINATION-IMAGE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("source_image", metavar="SOURCE-IMAGE")
    add("destination_image", metavar="DESTINATION-IMAGE")
    add("-a", "--all", dest="all_", action="store_true", help="copy all images if SOURCE-IMAGE is a list")
    add("--multi-arch", metavar="LIST", help="how to handle multi-architecture images (system, all, or index-only)")
    add("-f", "--format", dest="format_", metavar="MANIFEST-TYPE",
        help="oci or v2s2: the manifest type of the destination (default: the source's, with fallbacks)")
    add("--dest-compress", action="store_true",
        help="compress layers when saving to a directory (the default keeps the source's compression)")
    add("--dest-compress-format", metavar="FORMAT", help="gzip or zstd: the compression of the destination's layers")
    add("--dest-compress-level", type=int, metavar="LEVEL", help="LEVEL to use for the compression")
    add("--dest-decompress", action="store_true", help="decompress layers when saving to a directory")
    add("--dest-oci-accept-uncompressed-layers", action="store_true",
        help="allow uncompressed image layers when saving to an OCI image (default: compress them)")
    add("--preserve-digests", action="store_true", help="preserve digests of images and lists (fail rather than change one)")
    add("-q", "--quiet", action="store_true", help="suppress output information when copying images")
    add("--remove-signatures", action="store_true", help="do not copy signatures from SOURCE-IMAGE")
    add_retry_times(parser)
    add("--image-parallel-copies", type=int, metavar="UINT",
        help="maximum number of image layers to be copied (pulled/pushed) simultaneously")
    add("--additional-tag", action="append", metavar="TAG", help="additional tags (supports docker-archive)")
    add("--digestfile", type=Path, metavar="PATH", help="write the digest of the pushed image to the specified file")
    add("--authfile", type=Path, metavar="PATH", help="path of the authentication file for both images")
    add_image_flags(parser, "src-")
    add_image_flags(parser, "dest-")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Copy an image from one location to another, converting formats and compression as asked."""
    import dataclasses

    from pallet.oci.copy import CopyOptions, Policy, copy_image, load_policy
    from pallet.oci.transports import default_transports

    from pallet.transfer.cli.progress import LineProgress

    flags = vars(args)
    source_context = context_from_flags(flags, globals_, prefix="src_", authfile=args.authfile)
    dest_context = context_from_flags(flags, globals_, prefix="dest_", authfile=args.authfile)
    dest_context = dataclasses.replace(dest_context, docker_archive_additional_tags=tuple(args.additional_tag or ()),
                                       oci_accept_uncompressed_layers=args.dest_oci_accept_uncompressed_layers)
    if args.all_ and args.multi_arch not in (None, "all"):
        raise UsageError("--all and --multi-arch cannot be used together")
    try:
        options = CopyOptions(
            multi_arch="all" if args.all_ else (args.multi_arch or "system"),
            format=manifest_format(args.format_), dest_compression=args.dest_compress_format,
            dest_compression_level=args.dest_compress_level, decompress=args.dest_decompress,
            preserve_digests=args.preserve_digests, retry_times=args.retry_times,
            remove_signatures=args.remove_signatures, source_context=source_context, dest_context=dest_context,
            **({"image_parallel_copies": args.image_parallel_copies} if args.image_parallel_copies else {}),
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    transports = default_transports()
    source_ref = transports.parse_image_name(args.source_image)
    dest_ref = transports.parse_image_name(args.destination_image)
    policy = Policy.accept_anything() if globals_.insecure_policy else load_policy(globals_.policy, context=source_context)
    result = copy_image(source_ref, dest_ref, options, policy=policy, progress=None if args.quiet else LineProgress())
    if args.digestfile is not None:
        args.digestfile.write_text(str(result.manifest_digest))
