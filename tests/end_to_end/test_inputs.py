"""Inputs that are not what they seem: empty folders, files that are not notebooks, uploads with subfolders."""

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.discovery import discover, job_submission
from tests.hostile.test_names_and_uploads import nested, remove_nested

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
EMPTY = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _cli(*args: str, memory: int | None = None) -> subprocess.CompletedProcess:
    """The command line; ``memory`` bytes of address space at most (as ``ulimit -v``)."""
    limit = None if memory is None else lambda: resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=limit)


def test_an_empty_folder_or_one_without_notebooks_exits_1_saying_so(tmp_path):
    (tmp_path / "subs").mkdir()
    done = _cli("grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "no submissions found in" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_files_that_are_not_notebooks_are_named_as_such(tmp_path):
    for name in ("ada.py", "bob.zip", "cy.html"):
        (tmp_path / name).write_text("x")
    (tmp_path / "dee.ipynb").write_text(json.dumps(EMPTY))
    (tmp_path / "dee.html").write_text("an export beside the notebook")  # dee has a notebook: graded
    (tmp_path / "eve").mkdir()
    (tmp_path / "eve" / "hw.py").write_text("x")
    found = {s.student: s for s in discover(tmp_path)}
    assert found["ada"].problem == "ada.py: not a notebook (submit the .ipynb file)"
    assert found["bob"].problem.startswith("bob.zip: not a notebook") and found["cy"].path is None
    assert found["dee"].path == tmp_path / "dee.ipynb" and found["dee"].problem is None
    assert found["eve"].problem == "no notebook found in the student's folder (it holds hw.py)"


def test_check_on_a_file_that_is_not_a_notebook_says_so_in_one_line(tmp_path):
    (tmp_path / "hw.py").write_text("def f(): pass\n")
    done = _cli("check", str(tmp_path / "hw.py"))
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "is not a notebook" in lines[0], lines


def test_check_never_reads_more_of_a_file_than_the_size_limit(tmp_path):
    huge = tmp_path / "huge.ipynb"
    with huge.open("wb") as f:
        f.truncate(6 * 2**30)  # sparse: 6 GiB that take no disk, but would take memory if read whole
    done = _cli("check", str(huge), memory=3 * 2**30)
    assert done.returncode == 2 and "notebook is larger than 256 MB" in done.stdout, done.stdout + done.stderr[-2000:]
    (tmp_path / "link.ipynb").symlink_to(huge)
    done = _cli("check", str(tmp_path / "link.ipynb"))
    assert done.returncode == 2 and "link.ipynb is a symbolic link" in done.stdout, done.stdout + done.stderr[-2000:]


def test_a_job_on_an_upload_nested_1100_folders_deep_writes_results_json_saying_so(tmp_path):
    nested(tmp_path / "submission", 1100, notebook=(EXAMPLES / "solution.ipynb").read_bytes())  # a zip's deep path
    try:
        done = _cli("job", str(tmp_path / "submission"), "--out", str(tmp_path / "results"))
    finally:
        remove_nested(tmp_path / "submission")
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    assert doc["score"] == 0 and "the upload is nested deeper than 16 folders" in doc["output"]


def test_an_upload_with_the_notebook_in_a_subfolder_is_found(tmp_path):
    upload = tmp_path / "submission"
    (upload / "hw" / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(EXAMPLES / "solution.ipynb", upload / "hw" / "my_notebook.ipynb")
    (upload / "hw" / ".ipynb_checkpoints" / "my_notebook-checkpoint.ipynb").write_text(json.dumps(EMPTY))
    job = job_submission(upload)
    assert job.submission.path == upload / "hw" / "my_notebook.ipynb" and job.note is None


def test_with_two_notebooks_the_job_grades_the_assignment_or_the_only_one_with_graded_names(tmp_path):
    upload = tmp_path / "submission"
    upload.mkdir()
    shutil.copy(EXAMPLES / "solution.ipynb", upload / "final.ipynb")
    (upload / "scratch.ipynb").write_text(json.dumps(EMPTY))
    job = job_submission(upload)
    assert job.submission.path == upload / "final.ipynb"
    assert "graded final.ipynb, the only one that defines graded functions, of 2 notebooks" in job.note
    shutil.copy(EXAMPLES / "blank_template.ipynb", upload / "assignment.ipynb")
    job = job_submission(upload)
    assert job.submission.path == upload / "assignment.ipynb" and "the one named assignment.ipynb" in job.note
