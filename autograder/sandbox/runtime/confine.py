"""What separates one student process from every other: namespaces, scratch, capabilities (stdlib only).

Each student process gets IPC and mount namespaces of its own (so no SysV
shared memory, semaphore or message queue outlives it or reaches a
classmate), and a size-limited tmpfs as its scratch folder, bound over
``/dev/shm`` too (so POSIX shared memory is private and counts against the
same budget). Then every capability is dropped, the bounding set included.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
SCRATCH_INODES = 16384
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    args = [None if a is None else os.fsencode(a) for a in (source, target, fstype)]
    _check(_libc.mount(*args, flags, None if data is None else data.encode()), f"mount {target}")


def _own_user_namespace() -> bool:
    """Without privileges: new user, IPC and mount namespaces, this uid and gid mapped to themselves."""
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWNS) != 0:
        return False
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    return True


def private_scratch(scratch: str, uid: int | None, size: int) -> bool:
    """Own IPC and mount namespaces, and a tmpfs of ``size`` bytes at ``scratch`` and ``/dev/shm``.

    Returns False, changing nothing, where no namespace can be made (the
    fallback level without root or user namespaces). Once the namespaces
    exist, a failing mount raises: the process must not run half-confined.
    """
    if _libc.unshare(CLONE_NEWIPC | CLONE_NEWNS) != 0 and (os.geteuid() == 0 or not _own_user_namespace()):
        return False
    owner = os.getuid() if uid is None else uid
    group = os.getgid() if uid is None else uid
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # nothing mounted here reaches the zygote's view
    options = f"size={size},nr_inodes={SCRATCH_INODES},mode=0700,uid={owner},gid={group}"
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, options)
    if os.path.isdir("/dev/shm") and not os.path.islink("/dev/shm"):
        _mount(scratch, "/dev/shm", None, MS_BIND, None)
    return True


def drop_bounding_set() -> None:
    """Remove every capability from the bounding set, where this process may (it needs CAP_SETPCAP)."""
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL past the last capability, EPERM without CAP_SETPCAP


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def clear_capabilities() -> None:
    """Empty the effective, permitted, inheritable (and so ambient) sets for good."""
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), data), "capset")
