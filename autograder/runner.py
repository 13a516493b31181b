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
import dataclasses
import json
import multiprocessing
import os
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.discovery import (
    Submission,
    SubmissionError,
    discover,
    folds_case,
    job_submission,
    read_submission,
    student_dir,
    upload_student,
)
from autograder.grading import Graded, grade_notebook, grader_error, grading_failed, submission_key
from autograder.reports.class_report import render_class_report, render_timing, this_run
from autograder.reports import (
    GradebookRow,
    read_summary,
    render_feedback,
    render_results,
    write_atomic,
)
from autograder.reports.amendments import NONE, Amendments, LateNote
from autograder.reports import reread
from autograder.reports.graded_record import RECORD, load_graded, render_graded
from autograder.sandbox.worker import close_worker_sandbox, worker_sandbox
from autograder.written.merge import MergeError, reapply

if TYPE_CHECKING:
    from autograder.cluster import ClusterSpec
    from autograder.course.lateness import Policy, When


@dataclass(frozen=True)
class Outcome:
    """What the class-level report needs of one graded (or resumed) job."""

    student: str
    scores: dict[str, float]
    status: str
    gradable: bool
    resumed: bool
    note: str | None = None  # e.g. which of several uploaded notebooks was graded


GRADER_LOG = "grader-error.log"


def write_reports(out: Path, student: str, graded: Graded) -> None:
    """``results.json``, ``feedback.md`` and ``run.json`` (timing) of one student, in its folder of ``out``."""
    write_reports_in(student_dir(out, student), student, graded)


def write_reports_in(folder: Path, student: str, graded: Graded, timed: bool = False,
                     amendments: Amendments = NONE) -> None:
    """``write_reports`` into ``folder`` itself (one job per container, as Gradescope runs it), and the
    record ``graded.json`` they are rendered from (``course.amend`` renders them again from it).

    ``timed`` (a job of its own, never a class) puts ``execution_time`` into results.json."""
    write_atomic(folder / RECORD, render_graded(graded))
    write_atomic(folder / "feedback.md", render_feedback(student, graded, amendments))
    write_atomic(folder / "run.json", json.dumps({"seconds": round(graded.seconds, 3),
                                                    "student_seconds": round(graded.student_seconds, 3)}) + "\n")
    if graded.grader_errors:
        write_atomic(folder / GRADER_LOG, "\n".join(graded.grader_errors))
    else:
        (folder / GRADER_LOG).unlink(missing_ok=True)  # from an earlier run
    # last: its key marks the job done
    write_atomic(folder / "results.json", render_results(graded, timed=timed, amendments=amendments))


def grade_job(student: str, data: bytes, seed: int, out: Path) -> Outcome:
    """Grade one notebook and write its reports (one job of a pool or cluster).

    Total for the submission: ``grade_notebook`` is, and reports that cannot
    be rendered are replaced by a grader-error report. Only a sandbox that
    cannot start, or a folder that cannot be written, raises.
    """
    graded = grade_notebook(data, sandbox=worker_sandbox(), seed=seed)
    return _written(student_dir(out, student), student, graded)


def _written(folder: Path, student: str, graded: Graded, timed: bool = False,
             amendments: Amendments = NONE) -> Outcome:
    """``write_reports_in``; reports that cannot be rendered become a grader-error report (or only the log)."""
    try:
        write_reports_in(folder, student, graded, timed, amendments)
    except Exception as exc:  # noqa: BLE001 - a report bug costs this student's grade, not the batch
        graded = grading_failed(grader_error("the reports", exc), traceback.format_exc(), seconds=graded.seconds)
        try:
            write_reports_in(folder, student, graded, timed)
        except Exception:  # noqa: BLE001 - not even a plain report: the gradebook row and the log say why
            write_atomic(folder / GRADER_LOG, graded.grader_errors[0] + traceback.format_exc())
    return Outcome(student, graded.scores, graded.status, graded.gradable, False)


def _resumed(out: Path, student: str, key: str) -> Outcome | None:
    path = student_dir(out, student) / "results.json"
    text = reread.read_text(path)
    summary = None if text is None else read_summary(text)
    if summary is None or summary["key"] != key:
        return None
    graded = load_graded(path.parent)
    if graded is None or graded.key != key:  # the record the reports are rendered again from: regrade without it
        return None
    return Outcome(student, summary["scores"], summary["status"], bool(summary.get("gradable", True)), True)


def grade_submission(submission: Path, results: Path, seed: int = 0, policy: Policy | None = None,
                     submitted: When | None = None) -> Outcome:
    """Grade one upload — a notebook, or a folder holding it (subfolders are searched) — into ``results/``.

    The job of a Gradescope container (``/autograder/submission`` →
    ``/autograder/results``). With several notebooks in the upload, the
    outcome's ``note`` says which one was graded and why. With a late
    ``policy``, results.json's score is after the penalty for ``submitted``.
    Total for the upload: a grader error while searching it is its status.
    """
    try:
        job = job_submission(submission)
    except Exception as exc:  # noqa: BLE001 - whatever the upload holds, Gradescope gets a results.json
        graded = grading_failed(grader_error("the upload", exc), traceback.format_exc())
        return _written(results, upload_student(submission), graded, True)
    sub = job.submission
    try:
        data = None if sub.path is None else read_submission(sub.path, job.root)
    except SubmissionError as exc:
        sub, data = Submission(sub.student, None, exc.reason), None
    graded = _ungradable(sub, seed) if data is None else grade_notebook(data, sandbox=worker_sandbox(), seed=seed)
    amendments = NONE
    if policy is not None:
        from autograder.course.lateness import late_note

        amendments = Amendments(lateness=late_note(policy, sub.student, submitted))
    return dataclasses.replace(_written(results, sub.student, graded, True, amendments), note=job.note)


def _ungradable(sub: Submission, seed: int) -> Graded:
    """A submission without a single notebook: graded as an empty notebook, with its problem as status."""
    graded = grade_notebook(b"", sandbox=worker_sandbox(), seed=seed)
    return Graded(graded.key, sub.problem or "", graded.scores, graded.checks, (), False)


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
    policy: Policy | None = None,
    submitted: dict[str, When] | None = None,
) -> list[Outcome]:
    """Grade every submission under ``submissions`` into ``out``; returns one outcome per student.

    ``cluster`` grades on Dask instead of ``jobs`` local processes (same results, byte for byte).
    The overrides kept in ``out`` are applied again; with a late ``policy``, each student's
    ``submitted`` time (or why it is unknown) gives their penalty (``course.lateness``).
    """
    subs = discover(submissions, fold_case=folds_case(out))
    if not subs:
        raise NoSubmissions(f"no submissions found in {submissions} (a notebook <student>.ipynb, or a folder "
                            "<student>/ holding one)")
    if on_start:
        on_start(len(subs))
    outcomes: list[Outcome] = []
    todo: list[tuple[str, bytes]] = []
    notebooks: dict[str, bytes] = {}
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
        notebooks[sub.student] = data
        resumed = _resumed(out, sub.student, submission_key(data, seed))
        if resumed is not None:
            outcomes.append(resumed)
            if on_done:
                on_done(resumed)
        else:
            todo.append((sub.student, data))
    running = _run(todo, seed, out, jobs) if cluster is None else _run_cluster(todo, seed, out, cluster)
    try:
        for outcome in running:
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    except KeyboardInterrupt:
        _exit_on_a_second_interrupt()
        running.close()  # kills the pool's workers, or cancels the cluster's tasks
        close_worker_sandbox()  # and this process's own student process (-j 1)
        raise
    outcomes = _amended(out, outcomes, None if policy is None else _lateness(policy, submitted or {}, outcomes))
    dirs = {o.student: student_dir(out, o.student) for o in sorted(outcomes, key=lambda o: o.student)}
    write_atomic(out / "timing.csv", render_timing(out, dirs))
    report = render_class_report(out, dirs, _similarity(out, notebooks), run=this_run(submissions))
    write_atomic(out / "report.html", report)
    return sorted(outcomes, key=lambda o: o.student)


TEMPLATE = Path(__file__).resolve().parents[1] / "student_template" / "assignment.ipynb"


def _similarity(out: Path, notebooks: dict[str, bytes]) -> str:
    """``similarity.csv`` of the class's code (the distributed template is boilerplate); the report's section."""
    from autograder.course.similarity import notebook_code, rank, shared_spans
    from autograder.reports.similarity import render_similarity_csv, render_similarity_section

    codes = {student: notebook_code(data) for student, data in notebooks.items()}
    boilerplate = notebook_code(TEMPLATE.read_bytes()) if TEMPLATE.is_file() else ""
    pairs = rank(codes, boilerplate)
    shared = [shared_spans(p, codes[p.a], codes[p.b], boilerplate) for p in pairs if p.flagged][:10]
    write_atomic(out / "similarity.csv", render_similarity_csv(pairs))
    return render_similarity_section(pairs, shared)


def _lateness(policy: Policy, submitted: dict[str, When], outcomes: list[Outcome]) -> dict[str, LateNote]:
    from autograder.course.lateness import late_note

    return {o.student: late_note(policy, o.student, submitted.get(o.student)) for o in outcomes}


def _amended(out: Path, outcomes: list[Outcome], lateness: dict[str, LateNote] | None) -> list[Outcome]:
    """The gradebook, with the kept overrides, the written scores and ``lateness`` applied to every report."""
    from autograder.course.amend import add_late_columns, refresh

    rows, problems = refresh(out, [GradebookRow(o.student, o.scores, o.status) for o in outcomes], lateness)
    for problem in problems:
        warnings.warn(problem, GradingWarning, stacklevel=3)
    _keep_written_scores(out)
    add_late_columns(out, lateness)
    scores = {r.student: r.scores for r in rows}
    return [dataclasses.replace(o, scores=scores[o.student]) for o in outcomes]


def _exit_on_a_second_interrupt() -> None:
    """While a first Ctrl-C is being handled, a second one exits at once."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))


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
    return the jobs that were in flight (the rest stay queued).

    Closed early (Ctrl-C, or the caller stopped), it kills its workers at once: their sandboxes and
    student processes die with them, and no queued job starts.
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_leave_interrupts_to_the_parent)
    finished = False
    try:
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
                    finished = True
                    return list(running.values())
                del running[future]
                yield outcome
        finished = True
        return []
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop(pool)


def _leave_interrupts_to_the_parent() -> None:
    """A pool worker ignores Ctrl-C: the parent stops it (one message, no traceback from every worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill ``pool``'s workers now and drop its queued jobs (what was written stays written)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _worker_died(job: Job, seed: int, out: Path) -> Outcome:
    """The outcome of a job whose grading process died even when it ran alone."""
    student, data = job
    died = BrokenProcessPool("the grading process died while grading this notebook, even when run alone")
    graded = grading_failed(grader_error("the submission", died), f"{student}: {died}\n")
    return _written(student_dir(out, student), student, graded)

