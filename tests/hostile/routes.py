"""A probe notebook for every install route: can student code read a grader file or list a host folder?

The probe's one cell runs at the top level (so every route runs it) and
defines B2 (``covariance_from_scale_tril``) to raise its findings, which then
reach the report of that route: ``PROBECLEAN``, or ``PROBELEAK`` and what it
found. It looks for

* grader files by name (``TARGETS``, given by the test: the packages where the
  grader loads them from, their copies and metadata in site folders, the
  submissions and output folders, a sentinel in the host's ``/tmp``): a file
  that reads non-empty or a folder that lists non-empty is a leak (a masked
  folder is empty, a masked file reads as ``/dev/null``);
* ``import autograder`` and ``import reference``;
* every host folder: a walk of ``/`` that steps only into folders on the way to
  what the student's interpreter itself needs (its ``sys.path``, executable,
  ``pyvenv.cfg``, ``libpython``), the system trees and its scratch folder;
  anything else it can list is a leak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.hostile.corpus import EMPTY, TARGET, _code

OWN_PACKAGES = ("autograder", "reference")
CLEAN, LEAK = "PROBECLEAN", "PROBELEAK"

PROBE = '''
import os, sys, sysconfig
TARGETS = {targets!r}
SYSTEM = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/proc", "/dev", "/sys", "/etc", "/opt/dgm")
_LIB = os.path.join(sysconfig.get_config_var("LIBDIR") or "/", sysconfig.get_config_var("INSTSONAME") or "-")

def _chain(path):
    """``path`` and each symlink on the way to the file it names."""
    links = [path]
    while os.path.islink(path) and len(links) < 40:
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
        links.append(path)
    return links

NEEDED = [p for p in sys.path if os.path.isabs(p)] + [*_chain(sys.executable), *_chain(_LIB),
          os.path.join(sys.prefix, "pyvenv.cfg"), os.getcwd(), *SYSTEM]
FOUND = []

def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")

for _t in TARGETS:
    try:
        if os.path.isdir(_t):
            _got = os.listdir(_t)
        else:
            with open(_t, "rb") as _f:
                _got = _f.read(1)
        if _got:
            FOUND.append("read " + _t)
    except OSError:
        pass
for _name in {packages!r}:
    try:
        __import__(_name)
        FOUND.append("import " + _name)
    except ImportError:
        pass
_stack = ["/"]
LISTED = []
while _stack:
    _folder = _stack.pop()
    try:
        _names = os.listdir(_folder)
    except OSError:
        continue
    for _name in _names:
        _path = os.path.join(_folder, _name)
        if any(_under(_path, r) for r in NEEDED):
            continue
        if any(_under(r, _path) for r in NEEDED) and os.path.isdir(_path) and not os.path.islink(_path):
            _stack.append(_path)
        else:
            LISTED.append("listed " + _path)
FOUND += sorted(LISTED, key=len)[:60]  # the shortest: the folders nearest the root
REPORT = {clean!r} if not FOUND else {leak!r} + " " + " | ".join(FOUND)
print(REPORT)

def {target}(L):
    raise RuntimeError(REPORT)
'''

GRADER_SPECS = """
import importlib.util, json, sys
names = sys.argv[1:]
places = []
for name in names:
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:  # the bundle's reference is a module, not a package
        continue
    places += list(spec.submodule_search_locations or []) + [spec.origin] if spec else []
print(json.dumps([p for p in places if p]))
"""
SANDBOX_ONLY = """
import sys
from autograder.notebook import read_notebook
from autograder.sandbox.process import Sandbox
from autograder.sandbox.session import StudentSession
cells = read_notebook(open(sys.argv[1], "rb").read()).code_cells
with Sandbox() as sandbox, StudentSession(sandbox, cells) as session:
    print(session.runs[0].status, session.runs[0].output)
"""
GRADER_MODULES = ("autograder", "autograder.checks", "autograder.sandbox.isolation", "reference", "reference.gaussian")


def notebook(targets: list[str]) -> bytes:
    """The probe notebook, looking for ``targets`` (host paths) among the rest."""
    source = PROBE.format(targets=sorted(set(targets)), packages=OWN_PACKAGES, clean=CLEAN, leak=LEAK, target=TARGET)
    return json.dumps({**EMPTY, "cells": [_code(source, (f"graded:{TARGET}",))]}).encode()


def grader_places(python: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """Where ``python`` run in ``cwd`` (as the route runs the grader) loads the grader's modules from."""
    done = subprocess.run([python, "-c", GRADER_SPECS, *GRADER_MODULES], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def copies(site: Path) -> list[str]:
    """What an install of this project left in a site folder: packages, metadata, editable finders."""
    names = [*OWN_PACKAGES, "dgm_autograder-*", "__editable__*dgm_autograder*",
             "__pycache__/__editable__*dgm_autograder*"]
    return [str(p) for n in names for p in site.glob(n)]


def package_files(root: Path) -> list[str]:
    """A few files and folders of the packages under ``root`` (a checkout or an installed copy)."""
    return [str(root / p) for p in ("autograder", "autograder/checks", "autograder/checks/framework.py",
                                    "autograder/__init__.py", "reference", "reference/__init__.py",
                                    "reference/gaussian.py")]


def sentinel(folder: Path) -> str:
    """A host file the student must not see (``folder`` lies in the host's ``/tmp``)."""
    path = folder / "host-sentinel.txt"
    path.write_text("only the host has this\n")
    return str(path)


def verdict(text: str) -> str:
    """The probe's report found in a route's output, without what the sandbox made itself (a folder it
    lists that the host lacks, such as torch's cache folder in the sandbox's own ``/tmp``)."""
    assert CLEAN in text or LEAK in text, f"the probe never reported: {text[-2000:]}"
    if LEAK not in text:
        return CLEAN
    found = text[text.index(LEAK) + len(LEAK):].splitlines()[0].split(" | ")
    host = [f.strip() for f in found if not f.strip().startswith("listed ") or os.path.lexists(f.strip()[7:])]
    return f"{LEAK} {' | '.join(host)}" if host else CLEAN


def outputs(folder: Path) -> str:
    """Every text report under ``folder``."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*"))
                     if p.is_file() and p.suffix in (".json", ".md", ".csv", ".html", ".txt"))


def site_dirs(python: str) -> list[str]:
    """The site folders of ``python`` (purelib and platlib)."""
    done = subprocess.run([python, "-c", "import sysconfig, json; p = sysconfig.get_paths(); "
                           "print(json.dumps(sorted({p['purelib'], p['platlib']})))"],
                          capture_output=True, text=True, timeout=60, check=True, env={})
    return json.loads(done.stdout)


def reuse_packages(python: str) -> str:
    """``.pth`` text that gives another venv this interpreter's packages (torch included)."""
    return "".join(f"{d}\n" for d in site_dirs(python))


THIS_PYTHON = sys.executable
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {"PYTHONDONTWRITEBYTECODE": "1"}
