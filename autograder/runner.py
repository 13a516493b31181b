"""Grade a folder of submissions: discover, resume, run jobs in parallel, write reports.

Each submission is one job (``grade_job``) writing its own files atomically;
a re-run skips every submission whose ``results.json`` carries the same job
key (notebook bytes, grader version, seed) and grades the rest.
"""

from __future__ import annotations

import json
import multiprocessing
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from autograder.grading import Graded, grade_notebook, submission_key
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


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and p.is_file() and not p.name.startswith("."))


def discover(folder: Path) -> list[Submission]:
    """``folder/<student>.ipynb`` or ``folder/<student>/<one>.ipynb``, sorted by student id."""
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found.setdefault(unicodedata.normalize("NFC", entry.stem), []).append(entry)
        elif entry.is_dir():
            found.setdefault(unicodedata.normalize("NFC", entry.name), []).extend(_notebooks(entry))
    subs = []
    for student, paths in sorted(found.items()):
        if len(paths) == 1:
            subs.append(Submission(student, paths[0]))
        elif not paths:
            subs.append(Submission(student, None, "no notebook found in the student's folder"))
        else:
            names = ", ".join(str(p.relative_to(folder)) for p in paths)
            subs.append(Submission(student, None, f"{len(paths)} notebooks for one student ({names}); keep one"))
    return subs


def student_dir(out: Path, student: str) -> Path:
    """The output folder of ``student`` (never outside ``out``)."""
    safe = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in student)
    return out / ("_" + safe if safe.startswith(".") or not safe else safe)


def write_reports(out: Path, student: str, graded: Graded) -> None:
    """``results.json``, ``feedback.md`` and ``run.json`` (timing) of one student."""
    folder = student_dir(out, student)
    write_atomic(folder / "feedback.md", render_feedback(student, graded))
    write_atomic(folder / "run.json", json.dumps({"seconds": round(graded.seconds, 3)}) + "\n")
    write_atomic(folder / "results.json", render_results(graded))  # last: its key marks the job done


_SANDBOX: Sandbox | None = None


def _worker_sandbox() -> Sandbox:
    global _SANDBOX
    if _SANDBOX is None:
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


def _problem(out: Path, sub: Submission, seed: int) -> Outcome:
    """A submission without a single notebook: graded as an empty notebook with that status."""
    graded = grade_notebook(b"", sandbox=_worker_sandbox(), seed=seed)
    graded = Graded(graded.key, sub.problem or "", graded.scores, graded.checks, (), {}, False)
    write_reports(out, sub.student, graded)
    return Outcome(sub.student, graded.scores, sub.problem or "", False, False, 0.0)


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
    dirs = {o.student: student_dir(out, o.student) for o in outcomes}
    write_atomic(out / "report.html", render_class_report(out, dirs))
    return sorted(outcomes, key=lambda o: o.student)


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

