"""The config's seccomp filter, built and loaded with libseccomp (through ctypes), as crun does.

:func:`load_seccomp` turns ``linux.seccomp`` into a filter: the default
action, the architectures, one rule per syscall name (names this libseccomp
does not know are left out, as runc does; a rule whose action is the default
is left out, as libseccomp refuses it), argument conditions (conditions on the
same argument become separate rules, which libseccomp ORs), and the flags
``SECCOMP_FILTER_FLAG_LOG`` and ``SPEC_ALLOW``. The filter never sets
no_new_privs itself: the runtime sets it when the config asks, and without it
loads the filter while it still holds CAP_SYS_ADMIN. ``SCMP_ACT_NOTIFY``
(a listener) is not supported.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes

from pallet.oci.spec.runtime import Seccomp, Syscall
from pallet.runtime.errors import BundleError, KernelCallFailed

_ARCHES = {
    "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0x4000003E,
    "SCMP_ARCH_ARM": 0x40000028, "SCMP_ARCH_AARCH64": 0xC00000B7,
}
_OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
_ATTR_CTL_NNP = 3
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _open_libseccomp() -> ctypes.CDLL | None:
    try:
        library = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_release.argtypes = [ctypes.c_void_p]
    library.seccomp_load.argtypes = [ctypes.c_void_p]
    library.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
    return library


# loaded when pallet.runtime imports this module: after pivot_root the library is out of reach
_libseccomp = _open_libseccomp()


def action_code(action: str, errno_ret: int | None) -> int:
    """libseccomp's code of an ``SCMP_ACT_*`` action."""
    codes = {
        "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
        "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
        "SCMP_ACT_ERRNO": 0x00050000 | ((errno_codes.EPERM if errno_ret is None else errno_ret) & 0xFFFF),
        "SCMP_ACT_TRACE": 0x7FF00000 | ((errno_codes.EPERM if errno_ret is None else errno_ret) & 0xFFFF),
    }
    if action not in codes:
        raise BundleError(f"linux.seccomp: action {action} is not supported")
    return codes[action]


def _check(result: int, what: str) -> None:
    if result < 0:
        raise KernelCallFailed(f"seccomp {what}", -result)


def _conditions(syscall: Syscall) -> list[list[_ArgCmp]]:
    """The argument conditions of a rule, split so that no argument appears twice in one rule."""
    groups: list[list[_ArgCmp]] = [[]]
    for arg in syscall.args or ():
        compare = _ArgCmp(arg.index, _OPERATORS[arg.op], arg.value, arg.value_two or 0)
        if any(existing.arg == arg.index for existing in groups[-1]):
            groups.append([candidate for candidate in groups[-1] if candidate.arg != arg.index])
        groups[-1].append(compare)
    return groups


def load_seccomp(config: Seccomp) -> None:
    """Build the filter of ``config`` and load it into the calling thread."""
    if _libseccomp is None:
        raise BundleError("linux.seccomp: libseccomp.so.2 is not installed (Debian package libseccomp2)")
    default = action_code(config.default_action, config.default_errno_ret)
    context = _libseccomp.seccomp_init(default)
    if not context:
        raise KernelCallFailed("seccomp_init", errno_codes.EINVAL)
    try:
        _check(_libseccomp.seccomp_attr_set(context, _ATTR_CTL_NNP, 0), "attribute no_new_privs")
        for flag in config.flags or ():
            if flag == "SECCOMP_FILTER_FLAG_LOG":
                _check(_libseccomp.seccomp_attr_set(context, _ATTR_CTL_LOG, 1), "flag LOG")
            elif flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
                _check(_libseccomp.seccomp_attr_set(context, _ATTR_CTL_SSB, 1), "flag SPEC_ALLOW")
        for arch in config.architectures or ():
            if arch in _ARCHES:
                result = _libseccomp.seccomp_arch_add(context, _ARCHES[arch])
                if result < 0 and -result != errno_codes.EEXIST:
                    _check(result, f"architecture {arch}")
        for syscall in config.syscalls or ():
            _add_rules(context, syscall, default)
        _check(_libseccomp.seccomp_load(context), "load")
    finally:
        _libseccomp.seccomp_release(context)


def _add_rules(context: int, syscall: Syscall, default: int) -> None:
    assert _libseccomp is not None
    if syscall.action == "SCMP_ACT_NOTIFY":
        raise BundleError("linux.seccomp: SCMP_ACT_NOTIFY (a seccomp listener) is not supported")
    action = action_code(syscall.action, syscall.errno_ret)
    if action == default:
        return
    for name in syscall.names:
        number = _libseccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # a syscall this architecture or this libseccomp does not have
        for conditions in _conditions(syscall):
            array = (_ArgCmp * max(1, len(conditions)))(*conditions)
            result = _libseccomp.seccomp_rule_add_array(context, action, number, len(conditions), array)
            if result == -errno_codes.EEXIST:
                continue  # the same rule is there already (podman's profile repeats some)
            _check(result, f"rule for {name}")
