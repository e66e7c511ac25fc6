"""pallet-build images: list the images of the store, as buildah images does.

The table (REPOSITORY TAG IMAGE ID CREATED SIZE, one row per name, newest
first, buildah's column padding and sizes), ``--json`` (buildah's keys, one
entry per image), ``-q``, ``--no-trunc``, ``-a`` (with intermediate images:
unnamed ones that another image builds on), ``-n``, ``--digests`` and an
IMAGE to list only that one (an error when there is none). As
buildah 1.28: the table and ``-q`` are newest first, ``--json`` is in the
store's order and its ``history`` is always null. Not yet: ``--format``
templates, ``--history``, ``--filter``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from pallet.build.cli.options import GlobalOptions
from pallet.build.cli.parsing import UsageError

USAGE = "[OPTIONS] [IMAGE]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", nargs="?", help="only this image (a name, short name or ID prefix)")
    parser.add_argument("-a", "--all", dest="all_", action="store_true",
                        help="show all images, including intermediate images from a build")
    parser.add_argument("--digests", action="store_true", help="show digests")
    parser.add_argument("--format", metavar="FORMAT", help="pretty-print images using a Go template (not supported yet)")
    parser.add_argument("--json", action="store_true", help="output in JSON format")
    parser.add_argument("-n", "--noheading", action="store_true", help="do not print column headings")
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="display only image IDs")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """List images in local storage."""
    if args.format:
        raise UsageError("--format templates are not supported yet: use --json")
    stored = _images(globals_, all_=args.all_)
    if args.image:
        stored = [image for image in stored if matches(args.image, image["id"], image["names"])]
        if not stored:
            raise ImageUnknown(f"{args.image}: image not known")
    images = sorted(stored, key=lambda image: image["created_at"], reverse=True)
    now = datetime.now(timezone.utc)
    if args.json:
        print(json.dumps([_json_entry(image, now, args) for image in stored], indent=4, ensure_ascii=False))
    elif args.quiet:
        print("".join(f"{_image_id(image['id'], args.no_trunc)}\n" for image in images), end="")
    else:
        header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
        table = [] if args.noheading else [header]
        for image in images:
            for repository, tag in [split_name(name) for name in image["names"]] or [("<none>", "<none>")]:
                table.append([repository, tag, *([image["digest"]] if args.digests else []),
                              _image_id(image["id"], args.no_trunc),
                              human_duration(now - image["created_at"]) + " ago", formatted_size(image["size"])])
        print(tabulate(table), end="")


def _images(globals_: GlobalOptions, *, all_: bool) -> list[dict[str, Any]]:
    """The store's images in its order; intermediate images only with ``all_``."""
    from pallet.storage.store import Store

    store = Store.open(globals_.store_options())
    with store.reading() as view:
        images, layers = view.images(), view.layers()
        parent_layer = {layer.id: layer.parent for layer in layers}
        has_children = {parent_layer.get(image.top_layer, "") for image in images}
        found = [{"id": image.id, "names": image.names, "digest": image.digest,
                  "created": image.created, "created_at": _parse_time(image.created), "size": view.image_size(image.id)}
                 for image in images if all_ or image.names or image.top_layer not in has_children]
    return found


def _json_entry(image: dict[str, Any], now: datetime, args: argparse.Namespace) -> dict[str, Any]:
    return {"id": _image_id(image["id"], args.no_trunc), "names": image["names"] or None, "digest": image["digest"],
            "createdat": human_duration(now - image["created_at"]) + " ago", "size": formatted_size(image["size"]),
            "created": int(image["created_at"].timestamp()), "createdatraw": image["created"], "readonly": False,
            "history": None}


class ImageUnknown(LookupError):
    """``images IMAGE`` names no image of the store (buildah exits 125)."""


def matches(wanted: str, image_id: str, names: list[str]) -> bool:
    """buildah's lookup of ``images IMAGE``: an ID prefix, or a name (``:latest`` when untagged), short or full."""
    if len(wanted) >= 3 and image_id.startswith(wanted.removeprefix("sha256:")):
        return True
    tagged = wanted if "@" in wanted or split_name(wanted)[1] != "<none>" else f"{wanted}:latest"
    return any(name == tagged or name.endswith("/" + tagged) for name in names)


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime(1, 1, 1, tzinfo=timezone.utc)


def _image_id(image_id: str, no_trunc: bool) -> str:
    return f"sha256:{image_id}" if no_trunc else image_id[:12]


def split_name(name: str) -> tuple[str, str]:
    """(repository, tag) of a stored name; ``<none>`` for a name without a tag (a digest reference)."""
    repository = name.split("@", 1)[0]
    if name != repository:
        return repository, "<none>"
    slash, colon = repository.rfind("/"), repository.rfind(":")
    return (repository[:colon], repository[colon + 1:]) if colon > slash else (repository, "<none>")


def human_duration(delta: Any) -> str:
    """go-units HumanDuration."""
    seconds = int(delta.total_seconds())
    hours = int(delta.total_seconds() / 3600 + 0.5)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    if seconds // 60 == 1:
        return "About a minute"
    if seconds // 60 < 60:
        return f"{seconds // 60} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{seconds // 3600 // 24 // 365} years"


def formatted_size(size: float) -> str:
    """buildah's formattedSize: decimal units up to TB, three significant digits, ``KB``."""
    suffixes = ["B", "KB", "MB", "GB", "TB"]
    index = 0
    while size >= 1000 and index < len(suffixes) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g} {suffixes[index]}"


def tabulate(rows: list[list[str]], padding: int = 3) -> str:
    """Go's tabwriter as buildah sets it up: each column but the last as wide as its widest cell plus 3."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) + padding for i in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(width) for cell, width in zip(row, widths)) + row[-1] + "\n" for row in rows)
