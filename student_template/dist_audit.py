"""The student bundle's audit: everything in it that could leak a solution or a hidden check."""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

from autograder.checks import FAMILIES, QUESTIONS
from autograder.checks import tape as tapes
from autograder.checks.framework import PUBLIC
from dist_engine import GRADER_ONLY, ROOT, _engine, stripped_sources
from dist_texts import MAIN

_GENERIC = ("def ", "import ", "from ", "raise ", "@", "#", '"""', "class ")
#: Shorter lines are too common to tell anything ("return z_q, indices" is 19 characters).
MIN_LINE = 20


#: Lines long enough but common to any torch code (the engine's replay has them as the reference does).
_COMMON = frozenset({"with torch.no_grad():", "with torch.enable_grad():"})


def _significant_lines(text: str) -> set[str]:
    lines = {line.strip() for line in text.splitlines()}
    return {line for line in lines if len(line) >= MIN_LINE and not line.startswith(_GENERIC) and line not in _COMMON}


def _readable(path: Path) -> str:
    """The text of ``path`` to search; for a notebook also its cells' sources (JSON escapes hide lines)."""
    text = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
            text += "\n" + "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                                      for c in cells)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return text


def solution_lines(published: bool = False) -> set[str]:
    """Significant lines of ``reference/``; figures.py only draws a plot for the model answers.

    With ``published``, the lines of the reference's code only: its signatures and
    docstrings are what the notebook publishes as the contract.
    """
    import reference

    sources = [p.read_text() for p in Path(reference.__file__).parent.glob("*.py") if p.name != "figures.py"]
    return set().union(*(_significant_lines(_code_only(s) if published else s) for s in sources))


def _code_only(source: str) -> str:
    """``source`` without its signatures and docstrings: the template publishes those (the contract)."""
    lines = source.splitlines()
    published: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if not isinstance(node, ast.Module):
                published |= set(range(node.lineno, body[0].lineno))  # def line up to the body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                published |= set(range(first.lineno, first.end_lineno + 1))
    return "\n".join(line for i, line in enumerate(lines, 1) if i not in published)


def hidden_check_lines() -> set[str]:
    """Significant lines that only hidden checks (and what only they use) hold in the grader's source."""
    checks = ROOT / "autograder" / "checks"
    stripped = stripped_sources()
    originals = {f: (checks / f"{f}.py").read_text() for f in FAMILIES}
    removed = set().union(*(_significant_lines(originals[f]) - _significant_lines(stripped[f]) for f in FAMILIES))
    kept = set().union(*(_significant_lines(t) for t in stripped.values()))
    for path in _engine():
        if not (path.parent == checks and path.stem in FAMILIES):
            kept |= _significant_lines(path.read_text())
    return removed - kept


def _zip_problems(bundle: Path, files: set[str]) -> list[str]:
    """The zip beside the folder, when there is one, must hold exactly the folder's files."""
    archive = bundle.parent / f"{bundle.name}.zip"
    if not archive.is_file():
        return []
    problems = []
    with zipfile.ZipFile(archive) as z:
        prefix = f"{bundle.name}/"
        members = {n[len(prefix):]: n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")}
        outside = [n for n in z.namelist() if not n.startswith(prefix)]
        problems += [f"{archive.name} holds {n}, which is not in {bundle.name}/" for n in sorted(outside)]
        problems += [f"{archive.name} holds {prefix}{n}, which is not in the folder" for n in sorted(set(members) - files)]
        problems += [f"{archive.name} lacks {prefix}{n}" for n in sorted(files - set(members))]
        problems += [f"{archive.name}: {prefix}{n} differs from the folder's" for n in sorted(files & set(members))
                     if z.read(members[n]) != (bundle / n).read_bytes()]
    return problems


def audit(bundle: Path) -> list[str]:
    """Everything in ``bundle`` (and its zip) that could leak a solution or a hidden check (empty when clean).

    Looked for in every file, a notebook's cells included: a significant line
    of ``reference/`` (in the notebook, of its code: the notebook publishes the
    signatures and docstrings) or of the hidden checks' code, and (outside the
    notebook) the name of a hidden check. Also: no ``GRADER_ONLY`` part of the engine,
    a command line of ``check`` alone, no ``reference/`` package, a tape of
    public checks only, and a zip of the folder's files and nothing else.
    """
    problems = []
    paths = sorted(p for p in bundle.rglob("*") if p.is_file())
    solution, code, hidden_code = solution_lines(), solution_lines(published=True), hidden_check_lines()
    hidden = [c for checks in QUESTIONS.values() for c in checks if c.visibility != PUBLIC]
    for path in paths:
        rel, text = path.relative_to(bundle), _readable(path)
        lines = _significant_lines(text)
        for line in sorted(lines & (code if path.suffix == ".ipynb" else solution)):
            problems.append(f"{rel}: a line of the reference solution: {line[:80]}")
        for line in sorted(lines & hidden_code):
            problems.append(f"{rel}: a line of a hidden check: {line[:80]}")
        # The notebook is the published question text: a hidden check may be named after a
        # requirement the contract states ("ties go to the lowest index") without leaking it.
        for c in hidden if path.suffix != ".ipynb" else ():
            if c.name in text:
                problems.append(f"{rel}: names the hidden check {c.qid} {c.name!r}")
    engine = bundle / "autograder"
    problems += [f"autograder/{part} is grader-only" for part in GRADER_ONLY if (engine / part).exists()]
    if not (engine / "__main__.py").is_file() or (engine / "__main__.py").read_text() != MAIN:
        problems.append("autograder/__main__.py is not the student command line (check alone)")
    if (bundle / "reference").exists():
        problems.append("reference/ is in the bundle")
    tape_path = bundle / "autograder" / "checks" / tapes.TAPE_FILE.name
    try:
        tape = json.loads(tape_path.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"the tape {tape_path.name} is missing or unreadable: {exc}")
        tape = {}
    public = {f"{c.qid}/{c.name}" for checks in QUESTIONS.values() for c in checks if c.visibility == PUBLIC}
    problems += [f"the tape records the non-public check {k}" for k in sorted(set(tape) - public)]
    problems += [f"the tape record of {k} holds more than examples and values" for k in sorted(set(tape) & public)
                 if not isinstance(tape[k], dict) or set(tape[k]) != {"examples", "values"}]
    problems += _zip_problems(bundle, {p.relative_to(bundle).as_posix() for p in paths})
    return problems
