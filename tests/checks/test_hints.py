"""Hints diagnose, they never give the answer (issue 11).

Every text a check can show a student (hints, diagnosis labels, summaries:
every string literal of the check modules outside docstrings) is held
against the reference source: no run of 4 code tokens of ``reference/``, no
``torch.``/``F.`` call, no assignment to a contract name. The untouched
template gets no hint beyond "not implemented yet"; a flawed example
notebook gets the hint that names its mistake. These run in this process
(LocalSession, as the bundle's ``check()`` does) on the project's own
notebooks, so they need no sandbox.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import time
import tokenize
from pathlib import Path

import pytest

from autograder.reports.layout import plain_text
import autograder.checks as checks
from autograder.checks import QUESTIONS, run_check
from autograder.checks.diagnose import NOT_IMPLEMENTED, Diagnosis, diagnose, matches
from autograder.checks.framework import PUBLIC
from autograder.contract import CONTRACT
from autograder.local import LocalSession, check
from autograder.notebook import read_notebook

ROOT = Path(__file__).resolve().parents[2]
CHECK_MODULES = [ROOT / "autograder" / "checks" / f"{f}.py" for f in (*checks.FAMILIES, "diagnose", "compare", "evidence")]
NGRAM = 4

_SKIP = {tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER, tokenize.ENCODING}
_TEXT_TOKEN = re.compile(r"[^\W\d]\w*|\d+(?:\.\d+)?|\*\*|//|==|!=|<=|>=|->|\S")
#: Calls of a library function written as code: ``torch.tril(``, ``F.softplus(``, ``x.diagonal(``.
_CALL = re.compile(r"\b(?:torch|F|D|nn|np|math|sympy)\.\w+(?:\.\w+)*\s*\(|\b\w+\.\w+\s*\(")
#: Names the contract gives its arguments and results, and common names of solution code.
CONTRACT_NAMES = sorted({p for e in CONTRACT for p in e.params} | {e.name for e in CONTRACT}
                        | {"Sigma", "z_q", "idx", "loss", "logits", "probs", "recon", "kl", "weights", "log_w"})
#: ``name = <code>``: a contract name assigned an expression with a call, an index or an attribute.
_ASSIGN = re.compile(r"(?<![\w.=!<>])(?:" + "|".join(map(re.escape, CONTRACT_NAMES))
                     + r")\s*(?:\[[^\]]*\])?\s*=(?!=)\s*[^,;:\s][^,;:]*?[(\[.]")
#: A run of tokens is code when it holds an operator, not only names, numbers and brackets ("(loc, scale)").
_OPERATORS = {".", "=", "+", "-", "*", "/", "@", "**", "//", "%", "<", ">", "==", "!=", "<=", ">=", "~"}


def _code_tokens(source: str) -> list[str]:
    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in _SKIP]


def _ngrams(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + NGRAM]) for i in range(len(tokens) - NGRAM + 1)}


REFERENCE_NGRAMS = set().union(*(_ngrams(_code_tokens(p.read_text())) for p in (ROOT / "reference").glob("*.py")))


def solution_code(text: str) -> list[str]:
    """Why ``text`` reads as solution code (empty when it does not)."""
    tokens = _TEXT_TOKEN.findall(text.replace("−", "-").replace("·", "*"))
    found = [f"reference code {' '.join(g)!r}" for g in sorted(_ngrams(tokens) & REFERENCE_NGRAMS)
             if _OPERATORS & set(g)]
    found += [f"a call {m.group(0)!r}" for m in _CALL.finditer(text)]
    found += [f"an assignment {m.group(0)!r}" for m in _ASSIGN.finditer(text)]
    return found


def _not_shown(tree: ast.AST) -> set[int]:
    """Docstrings, and the question ids and names of ``@check`` (names state the contract, e.g. "Σ = L Lᵀ")."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
            ids |= {id(a) for a in node.args[:2]}
    return ids


def shown_texts() -> list[tuple[str, str]]:
    """``(where, text)`` of every string literal of the check modules outside docstrings, and of every hint
    and diagnosis label the checks hold at run time."""
    texts = []
    for path in CHECK_MODULES:
        tree = ast.parse(path.read_text())
        skip = _not_shown(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                texts.append((f"{path.name}:{node.lineno}", node.value))
    texts += [(f"{c.qid} {c.name!r}", c.hint) for qs in QUESTIONS.values() for c in qs]
    for family in checks.FAMILIES:
        module = getattr(checks, family)
        for name, value in vars(module).items():
            texts += [(f"{family}.{name}", d.label) for d in _diagnoses(value)]
            if isinstance(value, str) and "HINT" in name:
                texts.append((f"{family}.{name}", value))
    return texts


def _diagnoses(value) -> list[Diagnosis]:
    if isinstance(value, Diagnosis):
        return [value]
    if isinstance(value, (tuple, list)):
        return [d for v in value for d in _diagnoses(v)]
    if isinstance(value, dict):
        return [d for v in value.values() for d in _diagnoses(v)]
    return []


def test_the_detector_flags_the_hints_that_gave_the_answers_away():
    for leaked in ("L = torch.tril(raw, -1) + torch.diag_embed(F.softplus(raw.diagonal(dim1=-2, dim2=-1)))",
                   "Σ = L Lᵀ (L @ L.mT), not Lᵀ L",
                   "z_q = z_e + (e - z_e).detach(): the detach goes on the difference, not on z_e",
                   "use torch.logsumexp(log_p, 0) - math.log(S): exp(−10⁴) underflows"):
        assert solution_code(leaked), leaked
    assert not solution_code("your Σ equals Lᵀ L; the contract of B2 asks L Lᵀ")


def test_no_text_a_check_shows_holds_solution_code():
    texts = shown_texts()
    assert len(texts) > 200 and sum(1 for where, _ in texts if "." in where and "HINT" in where) > 10
    leaks = [f"{where}: {problem} in {text[:100]!r}" for where, text in texts for problem in solution_code(text)]
    assert not leaks, "\n".join(leaks)


def test_every_question_has_diagnoses_or_contract_pointers():
    for qid, qs in QUESTIONS.items():
        for c in qs:
            assert c.hint and not solution_code(c.hint), (qid, c.name)


def test_a_diagnosis_matches_only_its_own_mistake():
    import torch

    L = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    undefined = Diagnosis("undefined here", lambda L: L @ torch.ones(3))  # a shape error: skipped
    table = (undefined, Diagnosis("transposed", lambda L: L.mT @ L))
    assert diagnose(L.mT @ L, table, {"L": L}, "pointer", L @ L.mT) == "transposed"
    assert diagnose(L @ L, table, {"L": L}, "pointer", L @ L.mT) == "pointer"
    diagonal = torch.eye(2) * 2  # L Lᵀ = Lᵀ L: the mistake tells nothing here
    assert diagnose(diagonal @ diagonal, table, {"L": diagonal}, "pointer", diagonal @ diagonal) == "pointer"
    assert not matches("tensor", L) and not matches((L,), (L, L)) and not matches(L[0], L)
    assert matches(torch.tensor([float("nan"), -float("inf")]), torch.tensor([float("nan"), -float("inf")]))


# -- notebooks through the public checks, in this process ----------------------------------------


def _namespace(path: Path) -> dict:
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in read_notebook(path.read_bytes()).code_cells:
            exec(compile(cell.source, str(path), "exec"), namespace)  # noqa: S102 - the project's own notebooks
    return namespace


def _hint(message: str) -> str:
    return next((line.split(":", 1)[1].strip() for line in message.splitlines() if line.strip().startswith("hint")),
                "")


def test_the_untouched_template_gets_no_hint_but_not_implemented_yet():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert not check(namespace=_namespace(ROOT / "student_template" / "assignment.ipynb"))
    hints = [line for line in out.getvalue().splitlines() if line.strip().startswith("hint")]
    assert len(hints) == sum(c.visibility == PUBLIC for qs in QUESTIONS.values() for c in qs)
    assert {_hint(h) for h in hints} == {NOT_IMPLEMENTED}


def test_a_stub_returning_none_is_not_implemented_yet():
    results = [run_check(LocalSession({"covariance_from_scale_tril": lambda L: None}), c, 0, time.monotonic() + 60)
               for c in QUESTIONS["B2"]]
    assert all(r.status == "failed" and _hint(plain_text(r)) == NOT_IMPLEMENTED for r in results)


FLAWED = [  # (notebook, question, words of the hint of its first failing public check)
    ("transposed_cholesky", "B2", "your Σ equals Lᵀ L"),
    ("exp_diagonal", "B1", "your diagonal is exp(raw_ii)"),
    ("log_sigmoid", "C4", "log(sigmoid(ℓ))"),
    ("argmax_sampler", "E1", "argmax gives the mode"),
    ("detach_wrong_side", "D1", "the stop-gradient sits on the wrong term"),
    ("ema_no_smoothing", "D3", "Laplace-smoothed"),
    ("logvar_as_variance", "E5", "treats logvar as a variance"),
    ("naive_logmeanexp", "E2", "your estimate is −∞"),
    ("seed_entropy", "C4", "the slip of seed 004 §3.5"),
]


@pytest.mark.parametrize(("notebook", "qid", "words"), FLAWED, ids=[f[0] for f in FLAWED])
def test_a_flawed_notebook_gets_the_hint_naming_its_mistake(notebook, qid, words):
    session = LocalSession(_namespace(ROOT / "examples" / "submissions" / f"{notebook}.ipynb"))
    deadline = time.monotonic() + 120
    failing = next(r for c in QUESTIONS[qid] if c.visibility == PUBLIC
                   for r in [run_check(session, c, 0, deadline)] if r.status != "passed")
    assert words in _hint(plain_text(failing)), plain_text(failing)
    assert not solution_code(_hint(plain_text(failing)))


@pytest.mark.slow
def test_the_bundle_s_played_tape_gives_the_same_diagnoses():
    """As in the student bundle: examples and reference values played from a freshly recorded tape."""
    import importlib.util
    import json

    from autograder.checks import tape as tapes

    spec = importlib.util.spec_from_file_location("h6_student_dist", ROOT / "student_template" / "dist.py")
    dist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dist)
    tape = tapes.TapeOracle(json.loads(dist.record_tape()))
    for notebook, qid, words in FLAWED:
        session = LocalSession(_namespace(ROOT / "examples" / "submissions" / f"{notebook}.ipynb"))
        deadline = time.monotonic() + 120
        failing = next(r for c in QUESTIONS[qid] if c.visibility == PUBLIC
                       for r in [run_check(session, c, 0, deadline, truth=tape)] if r.status != "passed")
        assert words in _hint(plain_text(failing)), (notebook, plain_text(failing))
