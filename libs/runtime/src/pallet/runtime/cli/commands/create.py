"""``pallet-runtime create [--bundle DIR] [--pid-file F] [--preserve-fds N] ID``"""

from __future__ import annotations

import argparse

from pallet.runtime.cli.commands._create_options import add_create_arguments, create_options
from pallet.runtime.containers import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_create_arguments(parser)


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    runtime.create(args.container_id, create_options(args))
    return 0
