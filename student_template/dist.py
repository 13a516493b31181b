"""Build the student bundle: template, engine, public checks, recorded expected values.

    python student_template/dist.py [--out dist/student]   (make student-dist)

It then audits the bundle (``audit``) and exits 1 if anything could leak.

The bundle holds the notebook, the ``autograder`` engine with only the
public checks (hidden ones are cut from the source), a tape of the values the
public checks expect (recorded by running them on the reference solution),
and a ``reference`` stub that plays that tape. It holds no code of
``reference/`` and nothing a hidden check compares against.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from autograder.checks import FAMILIES, QUESTIONS  # noqa: E402
from autograder.checks import tape as tapes  # noqa: E402
from autograder.checks.framework import PUBLIC  # noqa: E402
from autograder.contract import BY_ID, CONTRACT  # noqa: E402

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "public_tape.json")

STUB = '''"""Recorded reference values for the public checks.

This bundle holds no solution code: each name below hands back, in order, the
values the public checks expect, recorded from the reference solution.
"""

from autograder.checks import tape as _tape


def _recorded(name):
    def value(*args, **kwargs):
        return _tape.TAPE.reference(name)

    value.__name__ = name
    return value


{names}
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "dgm-assignment-checks"
version = "{version}"
description = "Public checks of the deep-generative-models assignment."
requires-python = ">=3.10"
dependencies = ["torch>=2.2,<3", "numpy>=1.24", "sympy>=1.12", "hypothesis>=6.100", "rich>=13"]

[tool.setuptools.packages.find]
include = ["autograder*", "reference*"]

[tool.setuptools.package-data]
"autograder.checks" = ["public_tape.json"]
'''

README = """# Deep Generative Models assignment — student bundle

Fill in `assignment.ipynb`, then check it locally before you submit.

## Set up once

```sh
python -m venv .venv && . .venv/bin/activate
pip install torch            # a CPU build is enough
pip install -e .
```

## Run the public checks

```sh
python -m autograder check assignment.ipynb          # every question; exit code 0 when all public checks pass
python -m autograder check assignment.ipynb -q C4    # one question
```

Inside the notebook, after running your cells:

```python
from autograder import check
check("C4")
```

Each failure names the function, the input it failed on, what was expected,
what your code returned and a hint. Your notebook runs in a separate
process here, exactly as in the grader.

## Public and hidden checks

The public checks catch the obvious mistakes: shapes, dtypes, a few known
values and the key gradients. The grader also runs hidden checks that test
more inputs and properties, so passing every public check does not
guarantee full marks. The public checks are:

{public}

## Points

Code questions (graded automatically, 100 points):

| id | function | points |
|---|---|---:|
{code}

Written questions (graded by the TAs, {written_total} points):

| id | question | points |
|---|---|---:|
{written}
"""


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


def strip_hidden_checks(source: str) -> str:
    """The module ``source`` without hidden checks and the private helpers only they used."""
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    drop = [n for n in tree.body if _is_hidden_check(n)]
    kept = [n for n in tree.body if n not in drop]
    while True:
        used = {n.id for k in kept for n in ast.walk(k) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        unused = [
            n for n in kept
            if isinstance(n, (ast.FunctionDef, ast.Assign)) and _check_decorator(n) is None
            and all(name.startswith("_") and name not in used for name in _names(n)) and _names(n)
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
    if isinstance(node, ast.FunctionDef):
        return [node.name]
    targets = [e for t in getattr(node, "targets", []) for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return [t.id for t in targets if isinstance(t, ast.Name)] if all(isinstance(t, ast.Name) for t in targets) else []


def record_tape() -> str:
    """Run every public check on the solution notebook's code, recording the reference values."""
    import reference
    from autograder.local import LocalSession, run_public_checks
    from autograder.notebook import read_notebook

    namespace: dict = {"__name__": "__main__"}
    for cell in read_notebook((ROOT / "examples" / "submissions" / "solution.ipynb").read_bytes()).code_cells:
        exec(compile(cell.source, "<solution>", "exec"), namespace)  # noqa: S102 - our own solution
    with tapes.recording(reference, list(reference.QUESTION_NAMES.values())) as tape:
        results = run_public_checks(LocalSession(namespace), tuple(BY_ID))
    wrong = [r.message for r in results if r.status != "passed"]
    if wrong:
        raise SystemExit("the reference fails public checks:\n" + "\n".join(wrong))
    return tape.dumps()


def _public_list() -> str:
    return "\n".join(
        f"- **{qid}** `{BY_ID[qid].name}`: " + "; ".join(c.name for c in checks if c.visibility == PUBLIC)
        for qid, checks in QUESTIONS.items()
    )


def student_readme() -> str:
    rubric = tomllib.loads((HERE / "rubric.toml").read_text())["question"]
    return README.format(
        public=_public_list(),
        code="\n".join(f"| {e.qid} | `{e.name}` | {e.points} |" for e in CONTRACT),
        written="\n".join(f"| {q['id']} | {q['title']} | {q['points']} |" for q in rubric),
        written_total=sum(q["points"] for q in rubric),
    )


def build(out: Path) -> Path:
    """Write the bundle to ``out`` and a zip beside it; returns the zip's path."""
    from autograder import __version__
    from reference import QUESTION_NAMES

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ROOT / "autograder", out / "autograder", ignore=IGNORE)
    for family in FAMILIES:
        path = out / "autograder" / "checks" / f"{family}.py"
        path.write_text(strip_hidden_checks(path.read_text()))
    (out / "autograder" / "checks" / tapes.TAPE_FILE.name).write_text(record_tape())
    (out / "reference").mkdir()
    names = "\n".join(f"{n} = _recorded({n!r})" for n in QUESTION_NAMES.values() if n != "KL_SCENARIOS")
    (out / "reference" / "__init__.py").write_text(STUB.format(names=names))
    shutil.copy(HERE / "assignment.ipynb", out / "assignment.ipynb")
    (out / "README.md").write_text(student_readme())
    (out / "pyproject.toml").write_text(PYPROJECT.format(version=__version__))
    return Path(shutil.make_archive(str(out), "zip", out.parent, out.name))


_GENERIC = ("def ", "import ", "from ", "return ", "raise ", "@", "#", '"""', "class ")


def _significant_lines(text: str) -> set[str]:
    lines = {line.strip() for line in text.splitlines()}
    return {line for line in lines if len(line) >= 25 and not line.startswith(_GENERIC)}


def audit(bundle: Path) -> list[str]:
    """Everything in ``bundle`` that could leak a solution or a hidden check (empty when clean)."""
    import reference

    problems = []
    texts = {p: p.read_text(errors="replace") for p in bundle.rglob("*") if p.is_file() and p.suffix != ".zip"}
    # figures.py draws a plot for the model answers: no line of it answers a question.
    sources = [p for p in Path(reference.__file__).parent.glob("*.py") if p.name != "figures.py"]
    solution = set().union(*(_significant_lines(p.read_text()) for p in sources))
    hidden = [c for checks in QUESTIONS.values() for c in checks if c.visibility != PUBLIC]
    for path, text in texts.items():
        rel = path.relative_to(bundle)
        for line in sorted(_significant_lines(text) & solution):
            problems.append(f"{rel}: a line of the reference solution: {line[:80]}")
        # The notebook is the published question text: a hidden check may be named after a
        # requirement the contract states ("ties go to the lowest index") without leaking it.
        for c in hidden if path.suffix != ".ipynb" else ():
            if c.name in text:
                problems.append(f"{rel}: names the hidden check {c.qid} {c.name!r}")
    if sorted(p.name for p in (bundle / "reference").iterdir()) != ["__init__.py"]:
        problems.append("reference/ holds more than the recorded stub")
    tape = json.loads((bundle / "autograder" / "checks" / tapes.TAPE_FILE.name).read_text())
    public = {f"{c.qid}/{c.name}" for checks in QUESTIONS.values() for c in checks if c.visibility == PUBLIC}
    problems += [f"the tape records the non-public check {k}" for k in sorted(set(tape) - public)]
    return problems


def main(argv: list[str]) -> int:
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else ROOT / "dist" / "student"
    archive = build(out)
    print(f"wrote {out} and {archive}")
    problems = audit(out)
    for problem in problems:
        print(f"leak: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
