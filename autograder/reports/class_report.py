"""``report.html``: what a TA reads before releasing grades.

How the class was graded (grader version, seed, isolation, torch, date),
histograms of the totals, each question's full / part / no marks, every
student with a link to their ``feedback.md``, the checks that failed most
often and whom they hit, statuses other than ``ok``, the written scores and
totals after a merge (the gradebook's later columns), overrides, lateness
and the similarity of the students' code.

Built only from what a run wrote (``gradebook.csv``, each ``results.json``,
``overrides.csv``, ``lateness.json``) and a ``RunInfo`` the run passes once,
nothing timed: the same class gives the same bytes however it was graded
(``-j`` or a cluster). Re-rendered without a run (after ``merge`` or
``override``), the report keeps the run's ``RunInfo`` and similarity section
from the report it replaces: both are marked in the page by comments that
no escaped value can contain. How long each submission took is in
``timing.csv`` (``render_timing``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.contract import MAX_TOTAL, QUESTION_IDS
from autograder.course.amend import read_lateness
from autograder.course.overrides import read_overrides
from autograder.discovery import student_dir
from autograder.escape import csv_text, csv_value
from autograder.reports import class_sections as sections
from autograder.reports import reread
from autograder.reports.class_plots import question_bars, totals_histogram
from autograder.reports.class_sections import NOT_RECORDED, OverrideRow, RunMeta, StudentRow, finite
from autograder.reports.gradebook import COLUMNS

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Class report</title>
{run_record}
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
td, th {{ border: 1px solid #bbb; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; }}
table.meta th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
.sbs {{ display: grid; grid-template-columns: 1fr 1fr; gap: 0.5rem; }}
.sbs pre {{ overflow: auto; max-height: 30rem; border: 1px solid #bbb; padding: 0.4rem; font-size: 0.8rem; }}
mark {{ background: #fd6; }}
</style></head><body>
<h1>Class report</h1>
<p>{n} submissions · mean total {mean:.1f} / {max_total} · {not_ok} with a status other than <code>ok</code></p>
{run}
<h2>Totals</h2>
{totals}
<h2>Marks per question</h2>
{questions}
{students}
{failing}
{statuses}
{overrides}
{lateness}
<!-- similarity -->{similarity}<!-- /similarity -->
<p>How long each submission took to grade: <code>timing.csv</code>.</p>
</body></html>
"""
_RUN_RECORD = re.compile(r"<!-- run (\{[^<>]*\}) -->")
_SIMILARITY = re.compile(r"<!-- similarity -->(.*?)<!-- /similarity -->", re.DOTALL)
#: Gradebook columns after ``status`` that hold a total worth a histogram: its title, and the columns that may
#: hold its maximum (the first one present counts).
TOTAL_COLUMNS = {"grand_total": ("grand total (autograded and written)", ("grand_max",)),
                 "final": ("final (after the late penalty)", ("grand_max", "max_total"))}


@dataclass(frozen=True)
class RunInfo:
    """What the records of one run do not hold: the isolation level, torch's version and the run's date."""

    isolation: str
    torch: str
    date: str


def this_run(submissions: Path) -> RunInfo:
    """This process's isolation level and torch version; as the date, when ``submissions`` last changed.

    Not the clock: a rerun of the same folder (``-j 1``, ``-j 2``, a cluster)
    gives the same report. The folder changes when a notebook in it is added,
    removed or renamed, never by what a student's notebook file claims.
    """
    import torch

    from autograder.sandbox import isolation

    try:
        stamp = dt.datetime.fromtimestamp(submissions.stat().st_mtime, dt.timezone.utc)
        date = f"{stamp:%Y-%m-%d %H:%M} UTC (when the submissions folder last changed)"
    except (OSError, OverflowError, ValueError):
        date = NOT_RECORDED
    return RunInfo(str(isolation.detect().level), str(torch.__version__), date)


def _record(run: RunInfo) -> str:
    """``run`` as a comment of the page: JSON with ``<``, ``>`` and ``&`` escaped, so nothing inside ends it."""
    text = json.dumps(asdict(run), ensure_ascii=True, sort_keys=True)
    return "<!-- run " + text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + " -->"


def _previous(out: Path) -> tuple[RunInfo | None, str]:
    """The run record and the similarity section of the report in ``out`` (None and "" when there is none)."""
    try:
        page = (out / "report.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, ""
    run = None
    if found := _RUN_RECORD.search(page):
        fields = reread.parse_json(found.group(1))
        if isinstance(fields, dict) and all(k in fields for k in ("isolation", "torch", "date")):
            run = RunInfo(**{k: str(fields[k])[:200] for k in ("isolation", "torch", "date")})
    similarity = _SIMILARITY.search(page)
    return run, similarity.group(1) if similarity else ""


def _gradebook(out: Path) -> tuple[list[dict[str, str]], tuple[str, ...]]:
    """The gradebook's rows (cells as written: ``csv_value``) and its columns after the autograded ones."""
    try:
        reader = csv.reader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8"), newline=""))
        header = [csv_value(c) for c in next(reader, [])]
        rows = [dict(zip(header, (csv_value(c) for c in r))) for r in reader if r]
    except (OSError, UnicodeDecodeError, csv.Error):
        return [], ()
    return [r for r in rows if "student" in r], tuple(c for c in header if c not in COLUMNS)


@dataclass(frozen=True)
class _Results:
    """What the report takes from the students' ``results.json``."""

    failures: dict[tuple[str, str], list[StudentRow]]
    hints: dict[tuple[str, str], str]
    versions: Counter[str]
    seeds: Counter[str]
    unreadable: list[StudentRow]


def _results(rows: Sequence[StudentRow], folders: Mapping[str, Path]) -> _Results:
    """Failures (from each test's ``extra_data``, never parsed out of its text), versions and seeds."""
    failures: defaultdict[tuple[str, str], list[StudentRow]] = defaultdict(list)
    hints: dict[tuple[str, str], str] = {}
    versions: Counter[str] = Counter()
    seeds: Counter[str] = Counter()
    unreadable = []
    for row in rows:  # sorted by student: not the order jobs finished in, so -j and a cluster agree
        doc = reread.read_json(folders[row.student] / "results.json")
        extra = doc.get("extra_data") if isinstance(doc, dict) else None
        if not (isinstance(extra, dict) and isinstance(doc.get("tests"), list)):
            unreadable.append(row)
            continue
        version, seed = extra.get("grader_version", NOT_RECORDED), extra.get("seed")
        tests = [t for t in doc["tests"] if isinstance(t, dict)]
        versions[str(version)] += 1
        seeds[NOT_RECORDED if seed is None else str(seed)] += 1
        for test in tests:
            data, tags = test.get("extra_data"), test.get("tags")
            try:
                failed = float(test["score"]) < float(test["max_score"])
            except (KeyError, TypeError, ValueError, OverflowError):
                continue
            if failed and not (isinstance(tags, list) and "written" in tags) and isinstance(data, dict) and "qid" in data:
                key = (str(data["qid"]), str(data.get("check", "")))
                failures[key].append(row)
                hints.setdefault(key, str(data.get("hint", "")))
    return _Results(dict(failures), hints, versions, seeds, unreadable)


def _column(table: Sequence[Mapping[str, str]], column: str) -> list[float]:
    """The numbers of a gradebook column (blank and unreadable cells left out)."""
    return [v for r in table if (v := finite(r.get(column, ""))) is not None]


def _totals(table: Sequence[dict[str, str]], extra_columns: Sequence[str]) -> str:
    panels: dict[str, tuple[list[float], float]] = {
        "autograded total": (_column(table, "total"), float(MAX_TOTAL))}
    for column, (title, top) in TOTAL_COLUMNS.items():
        if column in extra_columns and (values := _column(table, column)):
            tops = next((found for c in top if (found := _column(table, c))), [float(MAX_TOTAL)])
            panels[title] = (values, max(tops))
    return _image(totals_histogram(panels), "histograms of the students' totals")


def _row(out: Path, cells: Mapping[str, str], extra_columns: Sequence[str], folder: Path) -> StudentRow:
    """A gradebook row as the report shows it; the link only when the student's ``feedback.md`` exists."""
    href = sections.feedback_href(out, folder) if (folder / "feedback.md").is_file() else None
    return StudentRow(cells["student"], cells.get("status", ""), finite(cells.get("total", "")) or 0.0,
                      tuple(cells.get(c, "") for c in extra_columns), href)


def _image(png: str, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{png}">'


def render_class_report(
    out: Path,
    student_dirs: Mapping[str, Path] | None = None,
    similarity: str | None = None,
    *,
    run: RunInfo | None = None,
    overrides: Sequence[OverrideRow] | None = None,
) -> str:
    """The report's HTML from ``out/gradebook.csv``, each student's ``results.json``, and the arguments.

    ``student_dirs`` (student → folder) defaults to ``student_dir`` of each
    gradebook row; ``similarity`` (the section's HTML) and ``run`` default to
    those of the report already in ``out`` — so ``render_class_report(out)``
    after ``merge`` or ``override`` keeps what only ``grade`` knows.
    ``overrides`` defaults to those kept in ``OUT/overrides.csv``; lateness
    is ``OUT/lateness.json``'s, the final scores the gradebook's.
    """
    before_run, before_similarity = _previous(out) if similarity is None or run is None else (None, "")
    run = run or before_run or RunInfo(NOT_RECORDED, NOT_RECORDED, NOT_RECORDED)
    similarity = before_similarity if similarity is None else similarity
    table, extra_columns = _gradebook(out)
    folders = {r["student"]: (student_dirs or {}).get(r["student"]) or student_dir(out, r["student"]) for r in table}
    rows = sorted((_row(out, r, extra_columns, folders[r["student"]]) for r in table), key=lambda r: r.student)
    found = _results(rows, folders)
    meta = RunMeta(found.versions, found.seeds, run.isolation, run.torch, run.date)
    scores = {q: _column(table, q) for q in QUESTION_IDS}
    return PAGE.format(
        run_record=_record(run), n=len(rows), max_total=MAX_TOTAL,
        mean=sum(r.total for r in rows) / len(rows) if rows else 0.0, not_ok=sum(r.status != "ok" for r in rows),
        run=sections.run_section(meta),
        totals=_totals(table, extra_columns) if rows else "<p>no students</p>",
        questions=_image(question_bars(scores), "students with full, part or no marks, per question") if rows else "",
        students=sections.students_section(rows, extra_columns),
        failing=sections.failing_section(found.failures, found.hints),
        statuses=sections.statuses_section(rows, found.unreadable),
        overrides=sections.overrides_section(read_overrides(out) if overrides is None else overrides),
        lateness=sections.lateness_section(rows, extra_columns, read_lateness(out)),
        similarity=similarity,
    )


def render_timing(out: Path, student_dirs: dict[str, Path]) -> str:
    """``timing.csv``, slowest first: each student's grading time in seconds, the CPU seconds of it spent in
    their own code, and the difference, the grader's own cost (from ``run.json``; blank when not recorded)."""
    rows = []
    for student, folder in sorted(student_dirs.items()):  # not the order jobs finished in: -j and a cluster agree
        run = reread.read_json(folder / "run.json")
        seconds, mine = (run.get("seconds"), run.get("student_seconds")) if isinstance(run, dict) else (None, None)
        if not _seconds(seconds):
            rows.append((0.0, student, "", ""))
            continue
        if _seconds(mine):
            rows.append((seconds, student, f"{mine:.3f}", f"{max(seconds - mine, 0.0):.3f}"))
        else:
            rows.append((seconds, student, "", ""))
    rows.sort(key=lambda r: -r[0])
    return csv_text([["student", "seconds", "student_cpu_seconds", "grader_seconds"],
                     *([s, f"{t:.3f}", mine, grader] for t, s, mine, grader in rows)])


def _seconds(value: object) -> bool:
    """Whether ``value`` is a duration ``run.json`` could hold (a finite, non-negative number of seconds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9


__all__ = ["RunInfo", "render_class_report", "render_timing", "this_run"]
