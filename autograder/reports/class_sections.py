"""The sections of ``report.html``, each an HTML fragment built from records the run wrote.

Every value that a student or a TA controls (student ids, folder names,
check names, hints, reasons, gradebook cells) goes through ``html_text``
once, here; a student's id is also shown ``printable`` (a newline or a
bidirectional override appears as ``\\x0a`` / ``\\u202e``). A link to a
student's ``feedback.md`` is relative to the report and percent-encoded
segment by segment, so no folder name can make it leave the output folder,
carry a scheme or break out of its attribute.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from autograder.contract import MAX_TOTAL
from autograder.escape import html_text, printable

NAME_CHARS = 200
SHOWN_FAILURES = 20
SHOWN_HIT = 30  # students listed under one failing check
NOT_RECORDED = "not recorded"


class OverrideRow(Protocol):
    """What the report shows of one override (``autograder.course.overrides`` records have these)."""

    @property
    def student(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def reason(self) -> str: ...
    @property
    def by(self) -> str: ...


@dataclass(frozen=True)
class StudentRow:
    """One student's line of the gradebook, with the report-relative link to their ``feedback.md``."""

    student: str
    status: str
    total: float
    extra: tuple[str, ...]  # the gradebook's cells of the columns after ``status`` (written, totals, lateness)
    href: str | None


@dataclass(frozen=True)
class RunMeta:
    """How the class was graded: values found in the students' ``results.json`` (counted), and of the run."""

    grader_versions: Counter[str]
    seeds: Counter[str]
    isolation: str
    torch: str
    date: str


def name(student: str) -> str:
    """A student id as inert HTML text: printable (controls and bidi overrides escaped), bounded."""
    return html_text(printable(student), NAME_CHARS)


def feedback_href(out: Path, folder: Path) -> str | None:
    """``folder/feedback.md`` relative to ``out``, every segment percent-encoded; None outside ``out``."""
    try:
        parts = folder.relative_to(out).parts
    except ValueError:
        return None
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    return "./" + "/".join(quote(p, safe="", errors="surrogatepass") for p in parts) + "/feedback.md"


def linked(row: StudentRow) -> str:
    """The student's id, linking to their feedback when it exists."""
    return f'<a href="{html_text(row.href)}">{name(row.student)}</a>' if row.href else name(row.student)


def _values(counts: Counter[str]) -> str:
    if not counts:
        return NOT_RECORDED
    if len(counts) == 1:
        return f"<code>{html_text(next(iter(counts)))}</code>"
    return ", ".join(f"<code>{html_text(v)}</code> ({n} students)" for v, n in sorted(counts.items()))


def run_section(meta: RunMeta) -> str:
    """Grader version, seed, isolation, torch and date, as a two-column table."""
    items = (("grader version", _values(meta.grader_versions)), ("seed", _values(meta.seeds)),
             ("isolation", html_text(meta.isolation)), ("torch", html_text(meta.torch)),
             ("date", html_text(meta.date)))
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items)
    return f"<h2>Run</h2><table class=meta>{rows}</table>"


def finite(text: str) -> float | None:
    """The number a gradebook cell holds, or None (blank, text, NaN, infinite)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cell(text: str) -> str:
    return f"<td class=num>{html_text(text)}</td>" if finite(text) is not None else f"<td>{html_text(text)}</td>"


def _shown(rows: Sequence[StudentRow], extra_columns: Sequence[str]) -> dict[int, str]:
    """The later columns the table shows (index → header): a maximum the same for everyone (``grand_max``)
    goes into the header of its total (``grand_total / 120``) instead of a column of its own."""
    headers = {i: c for i, c in enumerate(extra_columns)}
    for i, column in enumerate(extra_columns):
        total = column.removesuffix("_max") + "_total"
        values = {r.extra[i] for r in rows}
        if column.endswith("_max") and total in extra_columns and len(values) == 1:
            headers[extra_columns.index(total)] = f"{total} / {values.pop()}"
            del headers[i]
    return headers


def students_section(rows: Sequence[StudentRow], extra_columns: Sequence[str]) -> str:
    """Every student: id (linking to ``feedback.md``), status, autograded total, then the gradebook's later columns."""
    shown = _shown(rows, extra_columns)
    head = "".join(f"<th>{html_text(c)}</th>" for c in shown.values())
    body = "".join(
        f"<tr><td>{linked(r)}</td><td>{html_text(r.status)}</td><td class=num>{r.total:g}</td>"
        + "".join(_cell(r.extra[i]) for i in shown) + "</tr>"
        for r in rows)
    return (f"<h2>Students</h2><table><tr><th>student</th><th>status</th><th>total / {MAX_TOTAL}</th>{head}</tr>"
            f"{body or '<tr><td colspan=3>none</td></tr>'}</table>")


def failing_section(failures: Mapping[tuple[str, str], Sequence[StudentRow]], hints: Mapping[tuple[str, str], str]) -> str:
    """The checks that failed most often, with their hint and the students they hit (most hit first)."""
    ranked = sorted(failures.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:SHOWN_FAILURES]
    body = []
    for (qid, check), hit in ranked:
        who = ", ".join(linked(r) for r in hit[:SHOWN_HIT])
        if len(hit) > SHOWN_HIT:
            who += f" and {len(hit) - SHOWN_HIT} more"
        body.append(f"<tr><td>{html_text(qid)}</td><td>{html_text(check)}</td><td class=num>{len(hit)}</td>"
                    f"<td>{html_text(hints.get((qid, check), ''))}</td><td>{who}</td></tr>")
    more = f"<p>{len(failures) - SHOWN_FAILURES} more failing checks are in the students' results.</p>" \
        if len(failures) > SHOWN_FAILURES else ""
    return ("<h2>Checks that failed most often</h2>"
            "<table><tr><th>question</th><th>check</th><th>students</th><th>hint</th><th>who</th></tr>"
            f"{''.join(body) or '<tr><td colspan=5>none</td></tr>'}</table>{more}")


def statuses_section(rows: Sequence[StudentRow], unreadable: Sequence[StudentRow]) -> str:
    """Every status other than ``ok``, and the students whose ``results.json`` could not be read."""
    body = "".join(f"<tr><td>{linked(r)}</td><td>{html_text(r.status)}</td></tr>" for r in rows if r.status != "ok")
    body += "".join(f"<tr><td>{name(r.student)}</td><td>results.json missing or unreadable: grade again</td></tr>"
                    for r in unreadable)
    return ("<h2>Statuses other than ok</h2><table><tr><th>student</th><th>status</th></tr>"
            f"{body or '<tr><td colspan=2>none</td></tr>'}</table>")


def overrides_section(overrides: Sequence[OverrideRow]) -> str:
    """The TAs' overrides of autograded scores: student, question or check, score, reason, by whom."""
    body = "".join(
        f"<tr><td>{name(o.student)}</td><td>{html_text(o.item)}</td><td class=num>{o.score:g}</td>"
        f"<td>{html_text(o.reason)}</td><td>{html_text(o.by)}</td></tr>"
        for o in sorted(overrides, key=lambda o: (o.student, o.item)))
    return ("<h2>Overrides</h2><table><tr><th>student</th><th>item</th><th>score</th><th>reason</th><th>by</th></tr>"
            f"{body or '<tr><td colspan=5>none (python -m autograder override sets one)</td></tr>'}</table>")


class LateRow(Protocol):
    """What the report shows of one student's lateness (``autograder.reports.amendments.LateNote`` has these)."""

    @property
    def late_days(self) -> int | None: ...
    @property
    def penalty(self) -> float: ...
    @property
    def rule(self) -> str: ...
    @property
    def text(self) -> str: ...


def lateness_section(rows: Sequence[StudentRow], extra_columns: Sequence[str],
                     lateness: Mapping[str, LateRow] | None) -> str:
    """The late policy (its most common rule) and every student it penalised or could not judge (unknown
    submission time), with late days, penalty, final score (the gradebook's ``final``) and what happened."""
    if lateness is None:
        return "<h2>Lateness</h2><p>No lateness policy: no penalties.</p>"
    rules = Counter(n.rule for n in lateness.values())
    final = extra_columns.index("final") if "final" in extra_columns else None
    body = []
    for r in rows:
        note = lateness.get(r.student)
        if note is None or note.late_days == 0:
            continue
        days = "unknown" if note.late_days is None else str(note.late_days)
        body.append(f"<tr><td>{linked(r)}</td><td class=num>{days}</td><td class=num>{note.penalty * 100:g}%</td>"
                    f"{'<td></td>' if final is None else _cell(r.extra[final])}<td>{html_text(note.text)}</td>"
                    f"<td>{html_text(note.rule)}</td></tr>")
    rule = f"<p>Rule: {html_text(rules.most_common(1)[0][0])}</p>" if rules else ""
    return (f"<h2>Lateness</h2>{rule}<table><tr><th>student</th><th>late days</th><th>penalty</th><th>final</th>"
            "<th>what happened</th><th>rule</th></tr>"
            f"{''.join(body) or '<tr><td colspan=6>nobody submitted late</td></tr>'}</table>")
