"""``pallet-runtime kill [--all] ID [SIGNAL]``: SIGNAL as ``TERM``, ``SIGTERM`` or ``15``."""

from __future__ import annotations

import argparse
import signal

from pallet.runtime.containers import Runtime
from pallet.runtime.errors import OciRuntimeError


def parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper() if text.upper().startswith("SIG") else f"SIG{text.upper()}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise OciRuntimeError(f"unknown signal {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container_id", metavar="CONTAINER-ID")
    parser.add_argument("signal", nargs="?", default="SIGTERM")
    parser.add_argument("-a", "--all", action="store_true", help="signal every process of the container")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    runtime.kill(args.container_id, parse_signal(args.signal), all_processes=args.all)
    return 0
