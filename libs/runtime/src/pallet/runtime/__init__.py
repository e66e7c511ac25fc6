"""pallet.runtime: an OCI runtime in Python (see README.md).

The public names below load on first use, so that ``pallet-runtime --version``
and the CLI's table of commands stay cheap::

    from pallet.runtime import CreateOptions, Runtime
    Runtime.at("/run/pallet-runtime").run("web", CreateOptions(bundle=Path("bundle")))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "BundleError": "errors",
    "ContainerExists": "errors",
    "ContainerNotFound": "errors",
    "ContainerRecord": "state",
    "ContainerSetupFailed": "errors",
    "CreateOptions": "containers",
    "ExecOptions": "containers",
    "HookFailed": "errors",
    "InvalidContainerID": "errors",
    "KernelCallFailed": "errors",
    "OciRuntimeError": "errors",
    "Runtime": "containers",
    "StateCorrupt": "errors",
    "WrongStatus": "errors",
    "load_bundle": "bundle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
