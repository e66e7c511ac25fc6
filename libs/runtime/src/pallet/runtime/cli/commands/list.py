"""``pallet-runtime list [--format table|json] [--quiet]``, with runc's columns."""

from __future__ import annotations

import argparse
import json

from pallet.runtime.containers import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", choices=["table", "json"], default="table")
    parser.add_argument("-q", "--quiet", action="store_true", help="print the IDs only")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    states = [record.state() for record in runtime.containers()]
    if args.quiet:
        for state in states:
            print(state["id"])
    elif args.format == "json":
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0
