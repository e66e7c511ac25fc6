"""The command line of pallet-build: global options and the subcommand table.

Built on argparse, as pallet-transfer is (typer imports pydantic: ~130 ms of
every start). Only the subcommand that is invoked is imported and declared.
Global options go before the subcommand or after it, as buildah's persistent
flags do; Go-style booleans (``--all=false``) are accepted. A command module
with ``INTERSPERSED = False`` (``unshare``) gets every word from its first
non-option argument on as ``args.command``, untouched.
"""

from __future__ import annotations

import importlib
import sys

from pallet.build.cli import exitcodes
from pallet.build.cli.options import GLOBAL_VALUE_OPTIONS, add_global_options, global_options
from pallet.build.cli.parsing import HelpShown, Parser, UsageError, normalize, split_at_command
from pallet.build.commands import COMMANDS

PROG = "pallet-build"
SUMMARY = "Build OCI images from scripts or Containerfiles."


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
        module = importlib.import_module(f"pallet.build.commands.{module_name}")
        parser = Parser(f"{PROG} {word}", module.USAGE, description=(module.run.__doc__ or summary).strip())
        module.add_arguments(parser)
        add_global_options(parser, after_command=True)
        command: list[str] = []
        if not getattr(module, "INTERSPERSED", True):
            after, command = split_at_command(after, parser.value_options())
        namespace = parser.parse_args(normalize([*before, *after], parser.switches()))
        namespace.command = command
        status = module.run(namespace, global_options(vars(namespace)))
    except HelpShown:
        return exitcodes.SUCCESS
    except UsageError as error:
        print(f"Error: {error}", file=sys.stderr)
        if error.hint:
            print(error.hint, file=sys.stderr)
        return exitcodes.USAGE
    return exitcodes.SUCCESS if status is None else int(status)


def _global_parser() -> Parser:
    listing = "\n".join(f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items())
    parser = Parser(PROG, "[OPTIONS] COMMAND [ARGS]...",
                    description=f"{SUMMARY}\n\nCommands:\n{listing}",
                    epilog=f"Use \"{PROG} COMMAND --help\" for more information about a command.")
    add_global_options(parser, after_command=False)
    return parser


def _without_command(before: list[str]) -> int:
    """``--help``, ``--version``, a bad global flag, or nothing at all."""
    from pallet.build import __version__

    parser = _global_parser()
    namespace = parser.parse_args(normalize(before, parser.switches()))
    if namespace.version:
        print(f"{PROG} version {__version__}")
        return exitcodes.SUCCESS
    parser.print_help()  # a bare invocation prints the help and succeeds, as buildah's does
    return exitcodes.SUCCESS
