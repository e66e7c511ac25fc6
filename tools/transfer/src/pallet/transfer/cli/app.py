"""The command line of pallet-transfer: global options and the subcommand table.

Built on argparse rather than typer: typer 0.29 imports pydantic to coerce
parameters, which cost about 130 ms of every start (skopeo's whole ``inspect``
takes 30 ms); scripts call pallet-transfer in loops. Only the subcommand that
is invoked is imported and declared.

Arguments are normalised for Go-style booleans first (see goflags), so that
skopeo command lines such as ``copy --src-tls-verify=false --all ...`` work.
Global options go before the subcommand or after it, as skopeo's persistent
flags do.
"""

from __future__ import annotations

import importlib
import sys

from pallet.transfer.cli import exitcodes, goflags
from pallet.transfer.cli.options import GLOBAL_VALUE_OPTIONS, TRISTATE_FLAGS, add_global_options, global_options
from pallet.transfer.cli.parsing import HelpShown, Parser, UsageError, switches
from pallet.transfer.commands import COMMANDS

PROG = "pallet-transfer"
SUMMARY = "Inspect, copy, delete and sync container images between registries and formats."


def split_command(args: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global arguments before the subcommand, the subcommand word or None, the rest)."""
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in GLOBAL_VALUE_OPTIONS:
            skip = True
        elif arg == "--":
            break
        elif not arg.startswith("-"):
            return args[:index], arg, args[index + 1:]
    return args, None, []


def run(args: list[str]) -> int:
    """Parse ``args`` and run the subcommand they name; returns the exit status.

    Usage errors are printed here; other errors propagate to ``cli.main``.
    """
    try:
        before, word, after = split_command(args)
        if word is None:
            return _without_command(before)
        if word not in COMMANDS:
            raise UsageError(f"unrecognized command `{PROG} {word}`", hint=f"Try '{PROG} --help' for more information.")
        module_name, summary = COMMANDS[word]
        module = importlib.import_module(f"pallet.transfer.commands.{module_name}")
        parser = Parser(f"{PROG} {word}", module.USAGE, description=(module.run.__doc__ or summary).strip())
        module.add_arguments(parser)
        add_global_options(parser, after_command=True)
        normalized = goflags.normalize([*before, *after], switches(parser), TRISTATE_FLAGS)
        namespace = parser.parse_args(normalized)
        module.run(namespace, global_options(vars(namespace)))
    except HelpShown:
        return exitcodes.SUCCESS
    except (UsageError, goflags.FlagValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        hint = getattr(error, "hint", None)
        if hint:
            print(hint, file=sys.stderr)
        return exitcodes.USAGE
    return exitcodes.SUCCESS


def _global_parser() -> Parser:
    listing = "\n".join(f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items())
    parser = Parser(PROG, "[OPTIONS] COMMAND [ARGS]...",
                    description=f"{SUMMARY}\n\nCommands:\n{listing}",
                    epilog=f"Use \"{PROG} COMMAND --help\" for more information about a command.")
    add_global_options(parser, after_command=False)
    return parser


def _without_command(before: list[str]) -> int:
    """``--help``, ``--version``, a bad global flag, or nothing at all."""
    from pallet.transfer import __version__

    parser = _global_parser()
    namespace = parser.parse_args(goflags.normalize(before, switches(parser), TRISTATE_FLAGS))
    if namespace.version:
        print(f"{PROG} version {__version__}")
        return exitcodes.SUCCESS
    # a bare invocation is an error, as it is for skopeo and podman
    raise UsageError(f"missing command '{PROG} COMMAND'", hint=f"Try '{PROG} --help' for more information.")
