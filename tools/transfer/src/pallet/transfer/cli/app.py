"""The typer application of pallet-transfer: global options and the subcommand table.

Arguments are normalised for Go-style booleans first (see goflags), so that
skopeo command lines such as ``copy --src-tls-verify=false --all ...`` work.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

try:
    # typer >= 0.26 carries its own copy of click and raises that copy's exceptions;
    # they are not re-exported, so they are imported from where typer keeps them.
    from typer._click import exceptions as click
except ImportError:  # older typer runs on click itself
    from click import exceptions as click  # type: ignore[no-redef]

from pallet.transfer import __version__
from pallet.transfer.cli import exitcodes, goflags
from pallet.transfer.cli.options import TRISTATE_FLAGS, GlobalOptions
from pallet.transfer.commands import COMMANDS

PROG = "pallet-transfer"
SUMMARY = "Inspect, copy, delete and sync container images between registries and formats."
# A bare `pallet-transfer` is an error, as it is for skopeo and podman.
BARE_INVOCATION_PRINTS_HELP = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} version {__version__}")
        raise typer.Exit()


@dataclass
class App:
    command: Any  # the click group typer built
    switches: frozenset[str]

    def run(self, args: list[str]) -> int:
        try:
            normalized = goflags.normalize(args, self.switches, TRISTATE_FLAGS)
            self.command.main(args=normalized, prog_name=PROG, standalone_mode=False)
        except click.NoArgsIsHelpError as exc:
            if BARE_INVOCATION_PRINTS_HELP:
                typer.echo(exc.ctx.get_help() if exc.ctx else "")
                return exitcodes.SUCCESS
            typer.echo(f"Error: missing command '{PROG} COMMAND'", err=True)
            typer.echo(f"Try '{PROG} --help' for more information.", err=True)
            return exitcodes.USAGE
        except click.UsageError as exc:
            typer.echo(f"Error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                typer.echo(f"See '{exc.ctx.command_path} --help'.", err=True)
            return exitcodes.USAGE
        except goflags.FlagValueError as exc:
            typer.echo(f"Error: {exc}", err=True)
            return exitcodes.USAGE
        except typer.Exit as exc:
            return exc.exit_code
        except typer.Abort:
            return exitcodes.INTERRUPTED
        return exitcodes.SUCCESS


# Global options that take a value: the word after them is not the subcommand.
_GLOBAL_VALUE_OPTIONS = frozenset({
    "--policy", "--override-arch", "--override-os", "--override-variant", "--tmpdir", "--registries-conf",
    "--user-agent-suffix", "--command-timeout",
})


def invoked_command(args: list[str]) -> str | None:
    """The subcommand ``args`` name, if it is a known one (None for --help, a typo...)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_app(args: list[str] | None = None) -> App:
    """The application; with ``args``, only the subcommand they name is built (typer
    builds every parameter of every registered command on each start)."""
    wanted = invoked_command(args) if args is not None else None
    app = typer.Typer(
        name=PROG,
        help=SUMMARY,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def global_options(
        ctx: typer.Context,
        version: bool = typer.Option(
            False, "--version", "-v", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug output."),
        insecure_policy: bool = typer.Option(
            False, "--insecure-policy", help="run the tool without any policy check"),
        policy: Optional[Path] = typer.Option(None, "--policy", help="path to a trust policy file"),
        override_arch: Optional[str] = typer.Option(
            None, "--override-arch", metavar="ARCH", help="use ARCH instead of the architecture of the machine for choosing images"),
        override_os: Optional[str] = typer.Option(
            None, "--override-os", metavar="OS", help="use OS instead of the running OS for choosing images"),
        override_variant: Optional[str] = typer.Option(
            None, "--override-variant", metavar="VARIANT", help="use VARIANT instead of the running architecture variant"),
        tmpdir: Optional[Path] = typer.Option(None, "--tmpdir", help="directory used to store temporary files"),
        registries_conf: Optional[Path] = typer.Option(
            None, "--registries-conf", metavar="PATH", help="use registries.conf at PATH"),
        user_agent_suffix: Optional[str] = typer.Option(
            None, "--user-agent-suffix", help="user agent suffix to add to the user agent"),
        command_timeout: Optional[float] = typer.Option(
            None, "--command-timeout", metavar="SECONDS", help="timeout for the command execution"),
    ) -> None:
        ctx.obj = GlobalOptions(
            debug=debug, insecure_policy=insecure_policy, policy=policy, override_arch=override_arch,
            override_os=override_os, override_variant=override_variant, tmpdir=tmpdir,
            registries_conf=registries_conf, user_agent_suffix=user_agent_suffix, command_timeout=command_timeout,
        )

    for name, (module, summary) in COMMANDS.items():
        if wanted is not None and name != wanted:
            continue
        if wanted is None:  # top-level help or an unknown command: names and summaries suffice
            app.command(name=name, help=summary)(_listed_only)
            continue
        command = importlib.import_module(f"pallet.transfer.commands.{module}").command
        app.command(name=name, help=summary, context_settings={"help_option_names": ["-h", "--help"]})(command)
    group = typer.main.get_command(app)
    return App(group, _switches(group))


def _listed_only() -> None:
    """Stands for a subcommand in the top-level help; never run (a named command is built for real)."""


def _switches(command: Any) -> frozenset[str]:
    """The long names of every boolean flag of the command tree (for goflags)."""
    names: set[str] = set()
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and getattr(param, "is_bool_flag", False):
            names.update(opt[2:] for opt in param.opts if opt.startswith("--"))
    for sub in getattr(command, "commands", {}).values():
        names |= _switches(sub)
    return frozenset(names)
