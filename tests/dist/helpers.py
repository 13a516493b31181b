"""Helpers of the student-bundle tests (see conftest.py for the fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "submissions"
REPO_PACKAGES = ("reference", "autograder", "examples", "student_template")


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any PYTHON* variable, bytecode writing off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return env | {"PYTHONDONTWRITEBYTECODE": "1"} | extra


def run(python: Path, *argv: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *argv], capture_output=True, text=True, cwd=cwd, env=clean_environ(),
                          timeout=timeout)


PROBE = """
import importlib.util, json, sys
from pathlib import Path
names = {names!r}
found = {{n: (s.origin if s and s.origin else (list(s.submodule_search_locations) if s else None))
          for n in names for s in [importlib.util.find_spec(n)]}}
holders = [str(Path(p or ".").resolve()) for p in sys.path if any((Path(p or ".") / n).exists() for n in names)]
print(json.dumps({{"found": found, "holders": holders, "path": sys.path}}))
"""


def probe(python: Path, cwd: Path) -> dict:
    """Where ``python`` run in ``cwd`` finds the repository's top-level packages, and which path entries hold them."""
    done = run(python, "-c", PROBE.format(names=REPO_PACKAGES), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def copy_notebook(name: str, folder: Path) -> Path:
    """A copy of ``examples/submissions/<name>.ipynb`` outside the repository."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(EXAMPLES / f"{name}.ipynb", folder / f"{name}.ipynb"))
