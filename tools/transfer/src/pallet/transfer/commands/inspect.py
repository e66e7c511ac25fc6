"""pallet-transfer inspect IMAGE-NAME: what skopeo inspect prints, without pulling."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from pallet.transfer.cli.options import GlobalOptions, add_image_flags, add_retry_times, context_from_flags

if TYPE_CHECKING:
    from pallet.oci.image import ImageView

USAGE = "[OPTIONS] IMAGE-NAME"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_name", metavar="IMAGE-NAME", help="TRANSPORT:NAME, e.g. docker://busybox")
    parser.add_argument("--raw", action="store_true", help="output raw manifest or configuration")
    parser.add_argument("--config", action="store_true", help="output configuration")
    parser.add_argument("-f", "--format", dest="format_", metavar="FORMAT", help="format the output using the given Go template")
    parser.add_argument("-n", "--no-tags", action="store_true",
                        help="do not list the available tags from the repository in the output")
    add_retry_times(parser)
    add_image_flags(parser)


def run(args: argparse.Namespace, globals_: GlobalOptions) -> None:
    """Inspect image IMAGE-NAME: its manifest digest, tags, config and layers."""
    from pallet.oci.image import read_image, read_top_manifest
    from pallet.oci.registry.retry import with_retries
    from pallet.oci.transports import default_transports

    retry_times: int = args.retry_times
    context = context_from_flags(vars(args), globals_)
    reference = default_transports().parse_image_name(args.image_name)
    with reference.new_source(context) as source:
        if args.raw and not args.config:
            top = with_retries(lambda: read_top_manifest(source), retry_times)
            _write_bytes(top.raw)  # the bytes exactly as stored
            return
        view = with_retries(lambda: read_image(source, context), retry_times)
        if args.config:
            if args.raw:
                _write_bytes(view.config.raw)
            else:
                print(_indented(view.config.model.model_dump(by_alias=True, exclude_none=True, mode="json")))
            return
        tags = [] if args.no_tags else (with_retries(source.repository_tags, retry_times) or [])
        info = inspect_info(view, reference.docker_reference(), tags, args.no_tags)
    if args.format_ is not None:
        from pallet.transfer.cli.gotemplate import render

        print(render(args.format_, info))
    else:
        print(_indented(info))


def _write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def inspect_info(view: ImageView, docker_reference: Any, tags: list[str], no_tags: bool) -> dict[str, Any]:
    """The keys and order of skopeo 1.9's inspect output."""
    cfg = view.config.model
    execution = getattr(cfg, "config", None)
    info: dict[str, Any] = {}
    if docker_reference is not None:
        info["Name"] = docker_reference.name
    info["Digest"] = str(view.top.digest)
    info["RepoTags"] = tags
    info["Created"] = cfg.created or "0001-01-01T00:00:00Z"
    info["DockerVersion"] = getattr(cfg, "docker_version", None) or ""
    info["Labels"] = (execution.labels if execution is not None else None) or None
    info["Architecture"] = cfg.architecture
    info["Os"] = cfg.os
    info["Layers"] = [str(layer.digest) for layer in view.manifest.model.layers]  # type: ignore[union-attr]
    info["Env"] = list(execution.env) if execution is not None and execution.env else None
    return info


def _indented(value: Any) -> str:
    return json.dumps(value, indent=4, ensure_ascii=False)
