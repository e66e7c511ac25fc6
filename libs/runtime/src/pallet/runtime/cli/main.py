"""The parser, the command table and the one place errors become exit statuses.

Global options are runc's (``--root``, ``--log``, ``--log-format``, ``--debug``,
``--systemd-cgroup``, ``--rootless``). Each subcommand is a module of
``pallet.runtime.cli.commands`` with ``add_arguments`` and ``run``; the table
below loads it only when named. An :class:`OciRuntimeError` is printed as one
line, ``pallet-runtime: <message>``, on stderr and, with ``--log``, appended to
the log (JSON objects with ``level``, ``msg`` and ``time`` under
``--log-format json``, which conmon reads), and the status is 1.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import sys
import traceback
from typing import TYPE_CHECKING, Protocol

from pallet.runtime import __version__
from pallet.runtime.errors import OciRuntimeError

if TYPE_CHECKING:  # the runtime (pydantic, the spec models) loads only when a command runs
    from pallet.runtime.containers import Runtime

RUNTIME_SPEC_VERSION = "1.1.0"
EXIT_FAILURE = 1

# name -> one-line summary; the module is pallet.runtime.cli.commands.<name>
COMMANDS: dict[str, str] = {
    "create": "create a container (its process waits for start)",
    "start": "run the program of a created container",
    "state": "print the state of a container as JSON",
    "kill": "send a signal to the container's init process",
    "delete": "delete a stopped container (--force: any)",
    "run": "create and start a container, and wait for it",
    "exec": "run a new process in a running container",
    "list": "list the containers under --root",
    "ps": "list the processes of a container",
    "spec": "write a default config.json",
    "features": "print the features of the runtime as JSON",
}


class Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, runtime: Runtime) -> int: ...


def _command(name: str) -> Command:
    module = importlib.import_module(f"pallet.runtime.cli.commands.{name}")
    return module


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pallet-runtime",
        description="An OCI runtime in Python, compatible with runc's command line.",
    )
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    parser.add_argument("--debug", action="store_true", help="enable debug output")
    parser.add_argument("--root", help="root directory for the state of containers")
    parser.add_argument("--log", help="log file (errors are appended to it)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="log format")
    parser.add_argument("--systemd-cgroup", action="store_true", help="accepted for runc compatibility")
    parser.add_argument("--rootless", default="auto", help="accepted for runc compatibility")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    wanted = next((arg for arg in argv if arg in COMMANDS), None)
    for name, summary in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=summary, description=summary)
        if name == wanted:
            _command(name).add_arguments(subparser)
    return parser


def _log(args: argparse.Namespace, message: str) -> None:
    if not args.log:
        return
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f'time="{now}" level=error msg={json.dumps(message)}'
    try:
        with open(args.log, "a") as stream:
            stream.write(line + "\n")
    except OSError as error:
        print(f"pallet-runtime: cannot write the log {args.log}: {error.strerror}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = _parser(arguments)
    args = parser.parse_args(arguments)
    if args.version:
        print(f"pallet-runtime version {__version__}\nspec: {RUNTIME_SPEC_VERSION}")
        return 0
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return EXIT_FAILURE
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="pallet-runtime: %(levelname)s: %(message)s")
    try:
        from pallet.runtime.containers import Runtime

        return _command(args.subcommand).run(args, Runtime.at(args.root))
    except OciRuntimeError as error:
        message = str(error)
        _log(args, message)
        print(f"pallet-runtime: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - a bug: one line, the traceback only with --debug
        if args.debug:
            traceback.print_exc()
        message = f"internal error: {type(error).__name__}: {error}"
        _log(args, message)
        print(f"pallet-runtime: {message}", file=sys.stderr)
        return EXIT_FAILURE
