"""Grade a folder of submissions: discover, resume, run jobs in parallel, write reports.

Each submission is one job (``grade_job``) writing its own files atomically;
a re-run skips every submission whose ``results.json`` carries the same job
key (notebook bytes, grader version, seed) and grades the rest.

Every job is total: whatever a notebook, a file name or a student process
holds, the student gets a result. A submission is a regular file inside the
submissions folder (symbolic links are refused, never followed); a grader
error while grading one becomes that student's status with its traceback in
``<student folder>/grader-error.log``; a pool worker that dies costs the job
it was running (found by running the suspects alone), and the rest go on in
a fresh pool.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import multiprocessing
import os
import stat
import traceback
import unicodedata
import warnings
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autograder.grading import Graded, grade_notebook, grader_error, grading_failed, one_line, submission_key
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

if TYPE_CHECKING:
    from autograder.cluster import ClusterSpec


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
MAX_FOLDER_BYTES = 100  # of a student's folder name before its hash (a file name may have 255)
GRADER_LOG = "grader-error.log"
_LINK = "is a symbolic link; submit the notebook itself"


class SubmissionError(Exception):
    """A submission that cannot be read as one regular notebook file; ``reason`` is its status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _notebooks(folder: Path) -> tuple[list[Path], list[Path]]:
    """The notebooks directly in ``folder``, and the symbolic links named like one (refused)."""
    found = sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and not p.name.startswith("."))
    return [p for p in found if not p.is_symlink() and p.is_file()], [p for p in found if p.is_symlink()]


def _student_id(name: str) -> str:
    """A file or folder name as a student id: valid Unicode (undecodable bytes become U+FFFD), NFC."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", text)


def discover(folder: Path) -> list[Submission]:
    """``folder/<student>.ipynb`` or ``folder/<student>/<one>.ipynb``, sorted by student id.

    A symbolic link (to a notebook or a folder) is that student's problem; an
    unreadable student folder too.
    """
    found: dict[str, list[Path]] = {}
    problems: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            if entry.suffix == ".ipynb" or entry.is_dir():
                student = _student_id(entry.stem if entry.suffix == ".ipynb" else entry.name)
                problems.setdefault(student, one_line(f"{entry.name} {_LINK}", 300))
                found.setdefault(student, [])
        elif entry.is_file() and entry.suffix == ".ipynb":
            found.setdefault(_student_id(entry.stem), []).append(entry)
        elif entry.is_dir():
            student = _student_id(entry.name)
            try:
                paths, links = _notebooks(entry)
            except OSError as exc:
                problems.setdefault(student, one_line(f"the student's folder could not be read ({exc.strerror})"))
                paths, links = [], []
            if links:
                problems.setdefault(student, one_line(f"{links[0].relative_to(folder)} {_LINK}", 300))
            found.setdefault(student, []).extend(paths)
    return [Submission(s, None, problems[s]) if s in problems else _submission(s, paths, folder)
            for s, paths in sorted(found.items())]


def _submission(student: str, paths: list[Path], folder: Path) -> Submission:
    """``student``'s submission from the notebooks found for it: gradable when there is exactly one."""
    if not paths:
        return Submission(student, None, "no notebook found in the student's folder")
    if len(paths) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in paths)
        return Submission(student, None, one_line(f"{len(paths)} notebooks for one student ({names}); keep one", 300))
    if paths[0].lstat().st_size > MAX_NOTEBOOK_BYTES:
        return Submission(student, None, f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return Submission(student, paths[0])


def read_submission(path: Path, root: Path) -> bytes:
    """The bytes of the regular file ``path`` inside ``root``, opened without following any symbolic link
    below ``root`` (``O_NOFOLLOW`` at every step, so a file swapped for a link after discovery is refused too)."""
    parts = path.relative_to(root).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                parent, fd = fd, os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
                os.close(parent)
            file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        finally:
            os.close(fd)
    except OSError as exc:
        links = [Path(*parts[: i + 1]) for i in range(len(parts)) if root.joinpath(*parts[: i + 1]).is_symlink()]
        if links or exc.errno == errno.ELOOP:
            raise SubmissionError(one_line(f"{links[0] if links else path.relative_to(root)} {_LINK}", 300)) from None
        raise SubmissionError(one_line(f"the notebook could not be read ({exc.strerror})")) from None
    with os.fdopen(file_fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SubmissionError("the notebook is not a regular file")
        data = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return data


def student_dir(out: Path, student: str) -> Path:
    """The output folder of ``student``: never outside ``out``, never a class-level file, one per student.

    A name that had to be changed (a character replaced, a leading dot, a
    class-level name, cut to ``MAX_FOLDER_BYTES`` of UTF-8) gets a ``_`` prefix
    and a hash of the original, so two students never share a folder; the
    original id stays in the gradebook.
    """
    safe = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in student)
    short = safe.encode("utf-8", "replace")[:MAX_FOLDER_BYTES].decode("utf-8", "ignore")
    if short == student and safe and not safe.startswith((".", "_")) and safe.lower() not in CLASS_LEVEL_NAMES:
        return out / safe
    digest = hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return out / f"_{short}-{digest}"


def write_reports(out: Path, student: str, graded: Graded) -> None:
    """``results.json``, ``feedback.md`` and ``run.json`` (timing) of one student, in its folder of ``out``."""
    write_reports_in(student_dir(out, student), student, graded)


def write_reports_in(folder: Path, student: str, graded: Graded) -> None:
    """``write_reports`` into ``folder`` itself (one job per container, as Gradescope runs it)."""
    write_atomic(folder / "feedback.md", render_feedback(student, graded))
    write_atomic(folder / "run.json", json.dumps({"seconds": round(graded.seconds, 3)}) + "\n")
    if graded.grader_errors:
        write_atomic(folder / GRADER_LOG, "\n".join(graded.grader_errors))
    else:
        (folder / GRADER_LOG).unlink(missing_ok=True)  # from an earlier run
    write_atomic(folder / "results.json", render_results(graded))  # last: its key marks the job done


_SANDBOX: Sandbox | None = None


def _worker_sandbox() -> Sandbox:
    global _SANDBOX
    if _SANDBOX is None:
        # The checks' tensors are small: threads only fight the student process and the other workers.
        torch.set_num_threads(1)
        _SANDBOX = Sandbox()
    return _SANDBOX


def worker_sandbox(start: bool = False) -> Sandbox:
    """This process's one sandbox (a pool or cluster worker's); with ``start``, its zygote is started now."""
    sandbox = _worker_sandbox()
    if start:
        sandbox.spawn().close()  # the zygote imports torch once, here, not in the first job
    return sandbox


def close_worker_sandbox() -> None:
    """Tear this process's sandbox down (a cluster worker that closes)."""
    global _SANDBOX
    if _SANDBOX is not None:
        _SANDBOX.close()
        _SANDBOX = None


def grade_job(student: str, data: bytes, seed: int, out: Path) -> Outcome:
    """Grade one notebook and write its reports (one job of a pool or cluster).

    Total for the submission: ``grade_notebook`` is, and reports that cannot
    be rendered are replaced by a grader-error report. Only a sandbox that
    cannot start, or a folder that cannot be written, raises.
    """
    graded = grade_notebook(data, sandbox=_worker_sandbox(), seed=seed)
    return _written(student_dir(out, student), student, graded)


def _written(folder: Path, student: str, graded: Graded) -> Outcome:
    """``write_reports_in``; reports that cannot be rendered become a grader-error report (or only the log)."""
    try:
        write_reports_in(folder, student, graded)
    except Exception as exc:  # noqa: BLE001 - a report bug costs this student's grade, not the batch
        graded = grading_failed(grader_error("the reports", exc), traceback.format_exc(), seconds=graded.seconds)
        try:
            write_reports_in(folder, student, graded)
        except Exception:  # noqa: BLE001 - not even a plain report: the gradebook row and the log say why
            write_atomic(folder / GRADER_LOG, graded.grader_errors[0] + traceback.format_exc())
    return Outcome(student, graded.scores, graded.status, graded.gradable, False, graded.seconds)


def _resumed(out: Path, student: str, key: str) -> Outcome | None:
    path = student_dir(out, student) / "results.json"
    try:
        summary = read_summary(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    if summary is None or summary["key"] != key:
        return None
    return Outcome(student, summary["scores"], summary["status"], bool(summary.get("gradable", True)), True, 0.0)


def grade_submission(submission: Path, results: Path, seed: int = 0) -> Outcome:
    """Grade one submission, a notebook or a folder holding one, into ``results/`` itself.

    The job of a Gradescope container (``/autograder/submission`` →
    ``/autograder/results``) or of any cluster worker.
    """
    if submission.is_dir():
        paths, links = _notebooks(submission)
        root = submission
        sub = _submission(_student_id(submission.name), paths, root)
        if links:
            sub = Submission(sub.student, None, one_line(f"{links[0].name} {_LINK}", 300))
    else:
        root = submission.parent
        sub = _submission(_student_id(submission.stem), [submission], root)
    try:
        data = None if sub.path is None else read_submission(sub.path, root)
    except SubmissionError as exc:
        sub, data = Submission(sub.student, None, exc.reason), None
    graded = _ungradable(sub, seed) if data is None else grade_notebook(data, sandbox=_worker_sandbox(), seed=seed)
    return _written(results, sub.student, graded)


def _ungradable(sub: Submission, seed: int) -> Graded:
    """A submission without a single notebook: graded as an empty notebook, with its problem as status."""
    graded = grade_notebook(b"", sandbox=_worker_sandbox(), seed=seed)
    return Graded(graded.key, sub.problem or "", graded.scores, graded.checks, (), {}, False)


def _problem(out: Path, sub: Submission, seed: int) -> Outcome:
    return _written(student_dir(out, sub.student), sub.student, _ungradable(sub, seed))


def grade_class(
    submissions: Path,
    out: Path,
    *,
    jobs: int = 1,
    seed: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    cluster: ClusterSpec | None = None,
) -> list[Outcome]:
    """Grade every submission under ``submissions`` into ``out``; returns one outcome per student.

    ``cluster`` grades on Dask instead of ``jobs`` local processes (same results, byte for byte).
    """
    subs = discover(submissions)
    if not subs:
        raise NoSubmissions(f"no submissions found in {submissions} (a notebook <student>.ipynb, or a folder "
                            "<student>/ holding one)")
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
        try:
            data = read_submission(sub.path, submissions)
        except SubmissionError as exc:
            outcomes.append(_problem(out, Submission(sub.student, None, exc.reason), seed))
            if on_done:
                on_done(outcomes[-1])
            continue
        resumed = _resumed(out, sub.student, submission_key(data, seed))
        if resumed is not None:
            outcomes.append(resumed)
            if on_done:
                on_done(resumed)
        else:
            todo.append((sub.student, data))
    for outcome in _run(todo, seed, out, jobs) if cluster is None else _run_cluster(todo, seed, out, cluster):
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    rows = [GradebookRow(o.student, o.scores, o.status) for o in outcomes]
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    _keep_written_scores(out)
    dirs = {o.student: student_dir(out, o.student) for o in outcomes}
    write_atomic(out / "report.html", render_class_report(out, dirs))
    return sorted(outcomes, key=lambda o: o.student)


class NoSubmissions(Exception):
    """The submissions folder holds nothing to grade (the message says where it looked)."""


def _run_cluster(todo: list[tuple[str, bytes]], seed: int, out: Path, spec: ClusterSpec) -> Iterator[Outcome]:
    """The jobs on a Dask cluster; the reports are written here, as tasks complete, by the same code as ``-j``."""
    from autograder.cluster import Cluster

    with Cluster(spec) as cluster:
        for student, graded in cluster.map(todo, seed):
            yield _written(student_dir(out, student), student, graded)


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


Job = tuple[str, bytes]


def _run(todo: list[Job], seed: int, out: Path, jobs: int) -> Iterator[Outcome]:
    if jobs <= 1 or len(todo) <= 1:
        for student, data in todo:
            yield grade_job(student, data, seed, out)
        return
    queue = collections.deque(todo)
    while queue:
        suspects = yield from _pool(queue, seed, out, jobs)
        for job in suspects:  # alone, so that a pool that breaks again was broken by this job
            if (yield from _pool(collections.deque([job]), seed, out, 1)):
                yield _worker_died(job, seed, out)


def _pool(queue: collections.deque[Job], seed: int, out: Path, workers: int) -> Generator[Outcome, None, list[Job]]:
    """Run the jobs of ``queue`` with at most ``workers`` in flight; if the pool breaks (a worker died),
    return the jobs that were in flight (the rest stay queued)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        running: dict[Future[Outcome], Job] = {}
        while queue or running:
            while queue and len(running) < workers:
                job = queue.popleft()
                running[pool.submit(grade_job, *job, seed, out)] = job
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    return list(running.values())
                del running[future]
                yield outcome
    return []


def _worker_died(job: Job, seed: int, out: Path) -> Outcome:
    """The outcome of a job whose grading process died even when it ran alone."""
    student, data = job
    died = BrokenProcessPool("the grading process died while grading this notebook, even when run alone")
    graded = grading_failed(grader_error("the submission", died), f"{student}: {died}\n")
    return _written(student_dir(out, student), student, graded)

