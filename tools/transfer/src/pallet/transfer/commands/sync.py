"""pallet-transfer sync --src KIND --dest KIND SOURCE DESTINATION: skopeo sync's job,
with the images copied concurrently (``--parallel-images``, a Pallet extension).

Log lines go to stderr as skopeo's do; each image's copy lines are printed
when images are copied one at a time, else one line per image when it is done.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from pallet.transfer.cli.options import DEST, SRC, GlobalOptions, context_from_flags, manifest_format

if TYPE_CHECKING:
    from pallet.oci.copy import CopyOptions, Policy
    from pallet.transfer.sync_plan import SyncImage

DEFAULT_PARALLEL_IMAGES = 4


def command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SOURCE")],
    destination: Annotated[str, typer.Argument(metavar="DESTINATION")],
    src: Annotated[str, typer.Option("--src", "-s", help="SOURCE transport type: docker, dir or yaml")] = ...,  # type: ignore[assignment]
    dest: Annotated[str, typer.Option("--dest", "-d", help="DESTINATION transport type: docker or dir")] = ...,  # type: ignore[assignment]
    scoped: Annotated[bool, typer.Option("--scoped", help="images at DESTINATION are prefixed using the full source image path as scope")] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="copy all images if SOURCE-IMAGE is a list")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="run without actually copying data")] = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="do not abort the sync if any image copy fails")] = False,
    format_: Annotated[Optional[str], typer.Option("--format", "-f", metavar="MANIFEST TYPE", help="oci or v2s2")] = None,
    preserve_digests: Annotated[bool, typer.Option("--preserve-digests", help="preserve digests of images and lists")] = False,
    remove_signatures: Annotated[bool, typer.Option("--remove-signatures", help="do not copy signatures from SOURCE images")] = False,
    retry_times: Annotated[int, typer.Option("--retry-times", help="the number of times to possibly retry")] = 0,
    parallel_images: Annotated[int, typer.Option("--parallel-images", help="images copied at the same time (Pallet extension)")] = DEFAULT_PARALLEL_IMAGES,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="suppress output information when copying images")] = False,
    src_tls_verify: SRC.tls_verify = None, src_cert_dir: SRC.cert_dir = None, src_creds: SRC.creds = None,
    src_username: SRC.username = None, src_password: SRC.password = None, src_no_creds: SRC.no_creds = False,
    src_registry_token: SRC.registry_token = None, src_authfile: SRC.authfile = None,
    dest_tls_verify: DEST.tls_verify = None, dest_cert_dir: DEST.cert_dir = None, dest_creds: DEST.creds = None,
    dest_username: DEST.username = None, dest_password: DEST.password = None, dest_no_creds: DEST.no_creds = False,
    dest_registry_token: DEST.registry_token = None, dest_authfile: DEST.authfile = None,
) -> None:
    """Synchronize one or more images from one location to another."""
    flags = dict(locals())  # the image flags, read by context_from_flags
    from pallet.oci.copy import CopyOptions, Policy, load_policy
    from pallet.oci.transports import default_transports

    from pallet.transfer.sync_plan import plan_sync

    globals_: GlobalOptions = ctx.obj
    source_context = context_from_flags(flags, globals_, prefix="src_")
    dest_context = context_from_flags(flags, globals_, prefix="dest_")
    if parallel_images < 1:
        raise typer.BadParameter("--parallel-images must be at least 1")
    transports = default_transports()
    plan = plan_sync(src, source, dest, destination, scoped=scoped, context=source_context,
                     transports=transports, retry_times=retry_times)
    verb = "Would have synced" if dry_run else "Synced"
    if not dry_run:
        options = CopyOptions(
            multi_arch="all" if all_ else "system", format=manifest_format(format_),  # type: ignore[arg-type]
            preserve_digests=preserve_digests, remove_signatures=remove_signatures, retry_times=retry_times,
            source_context=source_context, dest_context=dest_context,
        )
        policy = Policy.accept_anything() if globals_.insecure_policy else load_policy(globals_.policy, context=source_context)
        failures = _copy_all(plan.images, options, policy, parallel_images, keep_going=keep_going, quiet=quiet)
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

    Images bound for the same repository are copied one after another: a
    registry handles concurrent mounts and uploads of one blob into one
    repository badly (distribution 2.8 rewrites the blob link non-atomically).
    """
    total = len(images)
    numbered = list(enumerate(images, 1))
    if parallel == 1 or total <= 1:
        return sum(_copy_one(i, image, total, options, policy, keep_going, quiet, verbose=True) for i, image in numbered)
    groups: dict[str, list[tuple[int, SyncImage]]] = {}
    for number, image in numbered:
        destination = image.destination.docker_reference()
        groups.setdefault(destination.name if destination is not None else str(image.destination), []).append((number, image))

    def copy_group(group: list[tuple[int, SyncImage]]) -> int:
        return sum(_copy_one(i, image, total, options, policy, keep_going, quiet, verbose=False) for i, image in group)

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sync") as pool:
        futures = [pool.submit(copy_group, group) for group in groups.values()]
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
