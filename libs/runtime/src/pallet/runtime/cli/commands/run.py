"""``pallet-runtime run [--bundle DIR] [--detach] ID``: create, start and wait; the container's
exit status (128 + signal when killed) is the command's."""

from __future__ import annotations

import argparse

from pallet.runtime.cli.commands._create_options import add_create_arguments, create_options
from pallet.runtime.containers import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_create_arguments(parser)
    parser.add_argument("-d", "--detach", action="store_true", help="return once the container has started")
    parser.add_argument("--keep", action="store_true", help="accepted for runc compatibility")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    return runtime.run(args.container_id, create_options(args), detach=args.detach)
