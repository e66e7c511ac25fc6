"""Options shared by several commands, declared once.

``add_image_flags(parser, prefix)`` declares the flags that say how to reach
one image (``--tls-verify``, ``--creds``, ``--authfile``...), with a prefix
for commands that have two images (``--src-``/``--dest-``).
``add_global_options`` declares skopeo's global flags; they are accepted
before the subcommand and after it, as skopeo's persistent flags are.
``context_from_flags`` turns parsed values into a pallet.oci ``SystemContext``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet.transfer.cli.goflags import parse_bool
from pallet.transfer.cli.parsing import UsageError

if TYPE_CHECKING:
    from pallet.oci.transports import SystemContext


def add_image_flags(parser: argparse.ArgumentParser, prefix: str = "", *, authfile: bool = True) -> None:
    """The flags of one image, e.g. ``--src-tls-verify``; their values land in ``{prefix}tls_verify``..."""
    p = f"--{prefix}"
    group = parser.add_argument_group(f"{prefix.rstrip('-') or 'image'} registry options")
    group.add_argument(f"{p}tls-verify", metavar="BOOL",
                       help="require HTTPS and verify certificates when talking to the registry (default true)")
    group.add_argument(f"{p}cert-dir", metavar="PATH", type=Path,
                       help="use certificates at PATH (*.crt, *.cert, *.key) to connect to the registry")
    group.add_argument(f"{p}creds", metavar="USERNAME[:PASSWORD]", help="use USERNAME[:PASSWORD] for accessing the registry")
    group.add_argument(f"{p}username", metavar="STRING", help="the username for accessing the registry")
    group.add_argument(f"{p}password", metavar="STRING", help="the password for accessing the registry")
    group.add_argument(f"{p}no-creds", action="store_true", help="access the registry anonymously")
    group.add_argument(f"{p}registry-token", metavar="TOKEN", help="provide a Bearer token for accessing the registry")
    if authfile:
        group.add_argument(f"{p}authfile", metavar="PATH", type=Path,
                           help="path of the authentication file (default: ${XDG_RUNTIME_DIR}/containers/auth.json)")


def add_retry_times(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retry-times", type=int, default=0, metavar="INT", help="the number of times to possibly retry")


# Flags that take a Go-style boolean value; see goflags.normalize.
TRISTATE_FLAGS = frozenset({"tls-verify", "src-tls-verify", "dest-tls-verify"})


def credentials(creds: str | None, username: str | None, password: str | None, flag: str) -> tuple[str, str] | None:
    """(username, password) from ``--creds`` or ``--username``/``--password``; None when neither."""
    if creds is not None and (username is not None or password is not None):
        raise UsageError(f"--{flag}creds and --{flag}username/--{flag}password cannot be used together")
    if creds is not None:
        user, colon, secret = creds.partition(":")
        if not user:
            raise UsageError(f"--{flag}creds: the username is empty")
        if not colon:
            secret = prompt("Password: ", secret=True)
        return user, secret
    if username is not None:
        if password is None:
            password = prompt("Password: ", secret=True)
        return username, password
    if password is not None:
        raise UsageError(f"--{flag}password needs --{flag}username")
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
        raise UsageError(f"--{prefix}no-creds cannot be used with credentials")
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
    """The SystemContext of one image's flags, read from a command's parsed arguments.

    ``values`` is ``vars(args)``: its ``{prefix}tls_verify``, ``{prefix}creds``...
    (declared with ``add_image_flags``). ``authfile``
    is the shared ``--authfile``, used when ``--{prefix}authfile`` is not given.
    """
    flags = {name: values.get(f"{prefix}{name}") for name in _IMAGE_FLAGS}
    flags["no_creds"] = bool(flags["no_creds"])
    flags["authfile"] = flags["authfile"] or authfile
    return system_context(**flags, prefix=prefix.replace("_", "-"), globals_=globals_)


def manifest_format(value: str | None) -> str | None:
    """``--format`` of copy and sync: oci or v2s2 (v2s1, schema1, is refused as deprecated)."""
    if value is None:
        return None
    if value == "v2s1":
        raise UsageError("v2s1 (Docker schema1) is deprecated and not supported: use oci or v2s2")
    if value not in ("oci", "v2s2"):
        raise UsageError(f"unknown format {value!r}: use oci or v2s2")
    return value


def prompt(text: str, *, secret: bool = False) -> str:
    """A line typed at ``text`` on the terminal (not echoed when ``secret``), or a line of stdin
    when stdin is not a terminal (scripts pipe passwords in)."""
    import sys

    if secret and sys.stdin.isatty():
        import getpass

        return getpass.getpass(text)
    sys.stderr.write(text)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"no {text.strip(': ').lower()} given (stdin is closed)")
    return line.rstrip("\r\n")


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """skopeo's global flags. ``after_command``: declared on a subcommand, where a value given
    before the subcommand must not be reset by the default."""
    default: Any = argparse.SUPPRESS if after_command else None
    switch: Any = argparse.SUPPRESS if after_command else False
    group = parser.add_argument_group("Global options")
    if not after_command:
        group.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    group.add_argument("--debug", action="store_true", default=switch, help="show tracebacks and debug output")
    group.add_argument("--insecure-policy", action="store_true", default=switch,
                       help="run the tool without any policy check")
    group.add_argument("--policy", type=Path, default=default, metavar="PATH", help="path to a trust policy file")
    group.add_argument("--override-arch", default=default, metavar="ARCH",
                       help="use ARCH instead of the architecture of the machine for choosing images")
    group.add_argument("--override-os", default=default, metavar="OS",
                       help="use OS instead of the running OS for choosing images")
    group.add_argument("--override-variant", default=default, metavar="VARIANT",
                       help="use VARIANT instead of the running architecture variant for choosing images")
    group.add_argument("--tmpdir", type=Path, default=default, metavar="PATH", help="directory used to store temporary files")
    group.add_argument("--registries-conf", type=Path, default=default, metavar="PATH", help="use registries.conf at PATH")
    group.add_argument("--user-agent-suffix", default=default, metavar="STRING",
                       help="user agent suffix to add to the user agent")
    group.add_argument("--command-timeout", type=float, default=default, metavar="SECONDS",
                       help="timeout for the command execution")


#: Global options that take a value: the word after them is not the subcommand.
GLOBAL_VALUE_OPTIONS = frozenset({
    "--policy", "--override-arch", "--override-os", "--override-variant", "--tmpdir", "--registries-conf",
    "--user-agent-suffix", "--command-timeout",
})


def global_options(values: Mapping[str, Any]) -> GlobalOptions:
    """The GlobalOptions among parsed arguments (``vars(args)``)."""
    return GlobalOptions(
        debug=bool(values.get("debug")), insecure_policy=bool(values.get("insecure_policy")),
        policy=values.get("policy"), override_arch=values.get("override_arch"),
        override_os=values.get("override_os"), override_variant=values.get("override_variant"),
        tmpdir=values.get("tmpdir"), registries_conf=values.get("registries_conf"),
        user_agent_suffix=values.get("user_agent_suffix"), command_timeout=values.get("command_timeout"),
    )
