"""``pallet-runtime ps [--format table|json] ID [PS-ARGS...]``: as runc, the table is the
host's ``ps`` (``-ef`` unless PS-ARGS are given) cut down to the container's processes."""

from __future__ import annotations

import argparse
import json
import subprocess

from pallet.runtime.containers import Runtime
from pallet.runtime.errors import OciRuntimeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", choices=["table", "json"], default="table")
    parser.add_argument("container_id", metavar="CONTAINER-ID")
    parser.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS-ARGS")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    pids = runtime.pids(args.container_id)
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    try:
        output = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise OciRuntimeError(f"ps: {error}") from None
    lines = output.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise OciRuntimeError("ps: its output has no PID column")
    column = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0
