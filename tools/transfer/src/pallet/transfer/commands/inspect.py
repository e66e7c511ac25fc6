"""pallet-transfer inspect IMAGE-NAME: what skopeo inspect prints, without pulling."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pallet.transfer.cli.options import PLAIN, GlobalOptions, context_from_flags

if TYPE_CHECKING:
    from pallet.oci.image import ImageView


def command(
    ctx: typer.Context,
    image_name: Annotated[str, typer.Argument(metavar="IMAGE-NAME", help="TRANSPORT:NAME, e.g. docker://busybox")],
    raw: Annotated[bool, typer.Option("--raw", help="output raw manifest or configuration")] = False,
    config: Annotated[bool, typer.Option("--config", help="output configuration")] = False,
    format_: Annotated[Optional[str], typer.Option("--format", "-f", help="format the output using the given Go template")] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", "-n", help="do not list the available tags from the repository in the output")] = False,
    retry_times: Annotated[int, typer.Option("--retry-times", help="the number of times to possibly retry")] = 0,
    tls_verify: PLAIN.tls_verify = None,
    cert_dir: PLAIN.cert_dir = None,
    creds: PLAIN.creds = None,
    username: PLAIN.username = None,
    password: PLAIN.password = None,
    no_creds: PLAIN.no_creds = False,
    registry_token: PLAIN.registry_token = None,
    authfile: PLAIN.authfile = None,
) -> None:
    """Inspect image IMAGE-NAME: its manifest digest, tags, config and layers."""
    flags = dict(locals())  # the image flags, read by context_from_flags
    from pallet.oci.registry.retry import with_retries
    from pallet.oci.image import read_image, read_top_manifest
    from pallet.oci.transports import default_transports

    globals_: GlobalOptions = ctx.obj
    context = context_from_flags(flags, globals_)
    reference = default_transports().parse_image_name(image_name)
    with reference.new_source(context) as source:
        if raw and not config:
            top = with_retries(lambda: read_top_manifest(source), retry_times)
            typer.echo(top.raw, nl=False)  # the bytes exactly as stored
            return
        view = with_retries(lambda: read_image(source, context), retry_times)
        if config:
            typer.echo(view.config.raw if raw else _indented(view.config.model.model_dump(by_alias=True, exclude_none=True, mode="json")), nl=not raw)
            return
        tags = [] if no_tags else (with_retries(source.repository_tags, retry_times) or [])
        info = inspect_info(view, reference.docker_reference(), tags, no_tags)
    if format_ is not None:
        from pallet.transfer.cli.gotemplate import render

        typer.echo(render(format_, info))
    else:
        typer.echo(_indented(info))


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
