"""What ``pallet-runtime features`` reports (the runtime spec's features document)."""

from __future__ import annotations

from typing import Any

from pallet.runtime.capabilities import CAPABILITY_NAMES
from pallet.runtime.mount_options import mount_option_names
from pallet.runtime.namespaces import NAMESPACE_FLAGS


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": [],
        "mountOptions": mount_option_names(),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": list(CAPABILITY_NAMES),
            "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.version": "1.1.0"},
    }
