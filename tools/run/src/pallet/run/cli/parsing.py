"""argparse, shaped like podman's (cobra) command line.

- ``Usage:`` help headings, no prefix matching of long options (pflag has
  none), and a bad command line raises ``UsageError`` instead of exiting, so
  that ``cli.main`` stays the one place that prints errors and picks the exit
  status; ``-h``/``--help`` raises ``HelpShown`` after printing;
- ``normalize``: Go-style booleans (``--all=false``, ``--quiet=true``), which
  pflag accepts for every boolean flag, rewritten for argparse.

A copy of pallet-transfer's parsing (tools share no code), kept small.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

TRUE_WORDS = {"true", "1", "t", "yes", "y"}
FALSE_WORDS = {"false", "0", "f", "no", "n"}


class UsageError(Exception):
    """The command line is wrong: one ``Error:`` line, then how to get help."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class HelpShown(Exception):
    """``--help`` was given and the help is printed: the command ends successfully."""


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=40, width=120)

    def add_usage(self, usage: str | None, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class _HelpAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002 (argparse's name)
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> NoReturn:
        parser.print_help()
        raise HelpShown()


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting."""

    def __init__(self, prog: str, usage: str, description: str | None = None, epilog: str | None = None) -> None:
        super().__init__(prog=prog, usage=f"{prog} {usage}", description=description, epilog=epilog,
                         formatter_class=_Formatter, add_help=False, allow_abbrev=False)
        self._positionals.title = "Arguments"
        self._optionals.title = "Options"
        self.add_argument("-h", "--help", action=_HelpAction, help="help for this command")

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"See '{self.prog} --help'.")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message.strip() if message else f"exit status {status}", hint=None)

    def switches(self) -> frozenset[str]:
        """The long names (without ``--``) of the true/false flags."""
        return frozenset(option[2:] for action in self._actions if isinstance(action, argparse._StoreTrueAction)
                         for option in action.option_strings if option.startswith("--"))

    def value_options(self) -> frozenset[str]:
        """The option strings that take a value (the next word is theirs)."""
        return frozenset(option for action in self._actions if action.nargs != 0 for option in action.option_strings)


def normalize(args: Iterable[str], switches: frozenset[str]) -> list[str]:
    """``--x=true`` becomes ``--x``, ``--x=false`` is dropped, for the boolean flags ``switches``; stops at ``--``."""
    out: list[str] = []
    passthrough = False
    for arg in args:
        name, equals, value = arg[2:].partition("=")
        if passthrough or not arg.startswith("--") or not equals or name not in switches:
            passthrough = passthrough or arg == "--"
            out.append(arg)
            continue
        word = value.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise UsageError(f"invalid argument {value!r} for \"--{name}\" flag: expected true or false")
        if word in TRUE_WORDS:
            out.append(f"--{name}")
    return out


def split_at_command(args: Sequence[str], value_options: frozenset[str]) -> tuple[list[str], list[str]]:
    """(the options, the command and its arguments) for a subcommand that runs a command (cobra's
    non-interspersed flags): the first word that is not an option, or what follows ``--``, starts the command."""
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "--":
            return list(args[:index]), list(args[index + 1:])
        elif arg in value_options:
            skip = True
        elif not arg.startswith("-") or arg == "-":
            return list(args[:index]), list(args[index:])
    return list(args), []
