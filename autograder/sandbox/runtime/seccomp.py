"""A seccomp-BPF filter for the student process: deny what grading never needs (stdlib only).

Denied with EPERM: creating or entering namespaces (``unshare``, ``setns``,
``clone`` with a ``CLONE_NEW*`` flag), tracing and reading other processes
(``ptrace``, ``process_vm_*``, ``kcmp``, ``pidfd_getfd``), the kernel keyring,
mounting (old and new mount API, ``chroot``, ``pivot_root``), ``bpf``,
``perf_event_open``, ``userfaultfd``, ``io_uring``, kernel modules,
``kexec``, file handles, swap, ``reboot``, ``acct``, quotas, x86 port I/O and
any ``personality`` other than the default (or a query). ``clone3`` answers
ENOSYS, because its flags sit behind a pointer the filter cannot read; libc
then falls back to ``clone``, whose flags it can, as container runtimes do.
Threads, ``fork``, ``vfork``, ``mmap`` and everything else stay allowed.

The filter knows x86_64 and aarch64; a system call of any other
architecture (i386 on x86_64, say) or of the x32 ABI gets EPERM. On a
machine of another architecture no filter is installed. The filter is
inherited by every process and thread the student starts and can never be
removed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_DENIED_NAMES = (
    "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "name_to_handle_at", "open_by_handle_at", "swapon", "swapoff", "reboot", "acct",
    "quotactl", "quotactl_fd", "iopl", "ioperm",
)
_NEW_API = {"pidfd_getfd": 438, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
            "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443}
AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64 = 0xC000003E, 0xC00000B7
SYSCALLS = {  # audit architecture → system call numbers (arch/x86/entry/syscalls, asm-generic/unistd.h)
    AUDIT_ARCH_X86_64: {
        "ptrace": 101, "personality": 135, "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176,
        "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
        "pivot_root": 155, "chroot": 161, "quotactl": 179, "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "finit_module": 313, "kexec_load": 246, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
        "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304, "clone": 56, **_NEW_API,
    },
    AUDIT_ARCH_AARCH64: {  # no iopl/ioperm there
        "ptrace": 117, "personality": 92, "init_module": 105, "delete_module": 106, "acct": 89,
        "mount": 40, "umount2": 39, "swapon": 224, "swapoff": 225, "reboot": 142, "pivot_root": 41,
        "chroot": 51, "quotactl": 60, "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
        "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
        "kexec_load": 104, "kexec_file_load": 294, "bpf": 280, "userfaultfd": 282, "perf_event_open": 241,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "clone": 220, **_NEW_API,
    },
}
NATIVE = ("x86_64", "aarch64")  # the machines (os.uname().machine) whose own calls SYSCALLS covers
# NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (NEWTIME, 0x80, is part of CSIGNAL for clone)
CLONE_NEW_FLAGS = 0x7E020000
_X32_BIT = 0x40000000
_PERSONALITY_OK = (0, 0xFFFFFFFF)  # PER_LINUX, and the query that changes nothing

_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0's low word on little-endian)
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2

Instruction = tuple[int, "int | str", "int | str", int]  # code, jump-if-true, jump-if-false (labels), k


def _arch_block(arch: int, table: dict[str, int]) -> list[tuple[str | None, Instruction]]:
    label = f"arch{arch:x}"
    block: list[tuple[str | None, Instruction]] = [(label, (_LD_ABS, 0, 0, _NR))]
    if arch == AUDIT_ARCH_X86_64:
        block.append((None, (_JGE, "deny", 0, _X32_BIT)))
    block += [(None, (_JEQ, "deny", 0, table[name])) for name in _DENIED_NAMES if name in table]
    block += [
        (None, (_JEQ, "enosys", 0, table["clone3"])),
        (None, (_JEQ, "clone", 0, table["clone"])),
        (None, (_JEQ, "personality", "allow", table["personality"])),
    ]
    return block


def program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions with resolved jumps.

    Layout: check the architecture; per architecture, load the number and
    jump to ``deny``, ``enosys`` or an argument check, else ``allow``; then
    the argument checks of ``clone`` and ``personality``; then the returns.
    """
    listing: list[tuple[str | None, Instruction]] = [(None, (_LD_ABS, 0, 0, _ARCH))]
    listing += [(None, (_JEQ, f"arch{arch:x}", 0, arch)) for arch in SYSCALLS]
    listing.append((None, (_RET, 0, 0, _ERRNO | errno.EPERM)))
    for arch, table in SYSCALLS.items():
        listing += _arch_block(arch, table)
    listing += [
        ("clone", (_LD_ABS, 0, 0, _ARG0)),
        (None, (_JSET, "deny", "allow", CLONE_NEW_FLAGS)),
        ("personality", (_LD_ABS, 0, 0, _ARG0)),
        (None, (_JEQ, "allow", 0, _PERSONALITY_OK[0])),
        (None, (_JEQ, "allow", "deny", _PERSONALITY_OK[1])),
        ("allow", (_RET, 0, 0, _ALLOW)),
        ("deny", (_RET, 0, 0, _ERRNO | errno.EPERM)),
        ("enosys", (_RET, 0, 0, _ERRNO | errno.ENOSYS)),
    ]
    where = {label: i for i, (label, _) in enumerate(listing) if label}

    def offset(i: int, target: int | str) -> int:
        if isinstance(target, int):
            return target
        jump = where[target] - i - 1
        if not 0 <= jump <= 255:
            raise ValueError(f"a jump to {target} does not fit in a BPF instruction")
        return jump

    return [(code, offset(i, jt), offset(i, jf), k) for i, (_, (code, jt, jf, k)) in enumerate(listing)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install() -> bool:
    """Load the filter into this process for good (needs ``PR_SET_NO_NEW_PRIVS`` set first).

    Returns False on a machine whose own architecture the filter does not
    know: there it would deny every call, so the process runs unfiltered.
    """
    if os.uname().machine not in NATIVE:
        return False
    instructions = program()
    code = b"".join(struct.pack("=HBBI", *ins) for ins in instructions)
    prog = _Program(len(instructions), code)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused")
    return True
