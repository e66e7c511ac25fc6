"""pallet-run images: list the images of the store, as podman images does.

The default table (REPOSITORY TAG IMAGE ID CREATED SIZE, one row per name,
newest first, podman's column padding), ``-q`` (unique IDs), ``--no-trunc``,
``-a`` (with intermediate images: unnamed ones that another image builds
on), ``-n``, ``--digests``, ``--format json`` (podman's keys, one entry
per row) and an IMAGE to list only the images with a matching name (as
podman: never an ID). Not yet: other ``--format`` templates, ``--filter``.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from pallet.run.cli.options import GlobalOptions
from pallet.run.cli.parsing import UsageError

USAGE = "[OPTIONS] [IMAGE]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", nargs="?",
                        help="only images with a name that matches (a glob, or the end of a name after a /)")
    parser.add_argument("-a", "--all", dest="all_", action="store_true", help="show all images (default hides intermediate images)")
    parser.add_argument("--digests", action="store_true", help="show digests")
    parser.add_argument("--format", metavar="FORMAT", help="'json' for JSON output (templates are not supported yet)")
    parser.add_argument("-n", "--noheading", action="store_true", help="do not print column headings")
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="display only image IDs")


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """List images in local storage."""
    if args.format not in (None, "", "json", "table"):
        raise UsageError(f"--format {args.format!r}: only json is supported")
    summaries = _summaries(globals_, all_=args.all_)
    if args.image:
        summaries = [summary for summary in summaries if matches(args.image, summary["Names"])]
    rows = _rows(summaries)
    if args.quiet:
        ids = dict.fromkeys(_image_id(row["Id"], args.no_trunc) for row in rows)
        print("".join(f"{image_id}\n" for image_id in ids), end="")
    elif args.format == "json":
        print(json.dumps([_json_entry(row) for row in rows], indent=4, ensure_ascii=False))
    else:
        header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
        now = datetime.now(timezone.utc)
        table = [] if args.noheading else [header]
        for row in rows:
            table.append([row["Repository"], row["Tag"], *([row["Digest"]] if args.digests else []),
                          _image_id(row["Id"], args.no_trunc), human_duration(now - row["created_at"]) + " ago",
                          human_size(row["Size"])])
        print(tabulate(table), end="")


def _summaries(globals_: GlobalOptions, *, all_: bool) -> list[dict[str, Any]]:
    """libimage's image summaries, newest first; intermediate images only with ``all_``."""
    from pallet.storage.store import Store

    store = Store.open(globals_.store_options())
    with store.reading() as view:
        images, layers, containers = view.images(), view.layers(), view.containers()
        by_layer = {image.top_layer: image for image in images if image.top_layer}
        parent_layer = {layer.id: layer.parent for layer in layers}
        has_children = {parent_layer.get(image.top_layer, "") for image in images}
        summaries: list[dict[str, Any]] = []
        for image in images:
            parent = by_layer.get(parent_layer.get(image.top_layer, ""))
            if not all_ and not image.names and image.top_layer in has_children:
                continue
            summaries.append({
                "Id": image.id, "ParentId": parent.id if parent else "", "RepoDigests": repo_digests(image.names, image.digests),
                "Size": view.image_size(image.id), "Labels": _labels(view, image.id),
                "Containers": sum(1 for container in containers if container.image == image.id),
                "Dangling": not image.names, "Names": image.names, "Digest": image.digest,
                "History": image.names_history, "created_at": _parse_time(image.created),
            })
    summaries.sort(key=lambda summary: summary["created_at"], reverse=True)
    return summaries


def _rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per tagged name (or one ``<none>`` row), as podman's sortImages makes them."""
    rows = []
    for summary in summaries:
        pairs = [split_name(name) for name in summary["Names"]]
        tagged = [pair for pair in pairs if pair[1] != "<none>"]
        for repository, tag in tagged or pairs[:1] or [("<none>", "<none>")]:
            rows.append({**summary, "Repository": repository, "Tag": tag})
    return rows


def _json_entry(row: dict[str, Any]) -> dict[str, Any]:
    """podman's JSON keys in its order (``Dangling``, ``Names``, ``History`` only when set)."""
    created = int(row["created_at"].timestamp())
    entry: dict[str, Any] = {"Id": row["Id"], "ParentId": row["ParentId"], "RepoTags": None,
                             "RepoDigests": row["RepoDigests"], "Size": row["Size"], "SharedSize": 0,
                             "VirtualSize": row["Size"], "Labels": row["Labels"], "Containers": row["Containers"]}
    for key in ("Dangling", "Names"):
        if row[key]:
            entry[key] = row[key]
    entry["Digest"] = row["Digest"]
    if row["History"]:
        entry["History"] = row["History"]
    entry["Created"] = created
    entry["CreatedAt"] = datetime.fromtimestamp(created).astimezone().isoformat().replace("+00:00", "Z")
    return entry


def _labels(view: Any, image_id: str) -> dict[str, str] | None:
    try:
        config = json.loads(view.image_big_data(image_id, f"sha256:{image_id}"))
    except Exception:  # no config stored (or unreadable): podman shows no labels either
        return None
    labels = (config.get("config") or {}).get("Labels") if isinstance(config, dict) else None
    return labels or None


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
    slash = repository.rfind("/")
    colon = repository.rfind(":")
    if colon > slash:
        return repository[:colon], repository[colon + 1:]
    return repository, "<none>"


def matches(wanted: str, names: list[str]) -> bool:
    """podman's ``images IMAGE`` filter: a glob on a name or its repository, or either's end after a ``/``."""
    from fnmatch import fnmatchcase

    candidates = {candidate for name in names for candidate in (name, split_name(name)[0])}
    return any(fnmatchcase(candidate, wanted) or candidate.endswith("/" + wanted) for candidate in candidates)


def repo_digests(names: list[str], digests: list[str]) -> list[str]:
    """``repository@digest`` for every name and digest, sorted and unique (libimage's RepoDigests)."""
    return sorted({f"{split_name(name)[0]}@{digest}" for name in names for digest in digests})


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


def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3): decimal units, three significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g} {units[index]}"


def tabulate(rows: list[list[str]], minwidth: int = 12, padding: int = 2) -> str:
    """Go's tabwriter as podman sets it up: each column but the last as wide as its widest cell plus padding."""
    if not rows:
        return ""
    widths = [max(minwidth, max(len(row[i]) for row in rows) + padding) for i in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(width) for cell, width in zip(row, widths)) + row[-1] + "\n" for row in rows)
