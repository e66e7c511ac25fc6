"""The options ``create`` and ``run`` share, and the CreateOptions they build."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pallet.runtime.containers import CreateOptions


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container_id", metavar="CONTAINER-ID")
    parser.add_argument("-b", "--bundle", default=".", help="the bundle directory (default: the current one)")
    parser.add_argument("--pid-file", help="write the container process's PID to this file")
    parser.add_argument("--console-socket", help="AF_UNIX socket that receives the terminal's master")
    parser.add_argument("--preserve-fds", type=int, default=0, help="pass N descriptors after stdio (3, 4...)")
    parser.add_argument("--no-pivot", action="store_true", help="accepted for runc compatibility")
    parser.add_argument("--no-new-keyring", action="store_true", help="accepted for runc compatibility")


def create_options(args: argparse.Namespace) -> CreateOptions:
    return CreateOptions(
        bundle=Path(os.path.abspath(args.bundle)),
        pid_file=Path(os.path.abspath(args.pid_file)) if args.pid_file else None,
        console_socket=Path(os.path.abspath(args.console_socket)) if args.console_socket else None,
        preserve_fds=args.preserve_fds,
    )
