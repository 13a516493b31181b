"""`python -m autograder grade` end to end on a tiny class: outputs, formats, exit codes, resume."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.contract import QUESTION_IDS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"


def _grade(subs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    subs = tmp_path_factory.mktemp("subs")
    shutil.copy(EXAMPLES / "transposed_cholesky.ipynb", subs / "ada lovelace é.ipynb")
    (subs / "broken.ipynb").write_text("{ this is not json")
    (subs / "twice").mkdir()
    shutil.copy(EXAMPLES / "blank_template.ipynb", subs / "twice" / "a.ipynb")
    shutil.copy(EXAMPLES / "blank_template.ipynb", subs / "twice" / "b.ipynb")
    out = tmp_path_factory.mktemp("out")
    first = _grade(subs, out)
    return subs, out, first


def test_gradebook_has_the_contract_columns_and_one_line_statuses(class_run):
    _, out, first = class_run
    assert first.returncode == 1, first.stdout + first.stderr  # two submissions could not be graded
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert list(rows[0]) == ["student", "total", "max_total", *QUESTION_IDS, "status"]
    by = {r["student"]: r for r in rows}
    assert by["broken"]["status"] == "notebook does not parse (not valid JSON)" and by["broken"]["total"] == "0"
    assert by["twice"]["status"].startswith("2 notebooks for one student")
    ada = by["ada lovelace é"]
    assert ada["status"] == "ok" and ada["B2"] != "2" and ada["max_total"] == "100"
    assert float(ada["total"]) == sum(float(ada[q]) for q in QUESTION_IDS)


def test_results_json_follows_gradescope_format(class_run):
    _, out, _ = class_run
    doc = json.loads((out / "ada lovelace é" / "results.json").read_text())
    assert set(doc) >= {"score", "tests", "output", "visibility"}
    for test in doc["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility", "number"}
        assert test["visibility"] in ("visible", "after_published")
    b2 = [t for t in doc["tests"] if t["number"].startswith("B2.") and t["score"] < t["max_score"]]
    assert b2 and "covariance_from_scale_tril" in b2[0]["output"] and "hint" in b2[0]["output"]


def test_feedback_names_the_function_and_the_hint(class_run):
    _, out, _ = class_run
    text = (out / "ada lovelace é" / "feedback.md").read_text()
    assert "### B2 `covariance_from_scale_tril`" in text and "expected :" in text and "hint     :" in text


def test_a_rerun_resumes_and_gives_identical_bytes(class_run):
    subs, out, _ = class_run
    before = {p: p.read_bytes() for p in out.rglob("results.json")}
    second = _grade(subs, out, "--json")
    summary = json.loads(second.stdout)
    assert all(s["resumed"] for s in summary["students"] if s["student"] != "broken" and s["student"] != "twice")
    assert {p: p.read_bytes() for p in out.rglob("results.json")} == before


def test_usage_errors_exit_2(tmp_path):
    assert _grade(tmp_path / "missing", tmp_path / "out").returncode == 2


def test_a_changed_check_or_reference_changes_the_grader_version(tmp_path, monkeypatch):
    import importlib.util

    from autograder import grading

    original = grading.grader_version()
    copy = tmp_path / "reference"
    shutil.copytree(Path(importlib.util.find_spec("reference").origin).parent, copy)
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return importlib.util.spec_from_file_location(name, copy / "__init__.py") if name == "reference" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    grading.grader_version.cache_clear()
    try:
        assert grading.grader_version() == original  # same bytes elsewhere: same version
        (copy / "vq.py").write_text((copy / "vq.py").read_text() + "\n# a fix\n")
        grading.grader_version.cache_clear()
        changed = grading.grader_version()
        assert changed != original and changed.split("+")[0] == original.split("+")[0]
    finally:
        grading.grader_version.cache_clear()
