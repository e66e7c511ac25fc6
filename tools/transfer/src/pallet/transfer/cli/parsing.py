"""argparse, shaped like skopeo's command line.

- ``Usage:`` help headings, no prefix matching of long options (pflag has
  none), and a bad command line raises ``UsageError`` instead of exiting, so
  that ``cli.main`` stays the one place that prints errors and picks the exit
  status;
- ``-h``/``--help`` raises ``HelpShown`` after printing;
- ``switches(parser)``: the long names of its boolean flags, for goflags.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn


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

    def _split_lines(self, text: str, width: int) -> list[str]:
        return text.splitlines() if "\n" in text else super()._split_lines(text, width)


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


def switches(parser: argparse.ArgumentParser) -> frozenset[str]:
    """The long names (without ``--``) of the parser's true/false flags."""
    names: set[str] = set()
    for action in parser._actions:  # argparse has no public accessor for its actions
        if isinstance(action, argparse._StoreTrueAction):
            names.update(option[2:] for option in action.option_strings if option.startswith("--"))
    return frozenset(names)
