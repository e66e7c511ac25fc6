"""Process attributes of the container process, set after pivot_root: hostname, sysctls,
rlimits, the OOM score, and the lookup of the executable in the container's PATH; and the
descriptors a container's or an exec'd process may inherit."""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from pallet.oci.spec.runtime import Rlimit
from pallet.runtime import kernel as k
from pallet.runtime.errors import BundleError, KernelCallFailed

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def close_inherited_fds(preserve_fds: int) -> None:
    """Mark every inherited descriptor above stdio and the ``preserve_fds`` after it close-on-exec:
    the caller's other descriptors (a host file or directory) must not reach the container."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= 3 + preserve_fds:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the descriptor of the listing itself, closed already


def set_names(hostname: str | None, domainname: str | None, has_uts_namespace: bool) -> None:
    if (hostname or domainname) and not has_uts_namespace:
        raise BundleError("hostname and domainname need a uts namespace")
    if hostname:
        k.sethostname(hostname)
    if domainname:
        k.setdomainname(domainname)


def write_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            path.write_text(value)
        except OSError as error:
            raise KernelCallFailed("write", error.errno or 0, str(path), f"sysctl {key}={value}") from None


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        Path("/proc/self/oom_score_adj").write_text(str(value))
    except OSError as error:
        raise KernelCallFailed("write", error.errno or 0, "/proc/self/oom_score_adj", f"oomScoreAdj {value}") from None


def set_rlimits(rlimits: tuple[Rlimit, ...]) -> None:
    """setrlimit each limit. Raising a hard limit needs CAP_SYS_RESOURCE; without it the
    error says which limit, what was asked and what the current hard limit is."""
    for limit in rlimits:
        number = getattr(resource, limit.type, None)
        if number is None:
            raise BundleError(f"process.rlimits: {limit.type} is not a resource limit of this system")
        soft = resource.RLIM_INFINITY if limit.soft >= 2**64 - 1 else limit.soft
        hard = resource.RLIM_INFINITY if limit.hard >= 2**64 - 1 else limit.hard
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as error:
            current = resource.getrlimit(number)[1]
            shown = "unlimited" if current == resource.RLIM_INFINITY else str(current)
            code = error.errno if isinstance(error, OSError) and error.errno else errno.EPERM
            raise KernelCallFailed(
                "setrlimit", code, detail=f"{limit.type} soft {limit.soft} hard {limit.hard}; the hard limit "
                f"here is {shown} and raising it needs CAP_SYS_RESOURCE"
            ) from None


def find_executable(name: str, env: tuple[str, ...]) -> str:
    """The path ``execve`` will run for ``args[0]``, looked up in the container's PATH."""
    if "/" in name:
        candidates = [name]
    else:
        path = next((item[5:] for item in env if item.startswith("PATH=")), DEFAULT_PATH)
        candidates = [os.path.join(directory or ".", name) for directory in path.split(":")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    where = "" if "/" in name else " in $PATH"
    raise BundleError(f"executable file `{name}` not found{where}: No such file or directory")


def home_directory(uid: int, passwd: str = "/etc/passwd") -> str:
    """The home directory of ``uid`` in the container's /etc/passwd, or ``/``."""
    try:
        with open(passwd) as stream:
            for line in stream:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def environment(env: tuple[str, ...], uid: int) -> dict[str, str]:
    """The process environment: ``env`` as given, and ``HOME`` from /etc/passwd when it
    sets none (as runc and crun do). Call after pivot_root."""
    result: dict[str, str] = {}
    for item in env:
        name, _, value = item.partition("=")
        result[name] = value
    if "HOME" not in result:
        result["HOME"] = home_directory(uid)
    return result
