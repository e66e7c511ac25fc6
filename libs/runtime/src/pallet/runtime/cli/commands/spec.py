"""``pallet-runtime spec [--bundle DIR] [--rootless]``: write crun's default config.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pallet.runtime.containers import Runtime
from pallet.runtime.default_spec import default_spec
from pallet.runtime.errors import OciRuntimeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-b", "--bundle", default=".", help="where to write config.json")
    parser.add_argument("--rootless", action="store_true", help="a configuration for unprivileged use")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    path = Path(args.bundle) / "config.json"
    try:
        with open(path, "x") as stream:
            json.dump(default_spec(rootless=args.rootless), stream, indent="\t")
            stream.write("\n")
    except FileExistsError:
        raise OciRuntimeError(f"{path}: exists already; remove it first") from None
    except OSError as error:
        raise OciRuntimeError(f"{path}: {error.strerror}") from None
    return 0
