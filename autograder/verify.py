"""Self-checks of a course repository: the package grades what it should and leaks nothing.

    python -m autograder verify          (exit code 0 when every step is clean, 1 otherwise)

1. the notebooks are in sync with their sources (``student_template/build.py --check``);
2. the solution notebook scores full marks and the blank template scores 0;
3. the student bundle builds, its audit (``student_template/dist.py``) finds no
   solution code and no hidden check, and out of the bundle folder its public
   checks pass on the solution notebook.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from autograder.contract import MAX_TOTAL
from autograder.grading import grade_notebook
from autograder.reports.layout import plain_text
from autograder.sandbox.process import Sandbox

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "examples" / "submissions" / "solution.ipynb"
TEMPLATE = ROOT / "student_template" / "assignment.ipynb"
DIST = ROOT / "student_template" / "dist.py"


def _tail(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-20:] or ["failed"]


def _script(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT)
    return [] if done.returncode == 0 else _tail(done.stdout + done.stderr)


def student_dist() -> ModuleType:
    """``student_template/dist.py`` as a module, loaded once (so a test can patch what verify uses)."""
    name = "dgm_student_dist"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DIST)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _notebooks_in_sync() -> list[str]:
    return _script(str(ROOT / "student_template" / "build.py"), "--check")


def _scores() -> list[str]:
    problems = []
    with Sandbox() as sandbox:
        solution = grade_notebook(SOLUTION.read_bytes(), sandbox=sandbox)
        template = grade_notebook(TEMPLATE.read_bytes(), sandbox=sandbox)
    if solution.total != MAX_TOTAL:
        problems.append(f"the solution scores {solution.total:g}, not {MAX_TOTAL}")
        problems += [plain_text(r) for r in solution.checks if r.status != "passed"]
    if template.total != 0:
        problems.append(f"the blank template scores {template.total:g}, not 0")
    return problems


def bundle_problems(bundle: Path) -> list[str]:
    """What is wrong with the built bundle folder ``bundle``: its audit, then its own check of the solution."""
    problems = [f"leak: {p}" for p in student_dist().audit(bundle)]
    if problems:
        return problems
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {"PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "autograder", "check", str(SOLUTION)], cwd=bundle, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        problems.append(f"out of the bundle, `python -m autograder check` exits {done.returncode} on the solution:")
        problems += _tail(done.stdout + done.stderr)
    return problems


def _bundle_is_clean() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "student"
        try:
            student_dist().build(out)
        except SystemExit as exc:  # the reference fails a public check: no tape to record
            return _tail(str(exc.code))
        return bundle_problems(out)


STEPS: tuple[tuple[str, Callable[[], list[str]]], ...] = (
    ("notebooks are built from their sources", _notebooks_in_sync),
    (f"solution scores {MAX_TOTAL}, blank template scores 0", _scores),
    ("student bundle holds no solution and no hidden check, and passes its public checks", _bundle_is_clean),
)


def verify(report: Callable[[str, list[str]], None], on_step: Callable[[str], None] | None = None) -> bool:
    """Run every step, calling ``on_step(step)`` before and ``report(step, problems)`` after each;
    True when all are clean.

    A step that raises counts as failed (its error is the problem reported).
    """
    missing = [str(p.relative_to(ROOT)) for p in (SOLUTION, TEMPLATE, DIST) if not p.is_file()]
    if missing:  # e.g. the student bundle's own copy of the engine
        report("this is a course repository", [f"missing {m}" for m in missing])
        return False
    ok = True
    for name, step in STEPS:
        if on_step is not None:
            on_step(name)
        try:
            problems = step()
        except Exception as exc:  # noqa: BLE001 - a broken step is a failed self-check, not a crash
            problems = [f"{type(exc).__name__}: {exc}"]
        report(name, problems)
        ok = ok and not problems
    return ok
