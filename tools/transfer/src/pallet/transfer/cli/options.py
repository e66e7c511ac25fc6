"""Options shared by several commands, declared once.

``ImageFlags(prefix)`` holds the typer option types of the flags that say
how to reach one image (``--tls-verify``, ``--creds``, ``--authfile``...),
with a prefix for commands that have two images (``--src-``/``--dest-``).
``system_context`` turns the values into a pallet.oci ``SystemContext``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pallet.transfer.cli.goflags import parse_bool

if TYPE_CHECKING:
    from pallet.oci.transports import SystemContext


class ImageFlags:
    """Typer option types for the flags of one image, e.g. ``--src-tls-verify``."""

    def __init__(self, prefix: str = "") -> None:
        p = f"--{prefix}"
        self.tls_verify = Annotated[Optional[str], typer.Option(
            f"{p}tls-verify", metavar="BOOL",
            help="require HTTPS and verify certificates when talking to the registry (default true)")]
        self.cert_dir = Annotated[Optional[Path], typer.Option(
            f"{p}cert-dir", metavar="PATH", help="use certificates at PATH (*.crt, *.cert, *.key) to connect to the registry")]
        self.creds = Annotated[Optional[str], typer.Option(
            f"{p}creds", metavar="USERNAME[:PASSWORD]", help="use USERNAME[:PASSWORD] for accessing the registry")]
        self.username = Annotated[Optional[str], typer.Option(f"{p}username", help="the username for accessing the registry")]
        self.password = Annotated[Optional[str], typer.Option(f"{p}password", help="the password for accessing the registry")]
        self.no_creds = Annotated[bool, typer.Option(f"{p}no-creds", help="access the registry anonymously")]
        self.registry_token = Annotated[Optional[str], typer.Option(
            f"{p}registry-token", metavar="TOKEN", help="provide a Bearer token for accessing the registry")]
        self.authfile = Annotated[Optional[Path], typer.Option(
            f"{p}authfile", metavar="PATH", help="path of the authentication file (default: ${XDG_RUNTIME_DIR}/containers/auth.json)")]


PLAIN = ImageFlags()
SRC = ImageFlags("src-")
DEST = ImageFlags("dest-")

# Flags that take a Go-style boolean value; see goflags.normalize.
TRISTATE_FLAGS = frozenset({"tls-verify", "src-tls-verify", "dest-tls-verify"})


def credentials(creds: str | None, username: str | None, password: str | None, flag: str) -> tuple[str, str] | None:
    """(username, password) from ``--creds`` or ``--username``/``--password``; None when neither."""
    if creds is not None and (username is not None or password is not None):
        raise typer.BadParameter(f"--{flag}creds and --{flag}username/--{flag}password cannot be used together")
    if creds is not None:
        user, colon, secret = creds.partition(":")
        if not user:
            raise typer.BadParameter(f"--{flag}creds: the username is empty")
        if not colon:
            secret = typer.prompt("Password", hide_input=True, err=True)
        return user, secret
    if username is not None:
        if password is None:
            password = typer.prompt("Password", hide_input=True, err=True)
        return username, password
    if password is not None:
        raise typer.BadParameter(f"--{flag}password needs --{flag}username")
    return None


def system_context(
    *,
    tls_verify: str | None,
    cert_dir: Path | None,
    creds: str | None,
    username: str | None,
    password: str | None,
    no_creds: bool,
    registry_token: str | None,
    authfile: Path | None,
    prefix: str = "",
    globals_: GlobalOptions | None = None,
) -> SystemContext:
    from pallet.oci.transports import SystemContext

    user_pass = credentials(creds, username, password, prefix)
    if no_creds and (user_pass is not None or registry_token is not None):
        raise typer.BadParameter(f"--{prefix}no-creds cannot be used with credentials")
    g = globals_ or GlobalOptions()
    return SystemContext(
        tls_verify=None if tls_verify is None else parse_bool(tls_verify, f"--{prefix}tls-verify"),
        cert_dir=cert_dir,
        credentials=user_pass,
        registry_token=registry_token,
        auth_file=authfile,
        no_creds=no_creds,
        registries_conf=g.registries_conf,
        os_choice=g.override_os,
        architecture_choice=g.override_arch,
        variant_choice=g.override_variant,
        tmp_dir=g.tmpdir,
        user_agent=f"pallet-transfer{'/' + g.user_agent_suffix if g.user_agent_suffix else ''}",
    )


@dataclass(frozen=True)
class GlobalOptions:
    """The options given before the subcommand (skopeo's global flags)."""

    debug: bool = False
    insecure_policy: bool = False
    policy: Path | None = None
    override_arch: str | None = None
    override_os: str | None = None
    override_variant: str | None = None
    tmpdir: Path | None = None
    registries_conf: Path | None = None
    user_agent_suffix: str | None = None
    command_timeout: float | None = None


_IMAGE_FLAGS = ("tls_verify", "cert_dir", "creds", "username", "password", "no_creds", "registry_token", "authfile")


def context_from_flags(
    values: Mapping[str, Any], globals_: GlobalOptions, *, prefix: str = "", authfile: Path | None = None
) -> SystemContext:
    """The SystemContext of one image's flags, read from a command's parameters.

    ``values`` is the command's ``locals()``: its ``{prefix}tls_verify``,
    ``{prefix}creds``... parameters (declared with ``ImageFlags``). ``authfile``
    is the shared ``--authfile``, used when ``--{prefix}authfile`` is not given.
    """
    flags = {name: values[f"{prefix}{name}"] for name in _IMAGE_FLAGS}
    flags["authfile"] = flags["authfile"] or authfile
    return system_context(**flags, prefix=prefix.replace("_", "-"), globals_=globals_)


def manifest_format(value: str | None) -> str | None:
    """``--format`` of copy and sync: oci or v2s2 (v2s1, schema1, is refused as deprecated)."""
    if value is None:
        return None
    if value == "v2s1":
        raise typer.BadParameter("v2s1 (Docker schema1) is deprecated and not supported: use oci or v2s2")
    if value not in ("oci", "v2s2"):
        raise typer.BadParameter(f"unknown format {value!r}: use oci or v2s2")
    return value
