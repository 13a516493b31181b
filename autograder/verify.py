"""Self-checks of a course repository: the package grades what it should and leaks nothing.

    python -m autograder verify

1. the notebooks are in sync with their sources (``student_template/build.py --check``);
2. the solution notebook scores full marks and the blank template scores 0;
3. the student bundle builds and its audit finds no solution code and no hidden check.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from autograder.contract import MAX_TOTAL
from autograder.grading import grade_notebook
from autograder.sandbox.process import Sandbox

ROOT = Path(__file__).resolve().parents[1]


def _script(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT)
    if done.returncode == 0:
        return []
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()][-20:] or ["failed"]


def _notebooks_in_sync() -> list[str]:
    return _script(str(ROOT / "student_template" / "build.py"), "--check")


def _scores() -> list[str]:
    problems = []
    with Sandbox() as sandbox:
        solution = grade_notebook((ROOT / "examples" / "submissions" / "solution.ipynb").read_bytes(), sandbox=sandbox)
        template = grade_notebook((ROOT / "student_template" / "assignment.ipynb").read_bytes(), sandbox=sandbox)
    if solution.total != MAX_TOTAL:
        problems.append(f"the solution scores {solution.total:g}, not {MAX_TOTAL}")
        problems += [r.message for r in solution.checks if r.status != "passed"]
    if template.total != 0:
        problems.append(f"the blank template scores {template.total:g}, not 0")
    return problems


def _bundle_is_clean() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return _script(str(ROOT / "student_template" / "dist.py"), "--out", str(Path(tmp) / "student"))


STEPS: tuple[tuple[str, Callable[[], list[str]]], ...] = (
    ("notebooks are built from their sources", _notebooks_in_sync),
    (f"solution scores {MAX_TOTAL}, blank template scores 0", _scores),
    ("student bundle holds no solution and no hidden check", _bundle_is_clean),
)


def verify(report: Callable[[str, list[str]], None]) -> bool:
    """Run every step, calling ``report(step, problems)`` after each; True when all are clean."""
    ok = True
    for name, step in STEPS:
        problems = step()
        report(name, problems)
        ok = ok and not problems
    return ok
