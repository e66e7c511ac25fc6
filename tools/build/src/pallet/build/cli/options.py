"""The global options of pallet-build: the storage flags as buildah names them, and ``--debug``.

The store is resolved as buildah resolves it: storage.conf, ``STORAGE_DRIVER``,
``STORAGE_OPTS`` and the rootless defaults (pallet.storage.config), then the
flags win. ``--storage-opt`` replaces the configured driver options (an
empty value clears them).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pallet.storage.config import StoreOptions

#: Global options that take a value: the word after them is not the subcommand.
GLOBAL_VALUE_OPTIONS = frozenset({"--root", "--runroot", "--storage-driver", "--storage-opt"})


@dataclass(frozen=True)
class GlobalOptions:
    """The options given before (or after) the subcommand."""

    debug: bool = False
    root: str | None = None
    runroot: str | None = None
    storage_driver: str | None = None
    storage_opts: tuple[str, ...] | None = None  # None: not given

    def store_options(self) -> StoreOptions:
        """The store to use: the configured one (or the defaults), with the flags applied."""
        from pallet.storage.config import Host, resolve_store_options, with_overrides

        options = resolve_store_options(Host.current())
        opts = None if self.storage_opts is None else tuple(o for o in self.storage_opts if o)
        return with_overrides(options, root=self.root, runroot=self.runroot, driver=self.storage_driver,
                              driver_options=opts)


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """buildah's storage flags and ``--debug``. ``after_command``: declared on a subcommand, where a value
    given before the subcommand must not be reset by the default."""
    default: Any = argparse.SUPPRESS if after_command else None
    switch: Any = argparse.SUPPRESS if after_command else False
    group = parser.add_argument_group("Global options")
    if not after_command:
        group.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    group.add_argument("--debug", action="store_true", default=switch, help="show tracebacks and debug output")
    group.add_argument("--root", default=default, metavar="PATH",
                       help="path to the graph root directory where images and containers are stored")
    group.add_argument("--runroot", default=default, metavar="PATH",
                       help="path to the 'run directory' where all state information is stored")
    group.add_argument("--storage-driver", default=default, metavar="DRIVER",
                       help="select which storage driver is used to manage storage of images and containers")
    group.add_argument("--storage-opt", dest="storage_opt", action="append", default=default, metavar="OPTION",
                       help="used to pass an option to the storage driver (repeatable)")


def global_options(values: Mapping[str, Any]) -> GlobalOptions:
    """The GlobalOptions among parsed arguments (``vars(args)``)."""
    opts = values.get("storage_opt")
    return GlobalOptions(debug=bool(values.get("debug")), root=values.get("root"), runroot=values.get("runroot"),
                         storage_driver=values.get("storage_driver"),
                         storage_opts=None if opts is None else tuple(opts))
