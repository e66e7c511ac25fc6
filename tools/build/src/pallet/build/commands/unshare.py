"""pallet-build unshare [COMMAND [ARG...]]: run a command in the rootless user namespace, as buildah unshare.

The command gets buildah's environment (pallet.storage.userns.command):
``_CONTAINERS_USERNS_CONFIGURED``, ``_CONTAINERS_ROOTLESS_UID``/``GID``,
``BUILDAH_ISOLATION=rootless`` and ``TMPDIR`` when unset; no command runs
``$SHELL``. Exit status as buildah 1.28's: the command's; 1 when it was
killed by a signal, cannot be executed, or there is no command and no
$SHELL, and as root (cli.exitcodes).
"""

from __future__ import annotations

import argparse

from pallet.build.cli.exitcodes import UNSHARE_FAILED
from pallet.build.cli.options import GlobalOptions

USAGE = "[OPTIONS] [COMMAND [ARG...]]"
INTERSPERSED = False  # the command's own flags are its own


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags of its own (buildah's --mount needs containers, which pallet-build does not have yet)."""


def run(args: argparse.Namespace, globals_: GlobalOptions) -> int:
    """Run a command in a modified user namespace."""
    from pallet.storage.userns.command import unshare

    return unshare(args.command, style="buildah", killed_status=UNSHARE_FAILED)
