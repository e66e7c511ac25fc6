"""pallet-transfer sync --src KIND --dest KIND SOURCE DESTINATION: skopeo sync's job,
with the images copied concurrently (``--parallel-images``, a Pallet extension).

Log lines go to stderr as skopeo's do; each image's copy lines are printed
when images are copied one at a time, else one line per image when it is done.
"""

from __future__ import annotations

import argparse
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from pallet.transfer.cli.options import GlobalOptions, add_image_flags, add_retry_times, context_from_flags, manifest_format
from pallet.transfer.cli.parsing import UsageError

if TYPE_CHECKING:
    from pallet.oci.copy import CopyOptions, Policy
    from pallet.transfer.sync_plan import SyncImage

DEFAULT_PARALLEL_IMAGES = 4
USAGE = "[OPTIONS] --src TRANSPORT --dest TRANSPORT SOURCE DESTINATION"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("source", metavar="SOURCE")
    add("destination", metavar="DESTINATION")
    add("-s", "--src", required=True, metavar="TRANSPORT", help="SOURCE transport type: docker, dir or yaml")
    add("-d", "--dest", required=True, metavar="TRANSPORT", help="DESTINATION transport type: docker or dir")
    add("--scoped", action="store_true", help="images at DESTINATION are prefixed using the full source image path as scope")
    add("-a", "--all", dest="all_", action="store_true", help="copy all images if SOURCE-IMAGE is a list")
    add("--dry-run", action="store_true", help="run without actually copying data")
    add("--keep-going", action="store_true", help="do not abort the sync if any image copy fails")
    add("-f", "--format", dest="format_", metavar="MANIFEST-TYPE", help="oci or v2s2")
    add("--preserve-digests", action="store_true", help="preserve digests of images and lists")
    add("--remove-signatures", action="store_true", help="do not copy signatures from SOURCE images")
    add_retry_times(parser)
    add("--parallel-images", type=int, default=DEFAULT_PARALLEL_IMAGES, metavar="INT",
        help=f"images copied at the same time (Pallet extension; default {DEFAULT_PARALLEL_IMAGES})")
    add("-q", "--quiet", action="store_true", help="suppress output information when copying images")
    add_image_flags(parser, "src-")
    add_image_flags(parser, "dest-")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Synchronize one or more images from one location to another."""
    from pallet.oci.copy import CopyOptions, Policy, load_policy
    from pallet.oci.transports import default_transports

    from pallet.transfer.sync_plan import plan_sync

    flags = vars(args)
    source_context = context_from_flags(flags, globals_, prefix="src_")
    dest_context = context_from_flags(flags, globals_, prefix="dest_")
    if args.parallel_images < 1:
        raise UsageError("--parallel-images must be at least 1")
    transports = default_transports()
    plan = plan_sync(args.src, args.source, args.dest, args.destination, scoped=args.scoped, context=source_context,
                     transports=transports, retry_times=args.retry_times)
    verb = "Would have synced" if args.dry_run else "Synced"
    if not args.dry_run:
        options = CopyOptions(
            multi_arch="all" if args.all_ else "system", format=manifest_format(args.format_),
            preserve_digests=args.preserve_digests, remove_signatures=args.remove_signatures,
            retry_times=args.retry_times, source_context=source_context, dest_context=dest_context,
        )
        policy = Policy.accept_anything() if globals_.insecure_policy else load_policy(globals_.policy, context=source_context)
        failures = _copy_all(plan.images, options, policy, args.parallel_images, keep_going=args.keep_going,
                             quiet=args.quiet)
    else:
        for number, image in enumerate(plan.images, 1):
            _log(f"Would have copied image ref {number}/{len(plan.images)} from={image.source} to={image.destination}")
        failures = 0
    _log(f"{verb} {len(plan.images) - failures} images from {plan.sources} sources")
    if failures:
        raise RuntimeError(f"{failures} of {len(plan.images)} images could not be synced")


_LOG_LOCK = threading.Lock()


def _log(line: str) -> None:
    """One whole line on stderr (images are copied from several threads)."""
    with _LOG_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _copy_all(images: tuple[SyncImage, ...], options: CopyOptions, policy: Policy, parallel: int,
              *, keep_going: bool, quiet: bool) -> int:
    """Copy every image, ``parallel`` at a time; the number that failed (raises the first without keep_going).

    Images bound for one repository share blobs often (tags of one image
    history): the copies share a ``BlobGate``, so that one blob is not
    uploaded into one repository twice at the same time (distribution 2.8
    loses such a blob); different blobs stream concurrently.
    """
    import dataclasses

    from pallet.oci.copy import BlobGate

    total = len(images)
    numbered = list(enumerate(images, 1))
    if parallel == 1 or total <= 1:
        return sum(_copy_one(i, image, total, options, policy, keep_going, quiet, verbose=True) for i, image in numbered)
    shared = dataclasses.replace(options, blob_gate=BlobGate())
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sync") as pool:
        futures = [pool.submit(_copy_one, i, image, total, shared, policy, keep_going, quiet, verbose=False)
                   for i, image in numbered]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            future.result()  # raises the first failure (without keep_going)
        return sum(future.result() for future in futures if not future.cancelled())


def _copy_one(number: int, image: SyncImage, total: int, options: CopyOptions, policy: Policy,
              keep_going: bool, quiet: bool, *, verbose: bool) -> int:
    import dataclasses

    from pallet.oci.copy import copy_image
    from pallet.oci.errors import OciError

    from pallet.transfer.cli.progress import LineProgress

    _log(f"Copying image ref {number}/{total} from={image.source} to={image.destination}")
    progress = LineProgress() if verbose and not quiet else None
    try:
        copy_image(image.source, image.destination, dataclasses.replace(options, source_context=image.source_context),
                   policy=policy, progress=progress)
    except OciError as error:
        if not keep_going:
            raise
        _log(f"Error: copying image ref {number}/{total} from {image.source}: {error}")
        return 1
    if not verbose and not quiet:
        _log(f"Copied image ref {number}/{total} to={image.destination}")
    return 0
