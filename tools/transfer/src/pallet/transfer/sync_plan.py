"""What ``sync`` copies: the images a source names, and where each one goes.

As skopeo 1.9's sync:

- ``--src docker``: SOURCE is a repository (``registry.example.com/busybox``):
  every tag, or only the tag or digest SOURCE names.
- ``--src dir``: SOURCE is a directory; every directory below it that holds a
  ``manifest.json`` is one image (``dir:`` format).
- ``--src yaml``: SOURCE is a YAML file: registry -> ``images`` (repository ->
  list of tags or digests; an empty list means every tag),
  ``images-by-tag-regex`` (repository -> regular expression), and per
  registry ``tls-verify``, ``cert-dir`` and ``credentials`` (``username``,
  ``password``).

Each image gets a destination suffix: the last component of its name with its
tag (``busybox:1.36``), or with ``--scoped`` the whole name
(``registry.example.com/busybox:1.36``); for ``--src dir`` the path below
SOURCE. ``--dest docker`` puts it at ``DESTINATION/SUFFIX`` in a registry,
``--dest dir`` in the directory ``DESTINATION/SUFFIX``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pallet.oci.reference import Reference
    from pallet.oci.transports import ImageReference, SystemContext, Transports

SOURCE_KINDS = ("docker", "dir", "yaml")
DEST_KINDS = ("docker", "dir")


class SyncPlanError(ValueError):
    """SOURCE or the YAML file cannot be turned into a list of images."""


@dataclass(frozen=True)
class SyncImage:
    """One image to copy: where from (with the context to read it) and where to."""

    source: ImageReference
    source_context: SystemContext
    destination: ImageReference


@dataclass(frozen=True)
class SyncPlan:
    images: tuple[SyncImage, ...]
    sources: int  # repositories or directories named, for "Synced N images from M sources"


def plan_sync(
    source_kind: str, source: str, dest_kind: str, destination: str, *,
    scoped: bool, context: SystemContext, transports: Transports, retry_times: int = 0,
) -> SyncPlan:
    if source_kind not in SOURCE_KINDS:
        raise SyncPlanError(f"unknown --src {source_kind!r} (docker, dir or yaml)")
    if dest_kind not in DEST_KINDS:
        raise SyncPlanError(f"unknown --dest {dest_kind!r} (docker or dir)")
    if source_kind == "docker":
        found = _docker_images(source, context, scoped, retry_times)
        count = 1
    elif source_kind == "dir":
        found = _dir_images(Path(source), transports)
        count = 1
    else:
        found, count = _yaml_images(Path(source), context, scoped, retry_times)
    images: dict[tuple[str, str], SyncImage] = {}
    for ref, ctx, suffix in found:  # the same image named twice (a list and a regex) is copied once
        image = SyncImage(ref, ctx, _destination(dest_kind, destination, suffix, transports))
        images.setdefault((str(image.source), str(image.destination)), image)
    return SyncPlan(tuple(images.values()), count)


Found = list[tuple["ImageReference", "SystemContext", str]]


def _destination(kind: str, destination: str, suffix: str, transports: Transports) -> ImageReference:
    if kind == "docker":
        return transports.parse_image_name(f"docker://{destination.rstrip('/')}/{suffix}")
    return transports.parse_image_name(f"dir:{Path(destination) / suffix}")


def _suffix(ref: Reference, scoped: bool) -> str:
    text = str(ref)  # domain/path[:tag][@digest]
    return text if scoped else text.rsplit("/", 1)[-1]


def _docker_images(source: str, context: SystemContext, scoped: bool, retry_times: int) -> Found:
    from pallet.oci.reference import parse_normalized

    from pallet.transfer.repositories import repository_tags

    ref = parse_normalized(source.removeprefix("docker://"))
    if ref.tag is not None or ref.digest is not None:
        refs = [ref]
    else:
        refs = [ref.with_tag(tag) for tag in repository_tags(ref, context, retry_times)]
    return [(_docker_reference(r), context, _suffix(r, scoped)) for r in refs]


def _docker_reference(ref: Reference) -> ImageReference:
    from pallet.oci.transports.docker import DockerReference

    return DockerReference(ref)


def _dir_images(root: Path, transports: Transports) -> Found:
    from pallet.oci.transports import SystemContext

    if not root.is_dir():
        raise SyncPlanError(f"{root} is not a directory")
    found: Found = []
    for manifest in sorted(root.rglob("manifest.json")):
        image_dir = manifest.parent
        suffix = image_dir.relative_to(root).as_posix() if image_dir != root else root.name
        found.append((transports.parse_image_name(f"dir:{image_dir}"), SystemContext(), suffix))
    return found


def _yaml_images(path: Path, base: SystemContext, scoped: bool, retry_times: int) -> tuple[Found, int]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SyncPlanError(f"reading {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SyncPlanError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', None) or error}") from error
    if not isinstance(document, dict):
        raise SyncPlanError(f"{path}: expected a mapping of registries")
    found: Found = []
    sources = 0
    for registry, config in document.items():
        if not isinstance(config, dict):
            raise SyncPlanError(f"{path}: {registry}: expected a mapping")
        context = _registry_context(base, config, f"{path}: {registry}")
        for repository, refs in _yaml_repositories(registry, config, context, retry_times, f"{path}: {registry}"):
            sources += 1
            found += [(_docker_reference(r), context, _suffix(r, scoped)) for r in refs]
    return found, sources


def _registry_context(base: SystemContext, config: dict[str, Any], where: str) -> SystemContext:
    changes: dict[str, Any] = {}
    if "tls-verify" in config:
        if not isinstance(config["tls-verify"], bool):
            raise SyncPlanError(f"{where}: tls-verify must be true or false")
        changes["tls_verify"] = config["tls-verify"]
    if "cert-dir" in config:
        changes["cert_dir"] = Path(str(config["cert-dir"]))
    credentials = config.get("credentials")
    if credentials is not None:
        if not isinstance(credentials, dict) or not {"username", "password"} <= set(credentials):
            raise SyncPlanError(f"{where}: credentials need username and password")
        changes["credentials"] = (str(credentials["username"]), str(credentials["password"]))
    return dataclasses.replace(base, **changes)


def _yaml_repositories(
    registry: str, config: dict[str, Any], context: SystemContext, retry_times: int, where: str
) -> list[tuple[str, list[Reference]]]:
    from pallet.oci.reference import parse_normalized

    from pallet.transfer.repositories import repository_tags

    result: list[tuple[str, list[Reference]]] = []
    for repository, wanted in (config.get("images") or {}).items():
        ref = parse_normalized(f"{registry}/{repository}")
        if wanted in (None, []):
            refs = [ref.with_tag(tag) for tag in repository_tags(ref, context, retry_times)]
        elif isinstance(wanted, list):
            refs = [_tag_or_digest(ref, str(item)) for item in wanted]
        else:
            raise SyncPlanError(f"{where}: images.{repository} must be a list of tags or digests")
        result.append((repository, refs))
    for repository, pattern in (config.get("images-by-tag-regex") or {}).items():
        ref = parse_normalized(f"{registry}/{repository}")
        try:
            regex = re.compile(str(pattern))
        except re.error as error:
            raise SyncPlanError(f"{where}: images-by-tag-regex.{repository}: {error}") from error
        tags = [tag for tag in repository_tags(ref, context, retry_times) if regex.search(tag)]
        result.append((repository, [ref.with_tag(tag) for tag in tags]))
    return result


def _tag_or_digest(ref: Reference, item: str) -> Reference:
    from pallet.oci.digest import Digest

    if ":" in item and item.split(":", 1)[0] in ("sha256", "sha512"):
        return ref.with_digest(Digest.parse(item))
    return ref.with_tag(item)
