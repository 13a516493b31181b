"""Build the student bundle: template, engine, public checks, recorded expected values.

    python student_template/dist.py [--out dist/student]   (make student-dist)

It then audits the bundle (``audit``) and exits 1 if anything could leak.

The bundle holds the notebook, the part of the ``autograder`` engine that
``check`` runs (``GRADER_ONLY`` is left out; the command line offers ``check``
alone) with only the public checks (hidden ones are cut from the source), a tape of the values the
public checks expect (recorded by running them on the reference solution),
and a ``reference`` stub that plays that tape. It holds no code of
``reference/`` and nothing a hidden check compares against.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import math
import re
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from autograder.checks import FAMILIES, QUESTIONS  # noqa: E402
from autograder.checks import tape as tapes  # noqa: E402
from autograder.checks.framework import PUBLIC  # noqa: E402
from autograder.contract import BY_ID, CONTRACT  # noqa: E402

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "public_tape.json")
#: Parts of the engine (paths under ``autograder/``) that only the grader runs: ``check`` needs none of them,
#: and the bundle's command line offers ``check`` alone (``MAIN``).
GRADER_ONLY = (
    "runner.py", "discovery.py", "merge.py", "review.py", "verify.py", "cluster.py", "course",
    "cli/grade.py", "cli/job.py", "cli/written.py", "cli/course.py", "cli/verify.py",
    "reports/class_report.py", "reports/similarity.py", "reports/markdown.py",
)

MAIN = '''"""``python -m autograder``: the student bundle's command line, ``check`` alone."""

import sys

try:
    from autograder.cli import student_main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: no traceback
    sys.exit(130)

sys.exit(student_main())
'''

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
python -m venv .venv
. .venv/bin/activate
pip install torch=={torch} --index-url {cpu_index}
pip install -e . ipykernel
python -m ipykernel install --user --name {kernel} --display-name "{kernel_title}"
```

On Windows, activate with `.venv\\Scripts\\activate` instead. The `pip install torch…` line
installs the CPU build of torch (about 200 MB; the checks need no GPU):
a plain `pip install torch` would fetch the multi-GB CUDA build on Linux.
The last line registers this environment as a Jupyter kernel named
"{kernel_title}". Open `assignment.ipynb` and pick that kernel:

- Jupyter Notebook or JupyterLab: *Kernel → Change Kernel… → {kernel_title}*.
- VS Code: *Select Kernel* (top right of the notebook) *→ Jupyter Kernel… → {kernel_title}*
  (or *Python Environments… →* the `.venv` of this folder).

## Run the public checks

```sh
python -m autograder check assignment.ipynb          # every question; exit code 0 when all public checks pass, 1 otherwise
python -m autograder check assignment.ipynb -q C4    # one question
```

It prints a table with one row per question: passed or failed and, for a
failed question, its first failing check with the reason and the smallest
input it fails on. The full message of every failure follows: the function,
the input, what was expected, what your code returned and a hint. The
command runs your notebook in a separate process, as the grader does.

Inside the notebook, after running your cells, check one question (or several,
or all with `check()`) against the functions of your live kernel. It takes a
few seconds and shows a table: for each question, how many public checks
passed and, for a failed one, its first failure with the input, the expected
value and what your code returned. The result is true when every public check
passed, so `assert check("C4")` works too:

```python
from autograder import check
check("C4")
```

Run the cell that defines a function before checking it: otherwise `check`
says it is not defined.

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


def _size(encoded: Any) -> int:
    """How big a wire-encoded example is: tensor elements plus scalars."""
    if isinstance(encoded, dict):
        if "$t" in encoded:
            return max(1, math.prod(encoded["s"]))
        return sum(_size(v) for k, v in encoded.items() if k not in ("$fn", "$f"))
    if isinstance(encoded, list):
        return sum(_size(v) for v in encoded)
    return 1


def smallest_first(data: dict[str, Any]) -> dict[str, Any]:
    """The tape ``data`` with each check's examples (and their values) from the smallest up.

    The bundle plays a check's recorded examples in order and reports the
    first that fails, so this order makes it report the smallest failing one
    (the grader reports the one hypothesis shrank instead).
    """
    for key, record in data.items():
        examples, values = record["examples"], record["values"]
        if not examples:
            continue
        if len(values) != len(examples) + 1:
            raise SystemExit(f"tape of {key}: {len(examples)} examples but {len(values)} value slots")
        order = sorted(range(len(examples)), key=lambda i: (_size(examples[i]), len(json.dumps(examples[i])), i))
        record["examples"] = [examples[i] for i in order]
        record["values"] = values[:1] + [values[i + 1] for i in order]
    return data


def record_tape() -> str:
    """Run every public check on the solution notebook's code, recording the reference values."""
    import reference
    from autograder.local import LocalSession, run_public_checks
    from autograder.notebook import read_notebook

    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):  # the solution's own demo prints
        for cell in read_notebook((ROOT / "examples" / "submissions" / "solution.ipynb").read_bytes()).code_cells:
            exec(compile(cell.source, "<solution>", "exec"), namespace)  # noqa: S102 - our own solution
    with tapes.recording(reference, [e.name for e in CONTRACT]) as tape:
        results = run_public_checks(LocalSession(namespace), tuple(BY_ID))
    wrong = [r.message for r in results if r.status != "passed"]
    if wrong:
        raise SystemExit("the reference fails public checks:\n" + "\n".join(wrong))
    return json.dumps(smallest_first(json.loads(tape.dumps())), separators=(",", ":"), sort_keys=True)


def _public_list() -> str:
    return "\n".join(
        f"- **{qid}** `{BY_ID[qid].name}`: " + "; ".join(c.name for c in checks if c.visibility == PUBLIC)
        for qid, checks in QUESTIONS.items()
    )


CPU_INDEX = "https://download.pytorch.org/whl/cpu"
KERNEL = "dgm-assignment"
KERNEL_TITLE = "DGM assignment (CPU torch)"


def torch_pin() -> str:
    """The torch version the Makefile installs: the one pin every install of this project names."""
    return re.search(r"torch==([\w.+-]+)", (ROOT / "Makefile").read_text()).group(1)


def student_readme() -> str:
    rubric = tomllib.loads((HERE / "rubric.toml").read_text())["question"]
    return README.format(
        torch=torch_pin(), cpu_index=CPU_INDEX, kernel=KERNEL, kernel_title=KERNEL_TITLE,
        public=_public_list(),
        code="\n".join(f"| {e.qid} | `{e.name}` | {e.points} |" for e in CONTRACT),
        written="\n".join(f"| {q['id']} | {q['title']} | {q['points']} |" for q in rubric),
        written_total=sum(q["points"] for q in rubric),
    )


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What ``build`` leaves out of the copy of ``autograder/``: caches, the tape file, ``GRADER_ONLY``."""
    return set(IGNORE(folder, names)) | {n for n in names if not shipped(Path(folder) / n)}


def build(out: Path) -> Path:
    """Write the bundle to ``out`` and a zip beside it; returns the zip's path."""
    from autograder import __version__

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ROOT / "autograder", out / "autograder", ignore=_ignore)
    (out / "autograder" / "__main__.py").write_text(MAIN)
    for family, source in stripped_sources().items():
        (out / "autograder" / "checks" / f"{family}.py").write_text(source)
    (out / "autograder" / "checks" / tapes.TAPE_FILE.name).write_text(record_tape())
    (out / "reference").mkdir()
    names = "\n".join(f"{n} = _recorded({n!r})" for n in (e.name for e in CONTRACT) if n != "KL_SCENARIOS")
    (out / "reference" / "__init__.py").write_text(STUB.format(names=names))
    shutil.copy(HERE / "assignment.ipynb", out / "assignment.ipynb")
    (out / "README.md").write_text(student_readme())
    (out / "pyproject.toml").write_text(PYPROJECT.format(version=__version__))
    return Path(shutil.make_archive(str(out), "zip", out.parent, out.name))


_GENERIC = ("def ", "import ", "from ", "raise ", "@", "#", '"""', "class ")
#: Shorter lines are too common to tell anything ("return z_q, indices" is 19 characters).
MIN_LINE = 20


def _significant_lines(text: str) -> set[str]:
    lines = {line.strip() for line in text.splitlines()}
    return {line for line in lines if len(line) >= MIN_LINE and not line.startswith(_GENERIC)}


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
    a command line of ``check`` alone, ``reference/`` the recorded stub alone, a tape of
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
    stub = bundle / "reference"
    if not stub.is_dir() or sorted(p.name for p in stub.iterdir()) != ["__init__.py"]:
        problems.append("reference/ is not the recorded stub alone")
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
