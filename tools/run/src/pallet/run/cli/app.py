"""The typer application of pallet-run: global options and the subcommand table."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer

try:
    # typer >= 0.26 carries its own copy of click and raises that copy's exceptions;
    # they are not re-exported, so they are imported from where typer keeps them.
    from typer._click import exceptions as click
except ImportError:  # older typer runs on click itself
    from click import exceptions as click  # type: ignore[no-redef]

from pallet.run import __version__
from pallet.run.cli import exitcodes
from pallet.run.commands import COMMANDS

PROG = "pallet-run"
# A bare `pallet-run` is an error, as it is for skopeo and podman.
BARE_INVOCATION_PRINTS_HELP = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} version {__version__}")
        raise typer.Exit()


@dataclass
class App:
    typer_app: typer.Typer

    def run(self, args: list[str]) -> int:
        try:
            self.typer_app(args=args, prog_name=PROG, standalone_mode=False)
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
        except typer.Exit as exc:
            return exc.exit_code
        except typer.Abort:
            return exitcodes.INTERRUPTED
        return exitcodes.SUCCESS


def build_app() -> App:
    app = typer.Typer(
        name=PROG,
        help="Run containers without a daemon, rootless by default; a command line compatible with podman and docker.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def global_options(
        version: bool = typer.Option(
            False, "--version", "-v", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug output."),
    ) -> None:
        """Run containers without a daemon, rootless by default; a command line compatible with podman and docker."""

    for name, (module, summary) in COMMANDS.items():
        command = importlib.import_module(f"pallet.run.commands.{module}").command
        app.command(name=name, help=summary)(command)
    return App(app)
