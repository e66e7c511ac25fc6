"""``pallet-runtime exec [options] ID COMMAND [ARG...]`` or ``exec --process FILE ID``: runc's flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pallet.oci.spec.runtime import Process, User
from pallet.runtime.containers import ExecOptions, Runtime
from pallet.runtime.errors import OciRuntimeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--process", help="a JSON file with the process to run (as config.json's)")
    parser.add_argument("-e", "--env", action="append", default=[], help="add an environment variable K=V")
    parser.add_argument("--cwd", help="the working directory in the container")
    parser.add_argument("-u", "--user", help="UID[:GID] in the container")
    parser.add_argument("-g", "--additional-gids", action="append", type=int, default=[], help="another group")
    parser.add_argument("-c", "--cap", action="append", default=[], help="add a capability")
    parser.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    parser.add_argument("-d", "--detach", action="store_true", help="do not wait for the process")
    parser.add_argument("--pid-file", help="write the process's PID to this file")
    parser.add_argument("--preserve-fds", type=int, default=0, help="pass N descriptors after stdio (3, 4...)")
    parser.add_argument("-t", "--tty", action="store_true", help="a terminal (not supported yet)")
    parser.add_argument("--console-socket", help="accepted for runc compatibility (terminal: not supported yet)")
    parser.add_argument("container_id", metavar="CONTAINER-ID")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def _user(text: str | None, additional: list[int]) -> User | None:
    if text is None:
        return User(uid=0, gid=0, additional_gids=tuple(additional)) if additional else None
    uid, _, gid = text.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise OciRuntimeError(f"--user {text!r}: expected UID[:GID] as numbers")
    return User(uid=int(uid), gid=int(gid or 0), additional_gids=tuple(additional) or None)


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    if args.tty:
        raise OciRuntimeError("exec --tty is not supported yet")
    process = None
    if args.process:
        try:
            process = Process.model_validate_json(Path(args.process).read_bytes())
        except (OSError, ValueError) as error:  # pydantic's ValidationError is a ValueError
            raise OciRuntimeError(f"--process {args.process}: {error}") from None
    options = ExecOptions(
        args=tuple(args.command), process=process, env=tuple(args.env), cwd=args.cwd,
        user=_user(args.user, args.additional_gids), capabilities=tuple(args.cap),
        no_new_privileges=args.no_new_privs,
        pid_file=Path(os.path.abspath(args.pid_file)) if args.pid_file else None, preserve_fds=args.preserve_fds,
    )
    return runtime.exec(args.container_id, options, detach=args.detach)
