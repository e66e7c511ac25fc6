"""pallet-runtime: the runc/crun-compatible command line (skeleton).

The subcommands (create, start, state, kill, delete, run, exec, list, ps,
features, spec) arrive with the runtime issue; this answers --help and
--version in the runc format, which conmon and podman parse.
"""

from __future__ import annotations

import argparse
import sys

from pallet.runtime import __version__

RUNTIME_SPEC_VERSION = "1.1.0"
EXIT_FAILURE = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pallet-runtime",
        description="An OCI runtime in Python, compatible with runc's command line.",
    )
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    parser.add_argument("--debug", action="store_true", help="enable debug output")
    parser.add_argument("--root", help="root directory for the state of containers")
    parser.add_argument("--log", help="log file")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="log format")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"pallet-runtime version {__version__}\nspec: {RUNTIME_SPEC_VERSION}")
        return 0
    parser.print_help(sys.stderr)
    return EXIT_FAILURE
