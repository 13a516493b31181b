"""`diff OLD NEW`: every moved score by question and check, with the reason, from the files two runs wrote."""

import csv
import io
import json

from autograder.contract import QUESTION_IDS
from autograder.course.diff import diff, render_changes
from autograder.discovery import student_dir


def _run(out, students: dict[str, dict]) -> None:
    out.mkdir()
    header = ["student", "total", "max_total", *QUESTION_IDS, "status"]
    rows = [header]
    for student, s in students.items():
        scores = dict.fromkeys(QUESTION_IDS, "0") | s.get("scores", {})
        rows.append([student, s["total"], "100", *(scores[q] for q in QUESTION_IDS), "ok"])
        folder = student_dir(out, student)
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps({
            "tests": [{"name": name, "score": score} for name, score in s.get("checks", {}).items()],
            "extra_data": {"notebook": s.get("notebook", "n1"), "grader_version": s.get("version", "v1"), "seed": 0,
                           **s.get("extra", {})}}))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (out / "gradebook.csv").write_text(buf.getvalue())


def test_moved_scores_are_listed_by_question_and_check_with_their_reason(tmp_path):
    _run(tmp_path / "old", {
        "ada": {"total": "90", "scores": {"C4": "9"}, "checks": {"C4 gmvae_elbo: stable": 0, "C4 gmvae_elbo: values": 3}},
        "bob": {"total": "50"}, "cy": {"total": "70"}, "=evil": {"total": "1"}})
    _run(tmp_path / "new", {
        "ada": {"total": "92", "scores": {"C4": "11"}, "checks": {"C4 gmvae_elbo: stable": 2, "C4 gmvae_elbo: values": 3},
                "version": "v2"},
        "bob": {"total": "55", "notebook": "n2"}, "cy": {"total": "70"}, "dee": {"total": "10"}, "=evil": {"total": "2"}})
    changes = diff(tmp_path / "old", tmp_path / "new")
    by = {(c.student, c.item): c for c in changes}
    assert by[("ada", "C4")].old == "9" and by[("ada", "C4")].new == "11"
    assert by[("ada", "C4 gmvae_elbo: stable")].new == "2" and ("ada", "C4 gmvae_elbo: values") not in by
    assert "grader version changed (v1 → v2)" in by[("ada", "total")].why
    assert by[("bob", "total")].why == "notebook changed"
    assert by[("dee", "total")].why == "new submission"
    assert not [c for c in changes if c.student == "cy"]
    text = render_changes(changes)
    assert "\n'=evil," in text  # a student id that is a formula stays text in changes.csv


def test_results_json_says_which_notebook_and_seed_it_graded():
    import hashlib

    from autograder.grading import grade_notebook
    from autograder.reports import render_results

    graded = grade_notebook(b"not json", sandbox=None, seed=3)  # refused before any sandbox is needed
    extra = json.loads(render_results(graded))["extra_data"]
    assert extra["notebook"] == hashlib.sha256(b"not json").hexdigest() and extra["seed"] == 3


def test_an_override_or_a_late_penalty_is_named_as_the_reason(tmp_path):
    c4 = {"item": "C4", "score": 11, "max_score": 11, "autograded": 7, "by": "TA", "reason": "regrade"}
    _run(tmp_path / "old", {"ada": {"total": "90"}, "bob": {"total": "80"}, "cy": {"total": "70", "extra": {"overrides": "junk"}}})
    _run(tmp_path / "new", {"ada": {"total": "94", "extra": {"overrides": [c4]}},
                            "bob": {"total": "72", "extra": {"lateness": {"penalty": 0.1}}},
                            "cy": {"total": "71", "extra": {"overrides": [{"item": "=A1" * 40}]}}})
    by = {(c.student, c.item): c for c in diff(tmp_path / "old", tmp_path / "new")}
    assert by[("ada", "total")].why == "override C4"
    assert by[("bob", "total")].why == "late penalty changed"
    assert by[("cy", "total")].why == "override " + ("=A1" * 40)[:20]  # hostile items clipped, never a crash
