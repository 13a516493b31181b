"""No channel between students: own IPC namespace, bounded scratch, no capabilities, a seccomp filter.

Students are graded in turn by one sandbox (one zygote), as in a class run:
what one leaves behind in SysV IPC, ``/dev/shm`` or its scratch folder must
not reach the next. Each level the machine offers is tested: ``namespaces``
(bubblewrap), and ``rlimits`` (the plain-subprocess fallback, forced).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from autograder.notebook import CodeCell
from autograder.sandbox import isolation as iso
from autograder.sandbox.process import Limits, Sandbox
from autograder.sandbox.runtime import seccomp
from autograder.sandbox.runtime.child import SCRATCH_BYTES
from autograder.sandbox.session import StudentSession

LIMITS = Limits(cell_seconds=8, call_seconds=5)
NAMESPACES = iso.detect().level == "namespaces"


def _user_namespaces() -> bool:
    """Whether this user may make a user namespace (what the fallback without root needs)."""
    try:
        return subprocess.run(["unshare", "-Ur", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


LEVELS = [
    pytest.param("namespaces", marks=pytest.mark.skipif(not NAMESPACES, reason="bubblewrap is not usable here")),
    pytest.param("rlimits", marks=pytest.mark.skipif(
        os.geteuid() != 0 and not _user_namespaces(),
        reason="the fallback without root, where user namespaces are not allowed, gets no namespace of its own: "
               "students share SysV IPC and /dev/shm and the scratch is unbounded (the seccomp filter, tested "
               "on its own below, still applies)")),
]

# System call numbers for the student's code (seccomp.SYSCALLS is the filter's own table: not trusted here).
NUMBERS = {
    "x86_64": {"unshare": 272, "setns": 308, "clone": 56, "clone3": 435, "ptrace": 101, "process_vm_readv": 310,
               "kcmp": 312, "keyctl": 250, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
               "personality": 135, "io_uring_setup": 425, "x32 getpid": 0x40000000 | 39},
    "aarch64": {"unshare": 97, "setns": 268, "clone": 220, "clone3": 435, "ptrace": 117, "process_vm_readv": 270,
                "kcmp": 272, "keyctl": 219, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
                "personality": 92, "io_uring_setup": 425},
}
KNOWN_MACHINE = pytest.mark.skipif(platform.machine() not in NUMBERS, reason="the test knows x86_64 and aarch64 only")
SPECIAL = {"clone3": errno.ENOSYS, "personality(query)": 0}  # what the filter answers otherwise than EPERM
if platform.machine() == "x86_64":
    SPECIAL["x32 getpid"] = errno.EPERM

SYSCALL_PROBE = f'''
import ctypes, errno, os, subprocess
NR = {NUMBERS.get(platform.machine(), {})!r}
libc = ctypes.CDLL(None, use_errno=True)

def sc(name, *args):
    r = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
    if r == 0 and name == "clone":
        os._exit(0)  # the clone went through and this is the child
    if r > 0 and name == "clone":
        os.waitpid(r, 0)
    return 0 if r >= 0 else ctypes.get_errno()

def denied():
    """The errno of each call that grading never needs (0: it went through)."""
    me = os.getpid()
    ipc = os.open("/proc/self/ns/ipc", os.O_RDONLY)
    unshare_command = subprocess.run(["unshare", "-Ur", "true"], capture_output=True).returncode
    return {{
        "unshare -Ur": errno.EPERM if unshare_command else 0,
        "clone(NEWUSER)": sc("clone", 0x10000000 | 17, 0, 0, 0, 0),
        "clone(NEWNET)": sc("clone", 0x40000000 | 17, 0, 0, 0, 0),
        "unshare(NEWUSER)": sc("unshare", 0x10000000),
        "unshare(NEWIPC)": sc("unshare", 0x08000000),
        "setns": sc("setns", ipc, 0),
        "ptrace(TRACEME)": sc("ptrace", 0, 0, 0, 0),
        "process_vm_readv(self)": sc("process_vm_readv", me, 0, 0, 0, 0, 0),
        "kcmp(self)": sc("kcmp", me, me, 0, 0, 0),
        "keyctl(session keyring)": sc("keyctl", 0, -3, 0),
        "bpf": sc("bpf", 0, 0, 0),
        "perf_event_open": sc("perf_event_open", 0, 0, -1, -1, 0),
        "userfaultfd(user mode)": sc("userfaultfd", 1),
        "personality(ADDR_NO_RANDOMIZE)": sc("personality", 0x0040000),
        "io_uring_setup": sc("io_uring_setup", 1, 0),
    }}

def denied_mounts():
    """Only ever run under the filter: unfiltered, as root, it would mount over the working folder."""
    return {{"mount": 0 if libc.mount(b"none", b".", b"tmpfs", 0, None) == 0 else ctypes.get_errno(),
             "chroot": 0 if libc.chroot(b".") == 0 else ctypes.get_errno()}}

def special():
    found = {{"clone3": sc("clone3", 0, 0), "personality(query)": sc("personality", 0xFFFFFFFF)}}
    if "x32 getpid" in NR:
        found["x32 getpid"] = sc("x32 getpid")
    return found
'''


@pytest.fixture(scope="module", params=LEVELS)
def sandbox(request):
    with Sandbox(LIMITS) as sb:
        if request.param == "rlimits" and sb.isolation.level != "rlimits":
            readable = sb.isolation.switch_uid and all(iso._world_readable(r) for r in iso._python_roots())
            sb.isolation = iso.Isolation("rlimits", readable, ())  # what detect() says without bubblewrap
        yield sb


def _call(sandbox, source: str, name: str):
    with StudentSession(sandbox, (CodeCell(0, textwrap.dedent(source)),)) as session:
        assert session.runs[0].status == "ok", session.runs[0]
        return session.call(name, seed=0, seconds=30).value


IPC = '''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
KEY, CREATE, NOTE = 0x48316131, 0o1000 | 0o666, b"a note from the writer"
SHM = "/dev/shm/h1a-note"

def write():
    """Leave a SysV segment, semaphore set and message queue (mode 666, never removed) and a POSIX shm file."""
    shmid = libc.shmget(KEY, 1 << 20, CREATE)
    addr = libc.shmat(shmid, None, 0)
    ctypes.memmove(addr, NOTE, len(NOTE))
    fd = os.open(SHM, os.O_CREAT | os.O_RDWR, 0o666)
    os.fchmod(fd, 0o666)
    os.write(fd, NOTE)
    os.close(fd)
    return {"shm": ctypes.string_at(addr, len(NOTE)).decode(), "sem": libc.semget(KEY, 1, CREATE) >= 0,
            "msg": libc.msgget(KEY, CREATE) >= 0, "posix": open(SHM).read()}

def read():
    """What this process can find of anything a classmate left."""
    return {"shm": libc.shmget(KEY, 0, 0) >= 0, "sem": libc.semget(KEY, 0, 0) >= 0, "msg": libc.msgget(KEY, 0, 0) >= 0,
            "posix": os.path.exists(SHM), "segments": len(open("/proc/sysvipc/shm").readlines()) - 1}
'''


def test_what_a_student_leaves_in_ipc_does_not_reach_the_next(sandbox):
    note = "a note from the writer"
    assert _call(sandbox, IPC, "write") == {"shm": note, "sem": True, "msg": True, "posix": note}
    assert _call(sandbox, IPC, "read") == {"shm": False, "sem": False, "msg": False, "posix": False, "segments": 0}


FILL = '''
import errno, os, resource

def fill():
    """Write 8 MiB files into the scratch folder, then into /dev/shm, until refused."""
    chunk, written, codes = b"x" * (1 << 20), 0, {}
    for where, prefix in ((".", "scratch"), ("/dev/shm", "shm")):
        try:
            for i in range(200):
                with open(os.path.join(where, f"{prefix}-{i}"), "wb") as f:
                    for _ in range(8):
                        f.write(chunk)
                        written += len(chunk)
        except OSError as exc:
            codes[where] = exc.errno
    return {"written": written, "codes": codes}

def room():
    st = os.statvfs(".")
    return {"size": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize, "cwd": os.listdir(".")}

def headroom():
    """How far the address-space limit is above this process's size now."""
    vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    return resource.getrlimit(resource.RLIMIT_AS)[0] - vm
'''


def test_the_scratch_folder_is_bounded_and_fresh_for_the_next_student(sandbox):
    got = _call(sandbox, FILL, "fill")
    assert got["codes"] == {".": errno.ENOSPC, "/dev/shm": errno.ENOSPC}, got
    assert SCRATCH_BYTES // 2 <= got["written"] <= SCRATCH_BYTES, got  # one budget for both places
    room = _call(sandbox, FILL, "room")
    assert room["size"] == SCRATCH_BYTES and room["free"] >= SCRATCH_BYTES - 2**20 and room["cwd"] == [], room
    assert 0 < _call(sandbox, FILL, "headroom") <= LIMITS.memory_bytes - SCRATCH_BYTES  # the scratch is memory too


CAPS = '''
def status():
    keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
    return {k: v.strip() for k, v in (line.split(":", 1) for line in open("/proc/self/status")) if k in keys}
'''


def test_the_student_has_no_capability_and_a_seccomp_filter(sandbox):
    no_capability = {k: "0000000000000000" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    filtered = "2" if platform.machine() in seccomp.NATIVE else "0"  # elsewhere the filter would deny every call
    assert _call(sandbox, CAPS, "status") == {**no_capability, "NoNewPrivs": "1", "Seccomp": filtered}


@KNOWN_MACHINE
def test_every_denied_call_fails_with_eperm(sandbox):
    probe = SYSCALL_PROBE + "\ndef everything():\n    return {**denied(), **denied_mounts(), **special()}\n"
    got = _call(sandbox, probe, "everything")
    assert got == {**{name: errno.EPERM for name in got if name not in SPECIAL}, **SPECIAL}, got


ALLOWED = '''
import mmap, multiprocessing, os, subprocess, sys, threading
import torch

def allowed():
    """What honest code may do: threads, fork, subprocesses, a process pool, mmap, torch on two threads."""
    box = []
    t = threading.Thread(target=lambda: box.append(sum(range(10))))
    t.start(); t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    forked = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    python = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout.strip()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pooled = pool.map(abs, [-1, -2, -3])
    with mmap.mmap(-1, 1 << 20) as m:
        m[:3] = b"abc"
        mapped = m[:3].decode()
    torch.set_num_threads(2)
    x = torch.randn(256, 256, requires_grad=True)
    (x @ x).sum().backward()
    return {"thread": box, "fork": forked, "python": python, "pool": pooled, "mmap": mapped,
            "torch": bool(torch.isfinite(x.grad).all())}
'''


def test_threads_fork_subprocesses_and_torch_still_work(sandbox):
    assert _call(sandbox, ALLOWED, "allowed") == {
        "thread": [45], "fork": 7, "python": "42", "pool": [1, 2, 3], "mmap": "abc", "torch": True}


# -- the filter on its own, outside any sandbox ------------------------------------------------------

_FILTER_SCRIPT = '''
import ctypes, json, sys
sys.path.insert(0, {runtime!r})
import seccomp
ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
if {install!r}:
    assert seccomp.install()
{probe}
print(json.dumps({{**denied(), **special()}}))
'''


def _outside(install: bool) -> dict[str, int]:
    script = _FILTER_SCRIPT.format(runtime=str(iso.RUNTIME_SOURCE), install=install, probe=SYSCALL_PROBE)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@KNOWN_MACHINE
def test_the_filter_denies_what_would_otherwise_go_through():
    free, filtered = _outside(False), _outside(True)
    open_anyway = {"ptrace(TRACEME)", "process_vm_readv(self)", "kcmp(self)", "keyctl(session keyring)",
                   "personality(ADDR_NO_RANDOMIZE)"}
    if os.geteuid() == 0 or _user_namespaces():
        open_anyway |= {"unshare -Ur", "unshare(NEWUSER)", "clone(NEWUSER)"}
    assert open_anyway <= {k for k, v in free.items() if v == 0}, free
    assert free["clone3"] != errno.ENOSYS
    assert filtered == {**{k: errno.EPERM for k in free if k not in SPECIAL}, **SPECIAL}, filtered


def test_every_jump_of_the_program_lands_inside_it():
    program = seccomp.program()
    assert program[0] == (0x20, 0, 0, 4)  # the architecture is checked first
    for i, (code, jt, jf, _) in enumerate(program):
        if code & 0x07 == 0x05:
            assert i + 1 + max(jt, jf) < len(program)
        assert code != 0x06 or program[i][3] in (0x7FFF0000, 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS)
    assert program[-1][0] == 0x06
