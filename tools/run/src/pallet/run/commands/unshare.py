"""pallet-run unshare [COMMAND [ARG...]]: run a command in the rootless user namespace, as podman unshare.

The command gets podman's environment (pallet.storage.userns.command):
``_CONTAINERS_USERNS_CONFIGURED``, ``_CONTAINERS_ROOTLESS_UID``/``GID``,
``CONTAINERS_GRAPHROOT``/``CONTAINERS_RUNROOT`` of the store the global
flags name, ``TMPDIR``, ``XDG_CONFIG_HOME``; no command runs ``$SHELL``.
Exit status as podman 4.3's: the command's; 255 when it was killed by a
signal; 127 when it is not found, 126 when it cannot be executed; 125 for
podman's own errors (no command and no $SHELL, run as root).
"""

from __future__ import annotations

import argparse

from pallet.run.cli.exitcodes import KILLED
from pallet.run.cli.options import GlobalOptions

USAGE = "[OPTIONS] [COMMAND [ARG...]]"
INTERSPERSED = False  # the command's own flags are its own


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags of its own (the command and its arguments follow the first word that is not an option)."""


def run(args: argparse.Namespace, globals_: GlobalOptions) -> int:
    """Run a command in a modified user namespace."""
    import os

    from pallet.storage.userns.command import unshare

    store = globals_.store_options() if os.geteuid() != 0 else None  # as root it is refused first, as podman does
    return unshare(args.command, style="podman", store=store, killed_status=KILLED)
