"""HTTP proxies from the environment, with Go's rules (skopeo honours them).

``HTTPS_PROXY``/``https_proxy`` for https, ``HTTP_PROXY``/``http_proxy`` for
http; ``NO_PROXY``/``no_proxy`` lists hosts, domains (``.example.com`` or
``example.com`` match subdomains too), IPs and CIDRs that go direct, ``*``
for all. As in Go's net/http, ``localhost`` and loopback addresses never go
through a proxy. A proxy without a scheme is taken as ``http://``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping


def proxy_for(scheme: str, host: str, env: Mapping[str, str]) -> str | None:
    """The proxy URL for ``scheme://host[:port]``, or None to connect directly."""
    name = _hostname(host)
    if _is_loopback(name) or _excluded(name, host, _env(env, "NO_PROXY")):
        return None
    proxy = _env(env, "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name) or env.get(name.lower()) or ""


def _hostname(host: str) -> str:
    if host.startswith("["):  # [v6]:port
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _excluded(name: str, host: str, no_proxy: str) -> bool:
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry and _in_network(name, entry):
            return True
        bare = entry.lstrip(".")
        if entry in (name.lower(), host.lower()) or name.lower().endswith("." + bare) or name.lower() == bare:
            return True
    return False


def _in_network(name: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(name) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
