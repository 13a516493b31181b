"""The student bundle's engine: which parts of ``autograder/`` ship, and the check modules without their hidden checks."""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

from autograder.checks import FAMILIES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "public_tape.json")
#: Parts of the engine (paths under ``autograder/``) that only the grader runs: ``check`` needs none of them,
#: and the bundle's command line offers ``check`` alone (``MAIN``).
GRADER_ONLY = (
    "runner.py", "discovery.py", "written", "verify.py", "cluster.py", "course",
    "cli/grade.py", "cli/job.py", "cli/written.py", "cli/course.py", "cli/verify.py",
    "reports/class_report.py", "reports/similarity.py", "reports/markdown.py",
    "checks/live.py", "checks/carried.py",  # the reference solution's side of the oracle
)


def _check_decorator(node: ast.stmt) -> ast.Call | None:
    for deco in getattr(node, "decorator_list", []):
        if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "check":
            return deco
    return None


def _is_hidden_check(node: ast.stmt) -> bool:
    deco = _check_decorator(node)
    if deco is None:
        return False
    public = [k for k in deco.keywords if k.arg == "public"]
    return not (public and isinstance(public[0].value, ast.Constant) and public[0].value.value is True)


def strip_hidden_checks(source: str, exported: frozenset[str] = frozenset()) -> str:
    """The module ``source`` without hidden checks and whatever only they used.

    After the hidden checks go, every top-level function, class or assignment
    that nothing left refers to goes too (helpers, expected constants, hints of
    hidden checks), except the names in ``exported`` (imported by other modules).
    """
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    drop = [n for n in tree.body if _is_hidden_check(n)]
    kept = [n for n in tree.body if n not in drop]
    while True:
        used = {n.id for k in kept for n in ast.walk(k) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        unused = [
            n for n in kept
            if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)) and _check_decorator(n) is None
            and _names(n) and all(not name.startswith("__") and name not in used and name not in exported
                                  for name in _names(n))
        ]
        if not unused:
            break
        drop += unused
        kept = [n for n in kept if n not in unused]
    for node in sorted(drop, key=lambda n: n.lineno, reverse=True):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        del lines[first : node.end_lineno]
    return "".join(lines)


def _names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.AnnAssign):
        return [node.target.id] if isinstance(node.target, ast.Name) else []
    targets = [e for t in getattr(node, "targets", []) for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return [t.id for t in targets if isinstance(t, ast.Name)] if all(isinstance(t, ast.Name) for t in targets) else []


def shipped(path: Path) -> bool:
    """Whether the bundle ships ``path``, a file of this repository's ``autograder/`` (not ``GRADER_ONLY``)."""
    rel = path.relative_to(ROOT / "autograder").as_posix()
    return not any(rel == part or rel.startswith(f"{part}/") for part in GRADER_ONLY)


def _engine() -> list[Path]:
    """The Python files of the engine that the bundle ships."""
    return [p for p in sorted((ROOT / "autograder").rglob("*.py")) if shipped(p)]


@functools.cache
def _imported_from_checks() -> dict[str, frozenset[str]]:
    """``{module: names}`` that shipped modules of the engine import from ``autograder.checks.<family>`` modules."""
    names: dict[str, set[str]] = {}
    for path in _engine():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.setdefault(node.module, set()).update(a.name for a in node.names)
    return {module: frozenset(n) for module, n in names.items()}


def stripped_sources() -> dict[str, str]:
    """``{family: source of autograder/checks/<family>.py without its hidden checks}``."""
    imported = _imported_from_checks()
    return {
        family: strip_hidden_checks((ROOT / "autograder" / "checks" / f"{family}.py").read_text(),
                                    imported.get(f"autograder.checks.{family}", frozenset()))
        for family in FAMILIES
    }


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What ``build`` leaves out of the copy of ``autograder/``: caches, the tape file, ``GRADER_ONLY``."""
    return set(IGNORE(folder, names)) | {n for n in names if not shipped(Path(folder) / n)}

