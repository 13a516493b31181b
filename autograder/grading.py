"""Grade one submission: a pure function of (notebook bytes, grader version, seed).

``grade_notebook`` runs every check of every question against the student's
code in a sandboxed student process and returns a ``Graded`` record; it
reads and writes no file, so a pool, a Dask cluster or a Gradescope
container can run it as one job.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from autograder import __version__
from autograder.checks import QUESTIONS, CheckResult, run_check, skipped
from autograder.checks.framework import PUBLIC, QUESTION_SECONDS, Check, FailureRecord, Status
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.notebook import CodeCell, NotebookError, defined_names, read_notebook
from autograder.sandbox.errors import StudentProcessError
from autograder.sandbox.process import Sandbox
from autograder.sandbox.session import CellRun, CellStatus, StudentSession
from autograder.scoring import question_scores


@dataclass(frozen=True)
class Graded:
    """Everything the reports need about one graded submission.

    ``grader_errors`` holds the traceback of every grader-side exception met
    while grading it (each became a check's result and the status); such a
    submission is not ``gradable`` and has no key, so a re-run grades it again.
    """

    key: str
    status: str
    scores: dict[str, float]
    checks: tuple[CheckResult, ...]
    cells: tuple[CellRun, ...]
    gradable: bool
    seconds: float = field(compare=False, default=0.0)
    grader_errors: tuple[str, ...] = field(compare=False, default=())
    notebook: str = ""  # sha256 of the notebook's bytes ("" when there was none)
    seed: int = 0
    #: Error carried forward: (question, dependency) pairs where the question was graded with the
    #: student's dependency taken as correct ("graded with C2 taken as correct; C2 loses its own points").
    carried: tuple[tuple[str, str], ...] = ()
    #: CPU seconds the student process spent on this submission's cells and calls (``seconds`` less this is
    #: what the grader itself cost: start-up, checks, the reference, reports).
    student_seconds: float = field(compare=False, default=0.0)

    @property
    def total(self) -> float:
        return round(sum(self.scores.values()), 2)


@functools.cache
def grader_version() -> str:
    """The package version and a hash of the grader's own source (checks, sandbox, reference).

    A changed check or reference invalidates earlier results even when the
    version number was not bumped, so a resumed run never keeps stale grades.
    """
    digest = hashlib.sha256()
    for package in ("autograder", "reference"):
        spec = importlib.util.find_spec(package)
        root = Path(spec.origin).parent if spec and spec.origin else None
        for path in sorted(root.rglob("*.py")) if root else ():
            digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__}+{digest.hexdigest()[:12]}"


def submission_key(data: bytes, seed: int) -> str:
    """Identifies a grading job: same notebook, grader version and seed → same results."""
    return hashlib.sha256(b"%s\0%d\0" % (grader_version().encode(), seed) + data).hexdigest()


_UNREADABLE = "could not be inspected"


def one_line(text: str, limit: int = 200) -> str:
    """``text`` as one printable line of at most ``limit`` characters (statuses quote student text)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:limit]


def grader_error(where: str, exc: BaseException) -> str:
    """The status of a submission whose grading met grader-side exception ``exc`` while grading ``where``."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception that cannot say what it is still has a type
        text = "(no message)"
    return one_line(f"grader error while grading {where}: {type(exc).__name__}{': ' + text if text else ''}")


def grading_failed(reason: str, log: str, *, qids: tuple[str, ...] = QUESTION_IDS, public_only: bool = False,
                   seconds: float = 0.0) -> Graded:
    """A submission whose grading failed as a whole: every check skipped with ``reason`` as its status."""
    results = tuple(skipped(c, reason) for checks in _questions(qids, public_only).values() for c in checks)
    return Graded("", reason, question_scores(results, qids), results, (), False, seconds, (log,))


def _questions(qids: tuple[str, ...], public_only: bool) -> dict[str, tuple[Check, ...]]:
    return {q: tuple(c for c in QUESTIONS[q] if c.visibility == PUBLIC or not public_only) for q in qids}


def _grader_error_result(check: Check, exc: Exception) -> CheckResult:
    failure = FailureRecord.of(grader_error(check.qid, exc), kind=check.kind,
                               hint="a bug in the grader, not in your code (logged for your teacher)")
    return CheckResult(check.qid, check.name, check.visibility, 0.0, check.points, Status.GRADER_ERROR, failure)


def _missing_reason(kind: str, name: str, cells: tuple[CellRun, ...], sources: tuple[CodeCell, ...]) -> str:
    """Why ``name`` is not usable; blames the cell that should have defined it when that cell failed."""
    broken = [c for c in cells if c.status != CellStatus.OK]
    if broken:
        definers = {c.index for c in sources if name in defined_names(c.source)}
        broken = [c for c in broken if c.index in definers] or broken
    why = f" (code cell {broken[0].index + 1}: {broken[0].error})" if broken else ""
    if kind == "missing":
        return f"{name} is not defined{why}"
    if kind.startswith(_UNREADABLE):
        return f"{name} {kind}"
    return f"{name} is a {kind.split('(')[0]}, not what the contract asks for{why}"


def _describe(session: StudentSession, names: list[str]) -> dict[str, str]:
    """What each name is; if describing them together fails, one at a time, so that a name whose
    description hangs or kills the process costs only its own question."""
    try:
        return session.describe(names)
    except StudentProcessError:
        pass
    kinds = {}
    for name in names:
        try:
            kinds.update(session.describe([name]))
        except StudentProcessError as exc:
            kinds[name] = f"{_UNREADABLE}: {exc.reason}"
    return kinds


def _status(cells: tuple[CellRun, ...], checks: tuple[CheckResult, ...]) -> str:
    """``ok``, or one line on the worst thing that happened (a grader error first: the grade is not sound)."""
    for result in checks:
        if result.status == Status.GRADER_ERROR:
            return result.failure.summary
    stopped = (CellStatus.TIMEOUT, CellStatus.CRASH, CellStatus.BROKEN, CellStatus.SKIPPED)
    for wanted in (stopped, (CellStatus.ERROR,)):
        for cell in cells:
            if cell.status in wanted:
                verb = "raised " if cell.status == CellStatus.ERROR else ""
                return one_line(f"code cell {cell.index + 1} {verb}{cell.error}")
        if wanted is stopped:
            for result in checks:
                if result.status in (Status.TIMEOUT, Status.CRASH):
                    return one_line(f"{result.qid} {BY_ID[result.qid].name}: {result.failure.got}")
                if result.status == Status.SKIPPED and _UNREADABLE in result.failure.summary:
                    return one_line(f"{result.qid} {result.failure.summary}")
    return "ok"


def grade_notebook(
    data: bytes, *, sandbox: Sandbox, seed: int = 0, qids: tuple[str, ...] = QUESTION_IDS, public_only: bool = False
) -> Graded:
    """Grade notebook ``data`` with the student process of ``sandbox`` (only public checks if ``public_only``).

    Total: a grader-side exception in a check becomes that check's result;
    one anywhere else, the whole submission's (``grading_failed``).
    """
    start = time.monotonic()
    try:
        graded = _grade(data, sandbox, seed, qids, public_only, start)
    except Exception as exc:  # noqa: BLE001 - a grader bug costs this submission, never the batch
        graded = grading_failed(grader_error("the submission", exc), traceback.format_exc(), qids=qids,
                                public_only=public_only, seconds=time.monotonic() - start)
    return dataclasses.replace(graded, notebook=hashlib.sha256(data).hexdigest() if data else "", seed=seed)


def _grade(data: bytes, sandbox: Sandbox, seed: int, qids: tuple[str, ...], public_only: bool, start: float) -> Graded:
    key = submission_key(data, seed)
    questions = _questions(qids, public_only)
    try:
        notebook = read_notebook(data)
    except NotebookError as exc:
        results = tuple(skipped(c, exc.reason) for q in qids for c in questions[q])
        return Graded(key, exc.reason, question_scores(results, qids), results, (), False, time.monotonic() - start)
    by_qid: dict[str, tuple[CheckResult, ...]] = {}
    used: dict[str, set[str]] = {}
    errors: list[str] = []
    with StudentSession(sandbox, notebook.code_cells) as session:
        session.graded = tuple(BY_ID[q].name for q in QUESTION_IDS if q != "A1")
        cells = tuple(session.runs[c.index] for c in notebook.code_cells)
        kinds = _describe(session, [BY_ID[q].name for q in qids])
        for qid in qids:
            entry = BY_ID[qid]
            kind = kinds[entry.name]
            wanted = "dict" if qid == "A1" else "function("
            if not kind.startswith(wanted):
                reason = _missing_reason(kind, entry.name, cells, notebook.code_cells)
                by_qid[qid] = tuple(skipped(c, reason) for c in questions[qid])
                continue
            used[qid] = set()
            by_qid[qid] = _grade_question(session, questions[qid], seed, errors, used=used[qid])
        carried = _carry_forward(session, questions, by_qid, used, seed, errors)
    checks = tuple(r for qid in qids for r in by_qid[qid])
    return Graded("" if errors else key, _status(cells, checks), question_scores(checks, qids), checks, cells,
                  not errors, time.monotonic() - start, tuple(errors), carried=carried,
                  student_seconds=session.cpu_spent)


def _grade_question(session: StudentSession, checks: tuple[Check, ...], seed: int, errors: list[str], *,
                    oracle: tuple[str, ...] = (), used: set[str] | None = None) -> tuple[CheckResult, ...]:
    """Every check of one question in order (after a timeout or a crash the rest are skipped)."""
    deadline = time.monotonic() + QUESTION_SECONDS
    stop: str | None = None
    results: list[CheckResult] = []
    for check in checks:
        if stop is not None:
            results.append(skipped(check, stop))
            continue
        try:
            result = run_check(session, check, seed, deadline, oracle=oracle, used=used)
        except Exception as exc:  # noqa: BLE001 - a grader bug costs this check, with its traceback logged
            errors.append(traceback.format_exc())
            result = _grader_error_result(check, exc)
        results.append(result)
        if result.status in (Status.TIMEOUT, Status.CRASH):
            stop = f"not run: an earlier check of {check.qid} ended with a {result.status}"
    return tuple(results)


def _carry_forward(session: StudentSession, questions: dict[str, tuple[Check, ...]],
                   by_qid: dict[str, tuple[CheckResult, ...]], used: dict[str, set[str]], seed: int,
                   errors: list[str]) -> tuple[tuple[str, str], ...]:
    """Error carried forward: regrade each question that lost points and was seen to use graded functions
    that lost points of their own, with those answered by the reference; keep the better grade.

    ``by_qid`` is updated in place; the pairs ``(question, dependency)`` carried are returned. Faking
    a use gains nothing: the regrade runs the student's own caller on the reference's values of the
    dependency, so it scores better only where the caller is right given a right dependency.
    """
    by_name = {BY_ID[q].name: q for q in by_qid}
    lost = {q for q, rs in by_qid.items() if _earned(rs) < sum(r.max_points for r in rs)}
    carried: list[tuple[str, str]] = []
    for qid in list(by_qid):
        deps = sorted({by_name[n] for n in used.get(qid, ()) if n in by_name} & lost - {qid})
        if qid not in lost or not deps:
            continue
        regraded = _grade_question(session, questions[qid], seed, errors, oracle=tuple(BY_ID[d].name for d in deps))
        if _earned(regraded) > _earned(by_qid[qid]):
            by_qid[qid] = regraded
            carried += [(qid, d) for d in deps]
    return tuple(carried)


def carried_note(qid: str, dependency: str) -> str:
    """The feedback line of one error carried forward."""
    return (f"{qid} {BY_ID[qid].name}: graded with {dependency} taken as correct; "
            f"{dependency} loses its own points")


def _earned(results: tuple[CheckResult, ...]) -> float:
    return round(sum(r.points for r in results), 2)
