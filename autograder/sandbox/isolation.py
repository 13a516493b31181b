"""How the student process is isolated on this machine, and the command that starts it.

Levels, strongest first:

``namespaces``  bubblewrap: a filesystem view that is an allow-list: the
                system trees, the interpreter, the standard library and
                the site folders of the student's own ``sys.path`` (with
                every copy of this project's packages taken out, wherever
                the grader loads them from), and the runtime; never the
                reference, the checks, the submissions, the output folder
                or any other host folder. No network, its own pid
                namespace; as root each student also gets a uid of its own,
                which makes the process limit real.
``rlimits``     no usable bubblewrap: a plain subprocess with resource
                limits (and its own uid when running as root). The files the
                grader can read are readable by student code; the run says so.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
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
OWN_PACKAGES = ("autograder", "reference")  # hidden wherever they lie in the student's view
SYSTEM_TREES = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin")  # bound whole, read-only
PACKAGE_DIRS = ("site-packages", "dist-packages")
SYSTEM_SITE_GLOBS = ("/usr/lib/python3*/*-packages", "/usr/local/lib/python3*/*-packages")

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


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (by name: nothing on disk is touched)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _minimal(paths: list[str]) -> list[str]:
    """``paths`` without those inside another one, shortest first."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


@functools.lru_cache(maxsize=1)
def _student_sys_path() -> tuple[str, ...]:
    """``sys.path`` of this interpreter started as the student's: no environment, script folder or user site."""
    try:
        done = subprocess.run([sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
                              capture_output=True, text=True, env={}, cwd="/", timeout=60, check=True)
        entries = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        entries = sys.path
    return tuple(e for e in entries if isinstance(e, str) and os.path.isabs(e) and os.path.exists(e))


def _python_dirs() -> list[str]:
    """The folders the student's interpreter imports from: the standard library's and the site folders
    (some may lie inside others: a base installation's site folder inside its standard library).

    Only entries of the student's own ``sys.path``, and of those only the
    standard library (with its zip) and folders named ``site-packages`` or
    ``dist-packages``: a ``.pth`` line naming a project folder (a legacy
    editable install of this repository, say) adds nothing to the view.
    """
    stdlib = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")]
    zips = {os.path.dirname(s) for s in stdlib}
    return [e for e in _student_sys_path() if any(_inside(e, s) for s in stdlib) or Path(e).name in PACKAGE_DIRS
            or (e.endswith(".zip") and os.path.dirname(e) in zips)]


def _chain(path: str) -> tuple[list[tuple[str, str]], str]:
    """The symlinks from ``path`` to the file it names, as (link, its target), and that file."""
    links: list[tuple[str, str]] = []
    path = os.path.abspath(path)
    while os.path.islink(path) and len(links) < 40:
        target = os.readlink(path)
        links.append((path, target))
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return links, path


def _interpreter() -> tuple[list[tuple[str, str]], list[str]]:
    """The interpreter as the student starts it: the symlinks of ``sys.executable`` and the files it needs
    (the binary, the venv's ``pyvenv.cfg``, the shared ``libpython``)."""
    links, binary = _chain(sys.executable)
    files = [binary]
    here = os.path.dirname(os.path.abspath(sys.executable))
    files += [c for c in (os.path.join(here, "pyvenv.cfg"), os.path.join(os.path.dirname(here), "pyvenv.cfg"))
              if os.path.isfile(c)]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        name = sysconfig.get_config_var("INSTSONAME") or "-"
        lib_links, lib = _chain(os.path.join(sysconfig.get_config_var("LIBDIR") or "/", name))
        if os.path.isfile(lib):
            links += lib_links
            files.append(lib)
    return links, files


def _python_roots() -> list[str]:
    """Everything of the Python installation the view shows: its folders, its files and the interpreter's symlinks."""
    links, files = _interpreter()
    return _minimal([*_python_dirs(), *files, *(link for link, _ in links)])


def _own_package_dirs() -> list[str]:
    """Where this project's packages load from (real paths): each top-level package's spec (its search
    locations, or the module file) and the origin of every loaded submodule."""
    places: set[str] = set()
    for name in OWN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            places.update(spec.submodule_search_locations or [spec.origin or ""])
    for name, module in list(sys.modules.items()):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if name.partition(".")[0] in OWN_PACKAGES and isinstance(origin, str):
            places.add(origin)
    return _minimal([os.path.realpath(p) for p in places if os.path.isabs(p) and os.path.exists(p)])


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _distribution_files(info: Path) -> list[str]:
    """What the distribution of ``info`` (a ``.dist-info`` folder) installed beside it, if it ships one of
    this project's packages: package folders, metadata, editable-install ``.pth`` and finder files."""
    top = set(_lines(info / "top_level.txt"))
    if top and not top & set(OWN_PACKAGES):
        return []  # most distributions say what they ship: no RECORD to read
    record = [line.split(",")[0] for line in _lines(info / "RECORD")]
    if not top and not {r.split("/")[0] for r in record} & set(OWN_PACKAGES):
        return []
    names = {info.name}
    for entry in record:
        parts = entry.split("/")
        if ".." not in parts and entry:
            names.add(parts[0] if parts[0] in OWN_PACKAGES or parts[0] == info.name else entry)
    return sorted(names)


def _copies_in(site: str) -> list[str]:
    """This project's files in a site folder: its packages, its metadata and whatever its distribution put there."""
    try:
        names = sorted(os.listdir(site))
    except OSError:
        return []
    found = {n for n in names if n in OWN_PACKAGES or n.removesuffix(".py") in OWN_PACKAGES
             or (n.endswith(".egg-info") and set(_lines(Path(site, n, "top_level.txt"))) & set(OWN_PACKAGES))}
    for info in (n for n in names if n.endswith(".dist-info")):
        found.update(_distribution_files(Path(site, info)))
    return [os.path.join(site, n) for n in sorted(found) if os.path.lexists(os.path.join(site, n))]


def _hidden(dirs: list[str]) -> list[str]:
    """What the view must hide inside its folders ``dirs`` and the system trees: every place this project's
    packages load from, every copy of them in a site folder, and the site folders of the standard
    library that the student's ``sys.path`` leaves out (the base installation's, seen from a venv)."""
    visible = [f for f in (*dirs, *SYSTEM_TREES) if os.path.isdir(f) and not os.path.islink(f)]
    hide = []
    for place in _own_package_dirs():
        for folder in visible:
            real = os.path.realpath(folder)
            if _inside(place, real):
                hide.append(folder + place[len(real):])
    system_sites = sorted(p for g in SYSTEM_SITE_GLOBS for p in glob.glob(g))
    for site in [d for d in dirs if Path(d).name in PACKAGE_DIRS] + system_sites:
        hide += _copies_in(site)
    for folder in dirs:
        hide += [p for p in glob.glob(os.path.join(glob.escape(folder), "*-packages"))
                 if not any(_inside(d, p) for d in dirs)]
    return [h for h in _minimal(hide) if not os.path.islink(h)]


@functools.lru_cache(maxsize=1)
def _python_view() -> tuple[str, ...]:
    """bwrap arguments that show exactly the interpreter, the standard library and the site folders,
    with everything of this project hidden in them; parent folders are created empty."""
    dirs = _python_dirs()
    bound = _minimal(dirs)
    links, files = _interpreter()
    outside = [p for p in [*bound, *files, *(link for link, _ in links)]
               if not any(_inside(p, t) for t in SYSTEM_TREES) and not any(_inside(p, d) and p != d for d in bound)]
    argv = []
    for parent in _parents_to_create(outside):
        argv += ["--perms", "0755", "--dir", parent]  # bwrap would make it 0700: unreadable to students
    for path in outside:
        if path in bound or path in files:
            argv += ["--ro-bind", path, path]
    for link, target in links:
        if link in outside:
            argv += ["--symlink", target, link]
    hidden = _hidden(dirs)
    sites = sorted({os.path.dirname(h) for h in hidden if Path(h).parent.name in PACKAGE_DIRS}, key=len)
    for site in sites:
        argv += _rebuilt_without(site, set(hidden))
    for path in (h for h in hidden if os.path.dirname(h) not in sites):
        # a file reads as /dev/null, as container runtimes mask paths (--ro-bind or --remount-ro would add nodev)
        argv += ["--tmpfs", path, "--remount-ro", path] if os.path.isdir(path) else ["--dev-bind", "/dev/null", path]
    return tuple(argv)


def _rebuilt_without(folder: str, hidden: set[str]) -> list[str]:
    """bwrap arguments that rebuild ``folder`` on a tmpfs from its entries but ``hidden``, which are then
    absent, not emptied: an empty folder named ``autograder`` would still import, as a namespace package."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    argv = ["--tmpfs", folder]
    for path in (os.path.join(folder, n) for n in names):
        if path in hidden:
            continue
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) or os.path.isfile(path):
            argv += ["--ro-bind", path, path]
    return [*argv, "--remount-ro", folder]


def _parents_to_create(roots: list[str]) -> list[str]:
    """The parent folders of ``roots`` that the view lacks: all but those inside a bound system tree.

    ``/tmp`` is a fresh tmpfs, so a Python installation under ``/tmp/x`` needs
    ``/tmp/x`` created too (readable, or the student's uid cannot reach it).
    """
    parents = {str(a) for r in roots for a in Path(r).parents if str(a) not in ("/", "/tmp")}
    return sorted((p for p in parents if not any(_inside(p, t) for t in (*SYSTEM_TREES, "/proc", "/dev"))), key=len)


def bwrap_command(runtime_parent: str, python: str, switch_uid: bool, command: list[str] | None = None) -> list[str]:
    """The bubblewrap command line that starts the zygote (or ``command``) in its own namespaces."""
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not switch_uid:
        argv.append("--unshare-user")
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in SYSTEM_TREES:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        argv += ["--ro-bind-try", etc, etc]
    argv += _python_view()
    # the zygote starts in the read-only runtime folder: ``-m`` puts the start folder first on sys.path
    argv += ["--ro-bind", runtime_parent, MOUNT_ROOT, "--chdir", MOUNT_ROOT, "--clearenv"]
    for key, value in environment(MOUNT_ROOT).items():
        argv += ["--setenv", key, value]
    # CAP_SYS_ADMIN and CAP_SETPCAP: each forked student makes its own IPC and mount namespaces and
    # scratch tmpfs, then drops every capability, bounding set included (runtime/confine.py). A setuid
    # bwrap refuses --cap-add to other users: their students make a user namespace of their own instead.
    bwrap = shutil.which("bwrap")
    setuid = bwrap is not None and bool(os.stat(bwrap).st_mode & 0o4000)
    caps = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN") if switch_uid else ()
    for cap in (*caps, *(("CAP_SYS_ADMIN", "CAP_SETPCAP") if switch_uid or not setuid else ())):
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
