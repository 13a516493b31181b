"""What the student bundle holds: the template, the engine, public checks and their tape; nothing that leaks.

Run out of the bundle: test_bundle_runs.py; which flaws the public checks
catch: test_public_subset.py.
"""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import reference
import reference.vq
from autograder.checks import FAMILIES, QUESTIONS
from autograder.checks.framework import PUBLIC
from autograder.contract import CONTRACT
from tests.dist.helpers import ROOT

PUBLIC_KEYS = {f"{c.qid}/{c.name}" for checks in QUESTIONS.values() for c in checks if c.visibility == PUBLIC}
HIDDEN = [c for checks in QUESTIONS.values() for c in checks if c.visibility != PUBLIC]


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_the_bundle_holds_the_template_the_engine_the_tape_and_a_readme(bundle, dist):
    files = _files(bundle)
    assert (bundle / "assignment.ipynb").read_bytes() == (ROOT / "student_template" / "assignment.ipynb").read_bytes()
    engine = {p.relative_to(ROOT).as_posix() for p in (ROOT / "autograder").rglob("*.py") if "__pycache__" not in p.parts}
    shipped = {f for f in engine if dist.shipped(ROOT / f)}
    assert shipped <= files  # the engine `check` runs, so the bundle's `check` is the grader's
    assert not [f for f in files if f.startswith("autograder/") and f not in shipped and f.endswith(".py")]
    top = {f.split("/")[0] for f in files}
    assert top == {"assignment.ipynb", "README.md", "pyproject.toml", "autograder"}  # no reference/ at all
    assert not [f for f in files if f.endswith((".pyc", ".zip", ".toml.bak")) or "__pycache__" in f]
    assert "autograder/checks/public_tape.json" in files
    with zipfile.ZipFile(bundle.parent / "student.zip") as z:
        assert {n.removeprefix("student/") for n in z.namelist() if not n.endswith("/")} == files


def test_the_bundle_passes_its_audit(bundle, dist):
    assert dist.audit(bundle) == []


def test_the_bundle_has_no_reference_and_its_tape_answers_contract_questions_only(bundle):
    assert not (bundle / "reference").exists()
    assert not (bundle / "autograder" / "checks" / "live.py").exists()  # the oracle that calls the reference
    tape = json.loads((bundle / "autograder" / "checks" / "public_tape.json").read_text())
    asked = {q[0] for record in tape.values() for example in record["values"] for q in example}
    assert asked and asked <= {e.name for e in CONTRACT}
    assert "KL_SCENARIOS" not in asked  # A1's answer is a hidden check's


def test_the_bundle_check_modules_hold_public_checks_only_and_no_dead_code(bundle, dist):
    for family in FAMILIES:
        tree = ast.parse((bundle / "autograder" / "checks" / f"{family}.py").read_text())
        checks = [d for n in tree.body for d in getattr(n, "decorator_list", [])
                  if isinstance(d, ast.Call) and getattr(d.func, "id", None) == "check"]
        assert checks, family
        for deco in checks:
            public = {k.arg: k.value for k in deco.keywords}.get("public")
            assert isinstance(public, ast.Constant) and public.value is True, ast.unparse(deco)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        used |= dist._imported_from_checks().get(f"autograder.checks.{family}", frozenset())  # by other modules
        for node in tree.body:
            names = dist._names(node)
            if names and isinstance(node, (ast.FunctionDef, ast.Assign)) and not getattr(node, "decorator_list", []):
                assert any(n in used or n.startswith("__") for n in names), f"{family}: {names} left behind"


def test_the_tape_records_public_checks_only_smallest_example_first(bundle, dist):
    tape = json.loads((bundle / "autograder" / "checks" / "public_tape.json").read_text())
    assert set(tape) == PUBLIC_KEYS
    assert not [k for k in tape for c in HIDDEN if c.name in k]
    for key, record in tape.items():
        assert set(record) == {"examples", "values"}, key
        sizes = [dist._size(e) for e in record["examples"]]
        assert sizes == sorted(sizes), key
        if record["examples"]:
            assert len(record["values"]) == len(record["examples"]) + 1, key


def test_strip_drops_hidden_checks_and_everything_only_they_use(dist):
    source = '''
SHARED_HINT = "shared"
HIDDEN_HINT = "the answer is 42"
EXPORTED = "imported elsewhere"
_ANSWER = 42


def helper_of_hidden(x):
    return x == _ANSWER


@check("Z1", "public one", points=1, public=True, hint=SHARED_HINT)
def _public(ctx):
    pass


@check("Z1", "hidden one", points=1, hint=HIDDEN_HINT)
def _hidden(ctx):
    assert helper_of_hidden(ctx) and SHARED_HINT
'''
    stripped = dist.strip_hidden_checks(source, frozenset({"EXPORTED"}))
    ast.parse(stripped)
    for gone in ("HIDDEN_HINT", "_ANSWER", "helper_of_hidden", "hidden one", "42"):
        assert gone not in stripped
    for kept in ("SHARED_HINT", "EXPORTED", "public one"):
        assert kept in stripped


def test_the_audit_reports_a_reference_line_and_a_hidden_check_name(bundle_copy, dist):
    """The issue's case: one line of reference/ and one hidden check's name, inserted in a copied bundle."""
    line = next(s.strip() for s in Path(reference.vq.__file__).read_text().splitlines()
                if s.strip().startswith("return") and "detach()" in s)
    local = bundle_copy / "autograder" / "local.py"
    local.write_text(local.read_text() + f"\n\ndef _peek(e, z_e):\n    {line}\n")
    hidden = HIDDEN[0]
    readme = bundle_copy / "README.md"
    readme.write_text(readme.read_text() + f"\nAlso checked: {hidden.name}\n")
    problems = dist.audit(bundle_copy)
    assert f"autograder/local.py: a line of the reference solution: {line[:80]}" in problems
    assert f"README.md: names the hidden check {hidden.qid} {hidden.name!r}" in problems
    # both files now differ from the zip's copies
    assert "student.zip: student/autograder/local.py differs from the folder's" in problems
    assert "student.zip: student/README.md differs from the folder's" in problems


def test_the_audit_looks_inside_the_notebook_cells(bundle_copy, dist):
    """JSON escapes hide a pasted solution from a line-by-line look at the .ipynb text: cells are read too."""
    line = next(s.strip() for s in Path(reference.vq.__file__).read_text().splitlines()
                if s.strip().startswith("return") and "detach()" in s)
    path = bundle_copy / "assignment.ipynb"
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and "def quantize" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]) + f"\n    {line}\n"
    # The notebook is the published question text: a requirement a hidden check is named after may be in it.
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": f"Note: {HIDDEN[0].name}."})
    path.write_text(json.dumps(nb, indent=1))
    problems = dist.audit(bundle_copy)
    assert f"assignment.ipynb: a line of the reference solution: {line[:80]}" in problems
    assert not [p for p in problems if "names the hidden check" in p]


def test_the_audit_reports_hidden_check_code_extra_reference_modules_tape_records_and_zip_extras(bundle_copy, dist):
    hidden_line = sorted(dist.hidden_check_lines())[0]
    kl = bundle_copy / "autograder" / "checks" / "kl.py"
    kl.write_text(kl.read_text() + f"\n{hidden_line}\n")
    (bundle_copy / "reference").mkdir()
    (bundle_copy / "reference" / "vq.py").write_text(Path(reference.vq.__file__).read_text())
    tape_path = bundle_copy / "autograder" / "checks" / "public_tape.json"
    tape = json.loads(tape_path.read_text())
    hidden_key = f"{HIDDEN[0].qid}/{HIDDEN[0].name}"
    tape[hidden_key] = {"examples": [], "values": [[]]}
    tape_path.write_text(json.dumps(tape))
    with zipfile.ZipFile(bundle_copy.parent / "student.zip", "a") as z:
        z.writestr("student/answers.txt", "C B C")
    problems = dist.audit(bundle_copy)
    assert f"autograder/checks/kl.py: a line of a hidden check: {hidden_line[:80]}" in problems
    assert "reference/ is in the bundle" in problems
    assert any(p.startswith("reference/vq.py: a line of the reference solution") for p in problems)
    assert f"the tape records the non-public check {hidden_key}" in problems
    assert "student.zip holds student/answers.txt, which is not in the folder" in problems


def test_the_readme_documents_the_commands_and_which_checks_are_public(bundle):
    readme = (bundle / "README.md").read_text()
    assert "python -m autograder check assignment.ipynb" in readme
    assert 'from autograder import check' in readme and 'check("C4")' in readme
    listed = {line.split("**")[1]: line for line in readme.splitlines() if line.startswith("- **")}
    assert set(listed) == set(QUESTIONS)
    for qid, checks in QUESTIONS.items():
        for c in checks:
            assert (c.name in listed[qid]) == (c.visibility == PUBLIC), (qid, c.name)
    assert "hidden checks" in readme.lower()


def test_smallest_first_moves_each_example_with_its_recorded_values(dist):
    big = {"$t": "float32", "s": [4, 3], "d": ""}
    small = {"$t": "float32", "s": [1], "d": ""}
    middle = {"$tuple": [{"$t": "float64", "s": [2, 2], "d": ""}, 1.5]}
    data = {"Z1/check": {"examples": [big, small, middle], "values": [[], [["f", "B"]], [["f", "S"]], [["f", "M"]]]},
            "Z1/value": {"examples": [], "values": [[["f", "V"]]]}}
    out = dist.smallest_first(json.loads(json.dumps(data)))
    assert out["Z1/check"]["examples"] == [small, middle, big]
    assert out["Z1/check"]["values"] == [[], [["f", "S"]], [["f", "M"]], [["f", "B"]]]
    assert out["Z1/value"] == data["Z1/value"]
