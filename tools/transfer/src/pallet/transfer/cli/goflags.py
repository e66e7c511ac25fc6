"""Go-style boolean flags on top of argparse, so skopeo command lines work as written.

skopeo (cobra/pflag) accepts ``--raw``, ``--raw=true`` and ``--raw=false``
for every boolean, and a bare ``--tls-verify`` for a boolean whose default
depends on the system. argparse does not: ``normalize`` rewrites the argument
list before argparse sees it.

- ``SWITCHES`` (default false): ``--x=true`` becomes ``--x``; ``--x=false`` is dropped.
- ``TRISTATES`` (default "system default", declared as options taking a
  value): a bare ``--x`` becomes ``--x=true``.
"""

from __future__ import annotations

from collections.abc import Iterable

TRUE_WORDS = {"true", "1", "t", "yes", "y"}
FALSE_WORDS = {"false", "0", "f", "no", "n"}


class FlagValueError(ValueError):
    """A Go-style boolean flag was given a value that is not a boolean."""


def parse_bool(value: str, flag: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise FlagValueError(f"invalid argument {value!r} for {flag}: expected true or false")


def normalize(args: Iterable[str], switches: frozenset[str], tristates: frozenset[str]) -> list[str]:
    """Rewrite Go-style boolean flags into the forms argparse parses; stops at ``--``."""
    out: list[str] = []
    passthrough = False
    for arg in args:
        if passthrough or not arg.startswith("--"):
            out.append(arg)
            continue
        if arg == "--":
            passthrough = True
            out.append(arg)
            continue
        name, equals, value = arg[2:].partition("=")
        if name in switches and equals:
            if parse_bool(value, f"--{name}"):
                out.append(f"--{name}")
        elif name in tristates and not equals:
            out.append(f"--{name}=true")
        else:
            out.append(arg)
    return out
