"""Hostile and broken submissions: contained, nothing lost, everything explained.

Each case of ``corpus.CASES`` is graded once (on the solution, questions
``QIDS``) with one module sandbox: the batch goes on, the offender keeps the
points its honest parts earn, and its status is one clear line. Then two
classes are graded with ``grade_class``, with and without every offender
(plus folder-level attacks), and the honest students' reports must be
byte-identical.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from pathlib import Path

import pytest

from autograder.contract import BY_ID
from autograder.grading import grade_notebook
from autograder.notebook import read_notebook
from autograder.reports.layout import plain_text
from autograder.runner import grade_class, student_dir
from autograder.sandbox.isolation import detect
from autograder.sandbox import worker
from autograder.sandbox.process import Limits, Sandbox
from autograder.sandbox.session import StudentSession
from tests.hostile.corpus import BY_NAME, CASES, EMPTY, QIDS, SOLUTION, output_folder_attack, partial

pytestmark = pytest.mark.skipif(not SOLUTION.is_file(), reason="the solution notebook is not built yet (make notebooks)")

LIMITS = Limits(cell_seconds=8, call_seconds=5)
NAMESPACES = detect().level == "namespaces"
HONEST, VICTIM = "zoë o'brien 学生 (final)", "aaron"  # sort after and before every offender
PART_A = {"KL_SCENARIOS", "forward_kl_loss", "reverse_kl_loss", "forward_kl_loss_is", "fit_gaussian_to_mixture"}


def _params(cases):
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(LIMITS) as sb:
        yield sb


@pytest.fixture(scope="module")
def graded(sandbox):
    cache = {}

    def get(name: str):
        if name not in cache:
            data = SOLUTION.read_bytes() if name == "solution" else BY_NAME[name].notebook()
            cache[name] = grade_notebook(data, sandbox=sandbox, qids=QIDS)
        return cache[name]

    return get


def _one_line(status: str) -> bool:
    return 0 < len(status) <= 200 and status.isprintable() and status == " ".join(status.split())


# -- one notebook at a time -------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(CASES))
def test_an_attack_costs_only_what_it_breaks(graded, case):
    honest, got = graded("solution"), graded(case.name)
    assert honest.status == "ok" and honest.scores == {q: float(BY_ID[q].points) for q in QIDS}
    kept = [q for q in QIDS if q not in case.lost]
    lost = {r.qid: plain_text(r) for r in got.checks if r.status != "passed" and r.qid in kept}
    assert {q: got.scores[q] for q in kept} == {q: honest.scores[q] for q in kept}, lost
    assert all(got.scores[q] < honest.scores[q] for q in case.lost), got.scores
    assert case.status_matches(got.status), got.status
    assert _one_line(got.status), got.status


MESSAGES = {  # case → (question, what its feedback must say)
    "syntax_error": ("B2", "covariance_from_scale_tril is not defined (code cell 9: SyntaxError: invalid syntax"),
    "infinite_loop_in_function": ("B2", "got      : timed out after 5 s\n  hint     : look for an infinite loop"),
    "ignores_signals": ("B2", "got      : timed out after 5 s"),
    "os_exit_in_function": ("B2", "got      : the process died (exit code 0)\n  hint     : do not exit, fork"),
    "memory_bomb_in_function": ("B2", "DefaultCPUAllocator: can't allocate memory"),
    "lying_object": ("B2", "got      : <an object of type Liar>"),
    "lying_tensor": ("B2", "Σ differs from the reference"),
    "patch_comparisons": ("B2", "Σ differs from the reference"),
    "read_reference": ("B2", "Σ differs from the reference"),
    "hostile_signature": ("B2", "covariance_from_scale_tril could not be inspected: the process died (exit code 3)"),
    "invalid_json": ("A1", "notebook does not parse (not valid JSON)"),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_feedback_says_what_happened(graded, name):
    qid, text = MESSAGES[name]
    messages = [plain_text(r) for r in graded(name).checks if r.qid == qid and r.status != "passed"]
    assert any(text in m for m in messages), messages


def test_top_level_hazards_are_skipped_and_the_other_cells_replayed(graded):
    for name in ("os_exit_top", "infinite_loop_top", "channel_takeover", "patch_isinstance"):
        cells = graded(name).cells
        bad = [c for c in cells if c.status != "ok"]
        assert len(bad) == 1 and bad[0].status in ("crash", "timeout", "broken"), (name, bad)


def test_shell_escapes_and_magics_are_not_run(graded):
    cells = graded("shell_escapes").cells
    notes = [c.note for c in cells if c.note]
    assert "2 shell escape or magic line(s) were not run" in notes and "cell magic %%bash was not run" in notes


@pytest.mark.skipif(not NAMESPACES, reason="the fallback (no bubblewrap) cannot hide files")
def test_the_grader_files_are_neither_readable_nor_importable(sandbox):
    cells = read_notebook(BY_NAME["read_reference"].notebook()).code_cells
    with StudentSession(sandbox, cells) as session:
        assert session.call("leaks", seed=0, seconds=120).value == []


@pytest.mark.skipif(not NAMESPACES, reason="the fallback (no bubblewrap) keeps the network")
def test_there_is_no_network(sandbox):
    cells = read_notebook(BY_NAME["network"].notebook(EMPTY)).code_cells
    with StudentSession(sandbox, cells) as session:
        assert session.call("network", seed=0).value == []


def test_the_sandbox_grades_honestly_after_every_attack(graded, sandbox):
    again = grade_notebook(SOLUTION.read_bytes(), sandbox=sandbox, qids=QIDS)
    assert again == graded("solution")


# -- a class with and without the offenders ---------------------------------------------------------


FOLDER_CASES = {  # relative path → pattern of the student's status (None: another path of the same student)
    "twice/a.ipynb": re.escape("2 notebooks for one student (twice/a.ipynb, twice/b.ipynb); keep one"),
    "twice/b.ipynb": None,
    "m-dup.ipynb": re.escape("2 notebooks for one student (m-dup/x.ipynb, m-dup.ipynb); keep one"),
    "m-dup/x.ipynb": None,
    unicodedata.normalize("NFC", "m-é.ipynb"): r"2 notebooks for one student \(m-.*\); keep one",
    unicodedata.normalize("NFD", "m-é.ipynb"): None,
    "gradebook.csv.ipynb": "ok",
    "report.html.ipynb": "ok",
    "review.ipynb": "ok",
    "m-x\\y.ipynb": "ok",
    "m-x_y.ipynb": "ok",
    ".m-hidden.ipynb": None,
    os.fsdecode(b"m-bad\xff.ipynb"): "ok",
}


def _class(folder: Path, *, offenders: bool, out: Path) -> None:
    folder.mkdir()
    (folder / f"{VICTIM}.ipynb").write_bytes(partial(PART_A))
    (folder / f"{HONEST}.ipynb").write_bytes(SOLUTION.read_bytes())
    if not offenders:
        return
    for case in CASES:
        if not case.slow:
            (folder / f"m-{case.name}.ipynb").write_bytes(case.notebook(EMPTY))
    for rel in FOLDER_CASES:
        (folder / rel).parent.mkdir(exist_ok=True)
        (folder / rel).write_bytes(partial({"KL_SCENARIOS"}))
    with open(folder / "m-huge-file.ipynb", "wb") as f:
        f.truncate(300 * 2**20)  # sparse: never read
    (folder / "m-output-folder.ipynb").write_bytes(output_folder_attack(out, VICTIM, "m-output-folder"))


@pytest.fixture(scope="module")
def classes(tmp_path_factory, sandbox):
    """(clean out, hostile out): the honest students alone, then with every offender, both at -j 1."""
    base = tmp_path_factory.mktemp("class")
    outs = base / "out-clean", base / "out-hostile"
    _class(base / "clean", offenders=False, out=outs[0])
    _class(base / "hostile", offenders=True, out=outs[1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker, "_SANDBOX", sandbox)  # the short time limits of this module
        grade_class(base / "clean", outs[0], jobs=1)
        grade_class(base / "hostile", outs[1], jobs=1)
    return outs


def _reports(out: Path, student: str) -> dict[str, bytes]:
    return {name: (student_dir(out, student) / name).read_bytes() for name in ("results.json", "feedback.md")}


def _gradebook(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_honest_reports_are_byte_identical_with_and_without_offenders(classes):
    clean, hostile = classes
    for student in (VICTIM, HONEST):
        assert _reports(hostile, student) == _reports(clean, student), student
    rows = _gradebook(clean)
    assert rows[HONEST]["total"] == "100" and rows[HONEST]["status"] == "ok"
    assert rows[VICTIM]["total"] == str(sum(BY_ID[q].points for q in ("A1", "A2", "A3", "A4", "A5")))


def test_every_offender_gets_its_row_and_a_one_line_status(classes):
    rows = _gradebook(classes[1])
    for case in CASES:
        if not case.slow:
            status = rows[f"m-{case.name}"]["status"]
            assert case.status_matches(status) and _one_line(status), (case.name, status)
    assert all(_one_line(r["status"]) for r in rows.values())


def test_folder_level_attacks(classes):
    out = classes[1]
    rows = _gradebook(out)
    expected = {unicodedata.normalize("NFC", rel.split("/")[0].removesuffix(".ipynb").replace("\udcff", "\ufffd")): s
                for rel, s in FOLDER_CASES.items() if s is not None}
    for student, status in expected.items():
        assert re.fullmatch(status, rows[student]["status"]), (student, rows[student]["status"])
    assert rows["m-huge-file"]["status"] == "notebook is larger than 256 MB"
    assert not any(s.startswith(".") or "hidden" in s for s in rows)
    assert (out / "gradebook.csv").is_file() and (out / "report.html").is_file()
    dirs = [student_dir(out, s) for s in rows]
    assert len(set(dirs)) == len(dirs) and all(d.parent == out and (d / "results.json").is_file() for d in dirs)


@pytest.mark.skipif(not NAMESPACES and os.geteuid() != 0,
                    reason="the fallback without root runs students as the grader's own user")
def test_the_output_folder_is_out_of_reach(classes):
    clean, out = classes
    assert not [p for p in out.rglob("planted*")]
    assert _reports(out, VICTIM) == _reports(clean, VICTIM)
    row = _gradebook(out)["m-output-folder"]
    assert row["total"] == "0" and row["status"] == "ok"


@pytest.mark.slow
def test_in_parallel_with_every_offender_honest_reports_do_not_change(classes, tmp_path):
    """The whole corpus (slow cases too) at -j 2 with the default limits, against the clean run."""
    out = tmp_path / "out"
    _class(tmp_path / "hostile", offenders=True, out=out)
    for case in CASES:
        if case.slow:
            (tmp_path / "hostile" / f"m-{case.name}.ipynb").write_bytes(case.notebook(EMPTY))
    outcomes = grade_class(tmp_path / "hostile", out, jobs=2)
    assert {o.student for o in outcomes} >= {f"m-{c.name}" for c in CASES}
    for student in (VICTIM, HONEST):
        assert _reports(out, student) == _reports(classes[0], student), student
