"""Hostile file names and uploads: output folders that would be shared, class-level names, special files,
deep or crowded uploads. Each student gets a row with a clear one-line status; nobody shares a folder."""

from __future__ import annotations

import csv
import hashlib
import importlib
import os
import re
import shutil
import socket
import stat
from pathlib import Path

import pytest

from autograder import discovery, runner
from autograder.discovery import (
    DIGEST_HEX,
    MAX_FOLDER_BYTES,
    class_level_names,
    discover,
    job_submission,
    read_submission,
    student_dir,
)
from autograder.escape import csv_value

PACKAGE = Path(discovery.__file__).resolve().parent
EXAMPLES = PACKAGE.parent / "examples" / "submissions"
LONG = "x" * 120  # over MAX_FOLDER_BYTES: a hashed folder


def test_a_changed_folder_name_carries_128_bits_of_sha256_and_stays_bounded(tmp_path):
    for student in (LONG, "gradebook.csv", "é" * 200, "a/b"):
        name = student_dir(tmp_path, student).name
        assert name.endswith("-" + hashlib.sha256(student.encode()).hexdigest()[:DIGEST_HEX]), name
        assert DIGEST_HEX >= 32 and len(name.encode()) <= MAX_FOLDER_BYTES and name.startswith("_")


def _class(folder: Path, *students: str) -> Path:
    folder.mkdir()
    for student in students:
        shutil.copy(EXAMPLES / "blank_template.ipynb", folder / f"{student}.ipynb")
    return folder


def test_students_whose_folders_would_be_one_folder_are_refused_before_grading(tmp_path, monkeypatch):
    monkeypatch.setattr(discovery, "_digest", lambda student: "0" * DIGEST_HEX)  # a forced collision
    subs = {s.student: s for s in discover(_class(tmp_path / "subs", "Case", "case", LONG + "a", LONG + "b", "ada"))}
    assert subs["ada"].problem is None
    for group in (("Case", "case"), (LONG + "a", LONG + "b")):
        problems = {subs[s].problem for s in group}
        assert len(problems) == 1 and subs[group[0]].path is None, problems  # the same status for the group
        (problem,) = problems
        assert problem.startswith("one output folder for 2 students whose names differ only in case (")
        assert problem.endswith("); rename all but one") and group[0][:30] in problem and len(problem) <= 300


def test_a_forced_collision_gives_each_its_own_row_and_no_record_of_the_other(tmp_path, monkeypatch):
    """The F1 attack: the victim's solution and the attacker's blank notebook under one hashed folder name."""
    monkeypatch.setattr(discovery, "_digest", lambda student: "0" * DIGEST_HEX)
    subs = _class(tmp_path / "subs", LONG + "b")
    shutil.copy(EXAMPLES / "solution.ipynb", subs / f"{LONG}a.ipynb")
    outcomes = runner.grade_class(subs, tmp_path / "out")
    with (tmp_path / "out" / "gradebook.csv").open(encoding="utf-8", newline="") as f:
        rows = {csv_value(r["student"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == [LONG + "a", LONG + "b"] and not any(o.gradable for o in outcomes)
    for row in rows.values():
        assert float(row["total"]) == 0 and "one output folder for 2 students" in row["status"], row
    record = (student_dir(tmp_path / "out", LONG + "a") / "results.json").read_text(encoding="utf-8")
    assert "one output folder for 2 students" in record  # the group's status, never one student's grade


@pytest.mark.parametrize("name", sorted(class_level_names()))
def test_a_student_named_like_a_class_level_file_in_any_case_gets_a_folder_of_its_own(tmp_path, name):
    for student in (name, name.upper(), name.title()):
        folder = student_dir(tmp_path, student)
        assert folder.name.startswith("_") and folder.name.casefold() not in class_level_names()


_WRITES = re.compile(r"""\b\w*out\s*/\s*(?:"([^"/]+)"|'([^'/]+)'|([A-Z][A-Z0-9_]*)\b|f"\{(\w+)\}([^"/]*)")""")


def _value(path: Path, text: str, name: str):
    """The value of the constant ``name`` as the module at ``path`` sees it (its own, or imported in a function)."""
    module = importlib.import_module(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    if hasattr(module, name):
        return getattr(module, name)
    (source,) = re.findall(rf"from ([\w.]+) import [^\n]*\b{name}\b", text)
    return getattr(importlib.import_module(source), name)


def _written_next_to_students() -> set[str]:
    """Every name a module of the package puts directly in OUT: ``out / "x"``, ``out / NAME`` and
    ``out / f"{lms}.csv"`` (each value of the module's constant ``LMS``)."""
    names = set()
    for path in set(PACKAGE.rglob("*.py")) - {PACKAGE / "cli" / "job.py"}:  # job's OUT is one student's folder
        text = path.read_text(encoding="utf-8")
        for literal, quoted, constant, variable, suffix in _WRITES.findall(text):
            if constant:
                names.add(_value(path, text, constant))
            elif variable:
                names |= {f"{value}{suffix}" for value in _value(path, text, variable.upper())}
            else:
                names.add(literal or quoted)
    return names


def test_every_file_a_command_writes_next_to_the_students_folders_is_a_class_level_name():
    names = _written_next_to_students()
    assert {"gradebook.csv", "overrides.csv", "lateness.json", "canvas.csv", "review-key", "changes.csv"} <= names
    assert not {n for n in names if n.casefold() not in class_level_names()}


def test_the_regex_reads_every_kind_of_write():
    tree = [m.groups() for m in _WRITES.finditer('out / "a.csv", args.out / STORE, new_out / f"{lms}.csv"')]
    assert [next(g for g in groups if g) for groups in tree] == ["a.csv", "STORE", "lms"]


def _special_files(folder: Path, monkeypatch) -> None:
    os.mkfifo(folder / "fifo.ipynb")
    with monkeypatch.context() as m, socket.socket(socket.AF_UNIX) as s:
        m.chdir(folder)  # a socket's path has at most 107 bytes: bind it by its name alone
        s.bind("sock.ipynb")
    if os.geteuid() == 0:
        os.mknod(folder / "dev.ipynb", stat.S_IFCHR | 0o644, os.makedev(1, 3))  # like /dev/null


def test_a_fifo_socket_or_device_named_like_a_notebook_gets_a_row_saying_so(tmp_path, monkeypatch):
    subs = _class(tmp_path / "subs", "ada")
    _special_files(subs, monkeypatch)
    for student in ("fifodir", "sockdir", "devdir"):
        (subs / student).mkdir()
    for kind in ("fifo", "sock", "dev"):
        _special_files(subs / f"{kind}dir", monkeypatch)
        for other in {"fifo", "sock", "dev"} - {kind}:
            (subs / f"{kind}dir" / f"{other}.ipynb").unlink(missing_ok=True)
    found = {s.student: s for s in discover(subs)}
    kinds = ("fifo", "sock", "dev") if os.geteuid() == 0 else ("fifo", "sock")
    for kind in kinds:
        assert found[kind].problem == f"{kind}.ipynb is not a regular file; submit the notebook itself"
        assert found[f"{kind}dir"].problem == f"{kind}dir/{found[kind].problem}"
    assert found["ada"].problem is None


def nested(upload: Path, depth: int, name: str = "d", notebook: bytes | None = None) -> Path:
    """``upload`` with ``depth`` folders inside each other and ``notebook`` at the bottom as ``hw.ipynb``;
    each folder is made relative to its parent, so the path may be longer than PATH_MAX."""
    upload.mkdir()
    fd = os.open(upload, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    if notebook is not None:
        out = os.open("hw.ipynb", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(out, notebook)
        os.close(out)
    os.close(fd)
    return upload.joinpath(*[name] * depth, "hw.ipynb")


def remove_nested(upload: Path, name: str = "d") -> None:
    """Remove what ``nested`` made, a level at a time (``shutil.rmtree`` recurses once per level)."""
    while (upload / name).is_dir():
        if (upload / name / name).is_dir():
            os.rename(upload / name / name, upload / ".next")
        shutil.rmtree(upload / name)
        if (upload / ".next").is_dir():
            os.rename(upload / ".next", upload / name)
    shutil.rmtree(upload)


def test_an_upload_nested_too_deep_is_refused_with_the_depth(tmp_path):
    nested(tmp_path / "submission", 1100, notebook=(EXAMPLES / "solution.ipynb").read_bytes())
    try:
        job = job_submission(tmp_path / "submission")
    finally:
        remove_nested(tmp_path / "submission")
    assert job.submission.problem == (f"the upload is nested deeper than {discovery.MAX_UPLOAD_DEPTH} folders; "
                                      "submit the notebook with fewer folders around it")


def test_a_notebook_below_a_path_longer_than_path_max_is_found_and_read(tmp_path):
    solution = (EXAMPLES / "solution.ipynb").read_bytes()
    path = nested(tmp_path / "submission", discovery.MAX_UPLOAD_DEPTH, "d" * 250, solution)
    assert len(os.fsencode(path)) > os.pathconf("/", "PC_PATH_MAX")
    job = job_submission(tmp_path / "submission")
    assert job.submission.path == path and job.submission.problem is None
    assert read_submission(path, job.root) == (EXAMPLES / "solution.ipynb").read_bytes()


def test_folders_count_against_the_upload_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(discovery, "MAX_UPLOAD_ENTRIES", 50)
    (tmp_path / "submission").mkdir()
    shutil.copy(EXAMPLES / "solution.ipynb", tmp_path / "submission" / "hw.ipynb")
    for i in range(60):
        (tmp_path / "submission" / f"empty{i}").mkdir()
    job = job_submission(tmp_path / "submission")
    assert job.submission.problem == "the upload holds more than 50 files and folders"


def test_a_grader_error_while_searching_the_upload_still_writes_results_json(tmp_path, monkeypatch):
    def broken(upload: Path):
        raise RuntimeError("the search broke")

    monkeypatch.setattr(runner, "job_submission", broken)
    (tmp_path / "submission").mkdir()
    outcome = runner.grade_submission(tmp_path / "submission", tmp_path / "results")
    assert not outcome.gradable and outcome.student == "submission"
    assert outcome.status == "grader error while grading the upload: RuntimeError: the search broke"
    assert outcome.status in (tmp_path / "results" / "results.json").read_text(encoding="utf-8")


def test_names_equal_but_for_case_are_both_graded_where_the_output_keeps_them_apart(tmp_path):
    """An offender's ``ALICE.ipynb`` must not cost honest ``alice`` her grade on a file system that keeps
    ``OUT/ALICE`` and ``OUT/alice`` apart (refused only where they would be one folder)."""
    subs = _class(tmp_path / "subs", "ALICE")
    shutil.copy(EXAMPLES / "solution.ipynb", subs / "alice.ipynb")
    assert not discovery.folds_case(tmp_path / "out")  # this machine's tmp: a case-sensitive file system
    outcomes = {o.student: o for o in runner.grade_class(subs, tmp_path / "out")}
    assert outcomes["alice"].gradable and sum(outcomes["alice"].scores.values()) == 100
    assert outcomes["ALICE"].gradable and (tmp_path / "out" / "ALICE" / "results.json").is_file()


def test_the_case_probe_tells_a_folding_file_system_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert discovery.folds_case(out / "a" / "b") is False and not out.exists()  # nothing left of the probe
    out.mkdir()
    assert discovery.folds_case(out) is False and list(out.iterdir()) == []
    monkeypatch.setattr(discovery.os.path, "exists", lambda path: True)  # what a folding file system answers
    assert discovery.folds_case(out) is True and list(out.iterdir()) == []
