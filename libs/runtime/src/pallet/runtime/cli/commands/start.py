"""``pallet-runtime start ID``"""

from __future__ import annotations

import argparse

from pallet.runtime.containers import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container_id", metavar="CONTAINER-ID")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    runtime.start(args.container_id)
    return 0
