"""``pallet-runtime state ID``: the runtime spec's state object, indented as runc prints it."""

from __future__ import annotations

import argparse
import json

from pallet.runtime.containers import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container_id", metavar="CONTAINER-ID")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    print(json.dumps(runtime.state(args.container_id), indent=2))
    return 0
