"""``pallet-runtime features``"""

from __future__ import annotations

import argparse
import json

from pallet.runtime.containers import Runtime
from pallet.runtime.features import features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    print(json.dumps(features(), indent=2))
    return 0
