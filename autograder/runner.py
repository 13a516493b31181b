"""Grade a folder of submissions: discover, resume, run jobs in parallel, write reports.

Each submission is one job (``grade_job``) writing its own files atomically;
a re-run skips every submission whose ``results.json`` carries the same job
key (notebook bytes, grader version, seed) and grades the rest.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from autograder.grading import Graded, grade_notebook, one_line, submission_key
from autograder.notebook import MAX_NOTEBOOK_BYTES
from autograder.reports.class_report import render_class_report
from autograder.reports import (
    GradebookRow,
    read_summary,
    render_feedback,
    render_gradebook,
    render_results,
    write_atomic,
)
from autograder.sandbox.process import Sandbox


@dataclass(frozen=True)
class Submission:
    """A student's notebook (``path``), or why there is no single one (``problem``)."""

    student: str
    path: Path | None
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the class-level report needs of one graded (or resumed) job."""

    student: str
    scores: dict[str, float]
    status: str
    gradable: bool
    resumed: bool
    seconds: float


CLASS_LEVEL_NAMES = frozenset({"gradebook.csv", "report.html", "review"})  # what a run writes next to the students' folders


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and p.is_file() and not p.name.startswith("."))


def _student_id(name: str) -> str:
    """A file or folder name as a student id: valid Unicode (undecodable bytes become U+FFFD), NFC."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", text)


def discover(folder: Path) -> list[Submission]:
    """``folder/<student>.ipynb`` or ``folder/<student>/<one>.ipynb``, sorted by student id."""
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found.setdefault(_student_id(entry.stem), []).append(entry)
        elif entry.is_dir():
            found.setdefault(_student_id(entry.name), []).extend(_notebooks(entry))
    return [_submission(student, paths, folder) for student, paths in sorted(found.items())]


def _submission(student: str, paths: list[Path], folder: Path) -> Submission:
    """``student``'s submission from the notebooks found for it: gradable when there is exactly one."""
    if not paths:
        return Submission(student, None, "no notebook found in the student's folder")
    if len(paths) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in paths)
        return Submission(student, None, one_line(f"{len(paths)} notebooks for one student ({names}); keep one", 300))
    if paths[0].stat().st_size > MAX_NOTEBOOK_BYTES:
        return Submission(student, None, f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return Submission(student, paths[0])


def student_dir(out: Path, student: str) -> Path:
    """The output folder of ``student``: never outside ``out``, never a class-level file, one per student.

    A name that had to be changed (a character replaced, a leading dot, a
    class-level name) gets a ``_`` prefix and a hash of the original, so two
    students never share a folder.
    """
    safe = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in student)
    if safe == student and safe and not safe.startswith((".", "_")) and safe.lower() not in CLASS_LEVEL_NAMES:
        return out / safe
    digest = hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return out / f"_{safe}-{digest}"


def write_reports(out: Path, student: str, graded: Graded) -> None:
    """``results.json``, ``feedback.md`` and ``run.json`` (timing) of one student, in its folder of ``out``."""
    write_reports_in(student_dir(out, student), student, graded)


def write_reports_in(folder: Path, student: str, graded: Graded) -> None:
    """``write_reports`` into ``folder`` itself (one job per container, as Gradescope runs it)."""
    write_atomic(folder / "feedback.md", render_feedback(student, graded))
    write_atomic(folder / "run.json", json.dumps({"seconds": round(graded.seconds, 3)}) + "\n")
    write_atomic(folder / "results.json", render_results(graded))  # last: its key marks the job done


_SANDBOX: Sandbox | None = None


def _worker_sandbox() -> Sandbox:
    global _SANDBOX
    if _SANDBOX is None:
        # The checks' tensors are small: threads only fight the student process and the other workers.
        torch.set_num_threads(1)
        _SANDBOX = Sandbox()
    return _SANDBOX


def grade_job(student: str, data: bytes, seed: int, out: Path) -> Outcome:
    """Grade one notebook and write its reports (one job of a pool or cluster)."""
    graded = grade_notebook(data, sandbox=_worker_sandbox(), seed=seed)
    write_reports(out, student, graded)
    return Outcome(student, graded.scores, graded.status, graded.gradable, False, graded.seconds)


def _resumed(out: Path, student: str, key: str) -> Outcome | None:
    path = student_dir(out, student) / "results.json"
    if not path.is_file():
        return None
    summary = read_summary(path.read_text(encoding="utf-8"))
    if summary is None or summary["key"] != key:
        return None
    return Outcome(student, summary["scores"], summary["status"], bool(summary.get("gradable", True)), True, 0.0)


def grade_submission(submission: Path, results: Path, seed: int = 0) -> Outcome:
    """Grade one submission, a notebook or a folder holding one, into ``results/`` itself.

    The job of a Gradescope container (``/autograder/submission`` →
    ``/autograder/results``) or of any cluster worker.
    """
    if submission.is_dir():
        sub = _submission(_student_id(submission.name), _notebooks(submission), submission)
    else:
        sub = _submission(_student_id(submission.stem), [submission], submission.parent)
    if sub.path is None:
        graded = _ungradable(sub, seed)
    else:
        graded = grade_notebook(sub.path.read_bytes(), sandbox=_worker_sandbox(), seed=seed)
    write_reports_in(results, sub.student, graded)
    return Outcome(sub.student, graded.scores, graded.status, graded.gradable, False, graded.seconds)


def _ungradable(sub: Submission, seed: int) -> Graded:
    """A submission without a single notebook: graded as an empty notebook, with its problem as status."""
    graded = grade_notebook(b"", sandbox=_worker_sandbox(), seed=seed)
    return Graded(graded.key, sub.problem or "", graded.scores, graded.checks, (), {}, False)


def _problem(out: Path, sub: Submission, seed: int) -> Outcome:
    graded = _ungradable(sub, seed)
    write_reports(out, sub.student, graded)
    return Outcome(sub.student, graded.scores, graded.status, False, False, 0.0)


def grade_class(
    submissions: Path,
    out: Path,
    *,
    jobs: int = 1,
    seed: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Grade every submission under ``submissions`` into ``out``; returns one outcome per student."""
    subs = discover(submissions)
    if on_start:
        on_start(len(subs))
    outcomes: list[Outcome] = []
    todo: list[tuple[str, bytes]] = []
    for sub in subs:
        if sub.problem is not None:
            outcomes.append(_problem(out, sub, seed))
            if on_done:
                on_done(outcomes[-1])
            continue
        data = sub.path.read_bytes()
        resumed = _resumed(out, sub.student, submission_key(data, seed))
        if resumed is not None:
            outcomes.append(resumed)
            if on_done:
                on_done(resumed)
        else:
            todo.append((sub.student, data))
    for outcome in _run(todo, seed, out, jobs):
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    rows = [GradebookRow(o.student, o.scores, o.status) for o in outcomes]
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    _keep_written_scores(out)
    dirs = {o.student: student_dir(out, o.student) for o in outcomes}
    write_atomic(out / "report.html", render_class_report(out, dirs))
    return sorted(outcomes, key=lambda o: o.student)


class GradingWarning(UserWarning):
    """Something a TA should know about a run that still finished (the CLI prints it)."""


def _keep_written_scores(out: Path) -> None:
    """Fold the TAs' last merged written scores back in (the gradebook and re-graded reports were rewritten)."""
    from autograder.merge import MergeError, reapply  # merge builds on this module

    try:
        reapply(out)
    except MergeError as exc:
        warnings.warn(f"the written scores merged earlier could not be merged again: {exc}; "
                      "fix the scores file and run merge", GradingWarning, stacklevel=2)


def _run(todo: list[tuple[str, bytes]], seed: int, out: Path, jobs: int) -> Iterator[Outcome]:
    if jobs <= 1 or len(todo) <= 1:
        for student, data in todo:
            yield grade_job(student, data, seed, out)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(grade_job, s, d, seed, out) for s, d in todo]
        for future in as_completed(futures):
            yield future.result()

