"""How the student process is isolated on this machine, and the command that starts it.

Levels, strongest first:

``namespaces``  bubblewrap: a filesystem view with only Python, its packages
                and the runtime (never the reference, the checks, the
                submissions or the output folder), no network, its own pid
                namespace; as root each student also gets a uid of its own,
                which makes the process limit real.
``rlimits``     no usable bubblewrap: a plain subprocess with resource
                limits (and its own uid when running as root). The files the
                grader can read are readable by student code; the run says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

RUNTIME_SOURCE = Path(__file__).with_name("runtime")
RUNTIME_PACKAGE = "dgm_runtime"
MOUNT_ROOT = "/opt/dgm"

WEAK_ISOLATION_WARNING = (
    "bubblewrap is not usable here ({why}); student code runs in a plain subprocess with "
    "resource limits only and can read any file this user can read. Install bubblewrap "
    "(apt-get install bubblewrap) before grading real submissions."
)
UNREADABLE_PYTHON_WARNING = (
    "the Python installation is not readable by other users, so student code keeps your uid."
)
NOT_ROOT_WARNING = (
    "not running as root: student processes share your uid, so the process limit cannot be "
    "enforced per student and students are not separated from each other."
)


@dataclass(frozen=True)
class Isolation:
    """What this machine allows: the level, whether uids can be switched, and why not."""

    level: str
    switch_uid: bool
    warnings: tuple[str, ...]


def _own_package_dirs() -> list[str]:
    """Folders of this project's packages (hidden from the student's view)."""
    here = Path(__file__).resolve().parents[1]
    dirs = [str(here)]
    try:
        import reference

        dirs.append(str(Path(reference.__file__).resolve().parent))
    except ImportError:
        pass
    return dirs


def _python_roots() -> list[str]:
    """Folders that hold the interpreter, the standard library and site-packages."""
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parents[1])}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_paths()[key])
    for entry in sys.path:
        if entry and Path(entry).is_dir() and "site-packages" in entry:
            roots.add(entry)
    minimal = []
    for root in sorted(roots, key=len):
        if not any(root == m or root.startswith(m.rstrip("/") + "/") for m in minimal):
            minimal.append(root)
    return minimal


def _parents_to_create(roots: list[str]) -> list[str]:
    """The parent folders of ``roots`` that the view lacks: all but those inside a bound system tree.

    ``/tmp`` is a fresh tmpfs, so a Python installation under ``/tmp/x`` needs
    ``/tmp/x`` created too (readable, or the student's uid cannot reach it).
    """
    trees = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/proc", "/dev")
    parents = {str(a) for r in roots for a in Path(r).parents if str(a) not in ("/", "/tmp")}
    return sorted((p for p in parents if not any(p == t or p.startswith(t + "/") for t in trees)), key=len)


def bwrap_command(runtime_parent: str, python: str, switch_uid: bool, command: list[str] | None = None) -> list[str]:
    """The bubblewrap command line that starts the zygote (or ``command``) in its own namespaces."""
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not switch_uid:
        argv.append("--unshare-user")
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        argv += ["--ro-bind-try", etc, etc]
    roots = _python_roots()
    for parent in _parents_to_create(roots):
        argv += ["--perms", "0755", "--dir", parent]  # bwrap would make it 0700: unreadable to students
    for root in roots:
        argv += ["--ro-bind", root, root]
    for own in _own_package_dirs():
        if any(own.startswith(r.rstrip("/") + "/") for r in roots):
            argv += ["--tmpfs", own]
    argv += ["--ro-bind", runtime_parent, MOUNT_ROOT, "--chdir", "/tmp", "--clearenv"]
    for key, value in environment(MOUNT_ROOT).items():
        argv += ["--setenv", key, value]
    if switch_uid:
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN"):
            argv += ["--cap-add", cap]
    return argv + (command or [python, "-s", "-m", RUNTIME_PACKAGE])


def plain_command(python: str) -> list[str]:
    """The fallback: the zygote as a plain subprocess."""
    return [python, "-s", "-m", RUNTIME_PACKAGE]


def environment(pythonpath: str) -> dict[str, str]:
    """Environment of the zygote, in the sandbox or in the fallback subprocess."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def install_runtime(target: Path) -> str:
    """Copy the runtime package to ``target/dgm_runtime``; returns ``target``."""
    dest = target / RUNTIME_PACKAGE
    dest.mkdir(parents=True, exist_ok=True)
    for src in RUNTIME_SOURCE.glob("*.py"):
        shutil.copyfile(src, dest / src.name)
    return str(target)


def _world_readable(path: str) -> bool:
    """Whether another uid can traverse to ``path`` and read it."""
    p = Path(path).resolve()
    for part in [p, *p.parents]:
        mode = part.stat().st_mode
        if not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o004)


@functools.lru_cache(maxsize=1)
def detect() -> Isolation:
    """Probe once per process what isolation this machine offers."""
    switch_uid = os.geteuid() == 0
    warnings = [] if switch_uid else [NOT_ROOT_WARNING]
    why = None
    if shutil.which("bwrap") is None:
        why = "bwrap is not installed"
    else:
        probe = bwrap_command("/", sys.executable, switch_uid, [sys.executable, "-c", "import torch"])
        try:
            done = subprocess.run(probe, capture_output=True, timeout=30)
            if done.returncode != 0:
                why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["bwrap failed"]
                why = why[0]
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
    if why is None:
        return Isolation("namespaces", switch_uid, tuple(warnings))
    warnings.insert(0, WEAK_ISOLATION_WARNING.format(why=why))
    if switch_uid and not all(_world_readable(r) for r in _python_roots()):
        switch_uid = False
        warnings.append(UNREADABLE_PYTHON_WARNING)
    return Isolation("rlimits", switch_uid, tuple(warnings))
