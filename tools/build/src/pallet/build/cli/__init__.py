"""The command line of pallet-build: the run wrapper is the one exit point."""

from __future__ import annotations

import sys

from pallet.build.cli import exitcodes


def main(argv: list[str] | None = None) -> int:
    """Run pallet-build and return its exit status; errors become one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if args in (["--version"], ["-v"]):
        # answered before anything else is imported: scripts call this often
        from pallet.build import __version__

        print(f"pallet-build version {__version__}")
        return exitcodes.SUCCESS
    try:
        from pallet.build.cli.app import run

        return run(args)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error of ours
        _silence_stdout()
        return exitcodes.SUCCESS
    except Exception as exc:  # the one place that turns exceptions into an exit status
        if debug:  # the traceback, then the same line and status as without --debug
            import traceback

            traceback.print_exc()
        print(f"Error: {_describe(exc)}", file=sys.stderr)
        return exitcodes.for_exception(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
