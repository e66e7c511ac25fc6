"""``pallet-runtime delete [--force] ID``"""

from __future__ import annotations

import argparse

from pallet.runtime.containers import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container_id", metavar="CONTAINER-ID")
    parser.add_argument("-f", "--force", action="store_true", help="kill a running container first")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    runtime.delete(args.container_id, force=args.force)
    return 0
