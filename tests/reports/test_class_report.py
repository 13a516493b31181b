"""``report.html`` from records written the way a run writes them (no student process): what a TA reads.

Run metadata, totals histograms and per-question bars with integer count axes, a
table linking each student's feedback, failing checks with whom they hit,
written scores after a merge, overrides, lateness, the similarity section
kept across a re-render, and hostile student names rendered inert.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

import autograder.reports.class_report as class_report
from autograder.checks import QUESTIONS
from autograder.checks.framework import CheckResult, FailureRecord, Status
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.course.amend import add_late_columns, render_lateness
from autograder.course.overrides import STORE, Override, render_store
from autograder.discovery import student_dir
from autograder.escape import printable
from autograder.grading import Graded, grader_version
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.reports import class_plots
from autograder.reports.class_report import RunInfo, render_class_report, this_run
from autograder.reports.amendments import LateNote
from autograder.runner import write_reports
from tests.html_page import Page, parse_html

RUN = RunInfo("namespaces", "9.9.9+test", "2026-12-01 12:00 UTC (when the submissions folder last changed)")
HOSTILE_NAME = '<script>alert("x")</script>" onmouseover=\'alert(1)\'\u202eevil\nline two'
SIMILARITY = "<h2>Similar code</h2><p>planted section</p>"


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data: str) -> None:
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def _rows(page: str, title: str) -> list[list[str]]:
    """The cells of the first table of section ``title``, as text."""
    table = _Table()
    table.feed(page.split(f"<h2>{title}</h2>")[1].split("</table>")[0])
    return [[cell.strip() for cell in row] for row in table.rows]


def _section(page: str, title: str) -> Page:
    return parse_html(page.split(f"<h2>{title}</h2>")[1].split("<h2>")[0])


def _graded(failing: tuple[tuple[str, int], ...], seed: int = 3) -> Graded:
    """Every question at full marks but the ``failing`` (qid, check index) checks."""
    checks, scores = [], {q: float(BY_ID[q].points) for q in QUESTION_IDS}
    for qid, index in failing:
        c = QUESTIONS[qid][index]
        failure = FailureRecord.of("wrong value", call="f(x)", expected="1", got="2", hint=c.hint, kind=c.kind)
        checks.append(CheckResult(qid, c.name, c.visibility, 0.0, c.points, Status.FAILED, failure))
        scores[qid] -= c.points
    return Graded(key="k", status="ok", scores=scores, checks=tuple(checks), cells=(), gradable=True, seed=seed)


def _class(out: Path, students: dict[str, Graded], written: dict[str, dict[str, float | None]] | None = None,
           written_points: dict[str, float] | None = None) -> None:
    for student, graded in students.items():
        write_reports(out, student, graded)
    rows = [GradebookRow(s, g.scores, g.status) for s, g in students.items()]
    write_atomic(out / "gradebook.csv", render_gradebook(rows, written=written, written_points=written_points))


@pytest.fixture
def no_plots(monkeypatch):
    """The report without its PNGs (matplotlib takes a second; the plots hold no student text)."""
    monkeypatch.setattr(class_report, "totals_histogram", lambda totals: "")
    monkeypatch.setattr(class_report, "question_bars", lambda scores: "")


#: A folder of this very name (printable, no slash): its link must still stay relative and inside the attribute.
SCHEME_NAME = "javascript:alert(1)\"'<b onmouseover=x>#?%20"
STUDENTS = {"ada": (), "bob": (("C4", 0),), "cy": (("C4", 0), ("B2", 0)), HOSTILE_NAME: (("C4", 0),), SCHEME_NAME: ()}


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    _class(folder, {s: _graded(f) for s, f in STUDENTS.items()})
    return folder


def test_the_report_shows_run_metadata_from_the_records_and_the_run(out, no_plots):
    page = render_class_report(out, run=RUN)
    cells = [c.strip() for c in _section(page, "Run").text if c.strip()]
    assert cells == ["grader version", grader_version(), "seed", "3", "isolation", "namespaces",
                     "torch", "9.9.9+test", "date", RUN.date]


def test_each_student_links_to_their_own_feedback(out, no_plots):
    page = render_class_report(out, run=RUN)
    links = [attrs["href"] for tag, attrs in _section(page, "Students").tags if tag == "a"]
    assert len(links) == len(STUDENTS)
    targets = {(out / unquote(href)).resolve() for href in links}
    assert targets == {(student_dir(out, s) / "feedback.md").resolve() for s in STUDENTS}
    assert all(href.startswith("./") and ":" not in href and '"' not in href for href in links)
    assert student_dir(out, SCHEME_NAME).name == SCHEME_NAME  # the folder really is named so


def test_failing_checks_name_the_students_they_hit(out, no_plots):
    page = render_class_report(out, run=RUN)
    text = [c.strip() for c in _section(page, "Checks that failed most often").text if c.strip()]
    c4, b2 = QUESTIONS["C4"][0], QUESTIONS["B2"][0]
    at = text.index(c4.name)
    assert text[at - 1:at + 3] == ["C4", c4.name, "3", c4.hint]
    assert text[at + 3:at + 8] == [printable(HOSTILE_NAME), ",", "bob", ",", "cy"]
    assert text[text.index(b2.name) + 1:text.index(b2.name) + 4] == ["1", b2.hint, "cy"]


def test_a_hostile_student_name_renders_inert(out, no_plots):
    page = render_class_report(out, run=RUN)
    parsed = parse_html(page)
    assert parsed.tag_names <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code", "img",
                                "table", "tr", "th", "td", "a"}, parsed.tag_names
    assert parsed.attr_names <= {"lang", "charset", "alt", "src", "href", "class", "colspan"}, parsed.attr_names
    assert "\u202e" not in page and "<script>" not in page and "\nline two" not in page
    assert printable(HOSTILE_NAME) in "".join(parsed.text)  # shown, as text, with its controls escaped


def test_the_run_record_and_similarity_survive_a_rerender(out, no_plots):
    write_atomic(out / "report.html", render_class_report(out, similarity=SIMILARITY, run=RUN))
    again = render_class_report(out)  # what merge calls: no run, no similarity
    assert again == (out / "report.html").read_text(encoding="utf-8")
    assert SIMILARITY in again and RUN.date in again
    fresh = render_class_report(out.parent / "nothing")  # no earlier report: said, not invented
    assert "not recorded" in "".join(_section(fresh, "Run").text) and "Similar code" not in fresh


def test_a_name_cannot_forge_the_markers_the_rerender_reads(tmp_path, no_plots):
    out = tmp_path / "out"
    forged = '<!-- /similarity --><!-- run {"isolation": "none", "torch": "x", "date": "y"} -->'
    _class(out, {forged: _graded((("C4", 0),))})
    write_atomic(out / "report.html", render_class_report(out, similarity=SIMILARITY, run=RUN))
    again = render_class_report(out)
    assert SIMILARITY in again and '"isolation": "none"' not in again and "<td>none</td>" not in again


def test_written_scores_and_grand_totals_after_a_merge(tmp_path, no_plots):
    out = tmp_path / "out"
    _class(out, {"ada": _graded(()), "bob": _graded((("C4", 0),))}, written={"ada": {"W1": 4.0}, "bob": {"W1": None}},
           written_points={"W1": 5.0})
    head, ada, bob = _rows(render_class_report(out, run=RUN), "Students")
    assert head[:4] == ["student", "status", "total / 100", "W1"] and "grand_total / 105" in head
    assert "written_max" not in head and "grand_max" not in head  # a maximum the same for all: in the header
    lost = QUESTIONS["C4"][0].points
    assert ada[:4] == ["ada", "ok", "100", "4"] and ada[head.index("grand_total / 105")] == "104"
    assert bob[:4] == ["bob", "ok", f"{100 - lost:g}", ""]  # not scored yet: blank, not 0
    assert bob[head.index("grand_total / 105")] == f"{100 - lost:g}"


def test_lateness_from_the_runs_records(out, no_plots):
    assert "No lateness policy" in render_class_report(out, run=RUN)
    rule = "due 2026-12-01T23:59:00+00:00; 10% per started day late"
    notes = {"ada": LateNote(0, 0.0, rule, "on time"), "bob": LateNote(2, 0.2, rule, "2 days late, penalty 20%"),
             "cy": LateNote(None, 0.0, rule, "lateness unknown: no submission time")}
    write_atomic(out / "lateness.json", render_lateness(notes))
    add_late_columns(out, notes)
    c4, b2 = QUESTIONS["C4"][0].points, QUESTIONS["B2"][0].points
    final = f"{round((100 - c4) * 0.8, 2):g}"
    assert _rows(render_class_report(out, run=RUN), "Lateness") == [
        ["student", "late days", "penalty", "final", "what happened", "rule"],
        ["bob", "2", "20%", final, "2 days late, penalty 20%", rule],
        ["cy", "unknown", "0%", f"{100 - c4 - b2:g}", "lateness unknown: no submission time", rule]]


def test_overrides_kept_in_the_output_folder_are_listed_escaped(out, no_plots):
    assert "none" in "".join(_section(render_class_report(out, run=RUN), "Overrides").text)
    kept = [Override("bob", "C4.1", 2.0, "<b>regrade</b> ok", "ta"), Override(HOSTILE_NAME, "B2", 1.0, "x", "")]
    write_atomic(out / STORE, render_store(kept))
    page = render_class_report(out, run=RUN)
    assert _rows(page, "Overrides")[1:] == [[printable(HOSTILE_NAME), "B2", "1", "x", ""],
                                            ["bob", "C4.1", "2", "<b>regrade</b> ok", "ta"]]
    assert "<b>" not in page


def test_an_unreadable_results_json_costs_that_student_a_line_only(out, no_plots):
    (student_dir(out, "bob") / "results.json").write_text("{ not json")
    text = " ".join(_section(render_class_report(out, run=RUN), "Statuses other than ok").text)
    assert "bob" in text and "results.json missing or unreadable" in text


def test_the_same_records_give_the_same_bytes_whatever_the_folder_order(out, no_plots):
    dirs = {s: student_dir(out, s) for s in STUDENTS}
    backwards = dict(reversed(list(dirs.items())))
    assert render_class_report(out, dirs, "", run=RUN) == render_class_report(out, backwards, "", run=RUN)


@pytest.mark.slow  # matplotlib's import and figures: seconds
def test_every_count_axis_has_integer_ticks(monkeypatch):
    figures = []
    monkeypatch.setattr(class_plots, "_png", lambda fig: figures.append(fig) or "")
    class_plots.totals_histogram({"autograded total": ([10.0, 50.0, 52.0], 100.0), "final": ([9.0], 100.0)})
    class_plots.question_bars({q: [0.0, 1.0, float(BY_ID[q].points)] for q in QUESTION_IDS})
    (total, final), (questions,) = (fig.axes for fig in figures)
    counts = [(total, total.get_yticks(), total.get_ylim()), (final, final.get_yticks(), final.get_ylim()),
              (questions, questions.get_xticks(), questions.get_xlim())]
    for ax, ticks, (low, high) in counts:
        shown = [t for t in ticks if low <= t <= high]
        assert len(shown) >= 2 and all(float(t).is_integer() for t in shown), (ax.get_title(), shown)
    bars = sorted((round(p.get_x()), round(p.get_width())) for p in questions.patches if p.get_width())
    assert bars == sorted([(0, 1), (1, 1), (2, 1)] * len(QUESTION_IDS))  # one student each: full, part, none


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SCRIPTED = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">\u202e\n\"'"


def _chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args],
                          capture_output=True, timeout=180, check=True)


@pytest.fixture
def full_page(tmp_path) -> Path:
    """A class with a hostile name, rendered with its plots (what a TA opens)."""
    out = tmp_path / "out"
    _class(out, {**{s: _graded(f) for s, f in STUDENTS.items()}, SCRIPTED: _graded((("E1", 0),))},
           written={"ada": {"W1": 3.0}}, written_points={"W1": 5.0})
    write_atomic(out / "report.html", render_class_report(out, similarity=SIMILARITY, run=RUN))
    return out / "report.html"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_the_report_renders_in_chromium_and_runs_nothing_a_student_wrote(full_page, tmp_path):
    import matplotlib.image

    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2400", full_page.as_uri())
    pixels = matplotlib.image.imread(shot)
    inked = (pixels[..., :3].min(axis=-1) < 0.9).mean()
    assert pixels.shape[:2] == (2400, 1200) and 0.03 < inked < 0.6, inked  # text, tables and plots; not blank
    dom = _chromium("--dump-dom", full_page.as_uri()).stdout.decode()
    assert "<title>Class report</title>" in dom and "pwned</title>" not in dom  # no script or handler ran
    elements = parse_html(dom).tags
    assert "script" not in {tag for tag, _ in elements} and [tag for tag, _ in elements].count("img") == 2
    assert not [name for _, attrs in elements for name in attrs if name.startswith("on")]


def test_the_totals_plot_has_a_panel_per_total_the_gradebook_holds(tmp_path, monkeypatch):
    panels = []
    monkeypatch.setattr(class_report, "totals_histogram", lambda totals: panels.append(totals) or "")
    monkeypatch.setattr(class_report, "question_bars", lambda scores: "")
    out = tmp_path / "out"
    _class(out, {"ada": _graded(()), "bob": _graded((("C4", 0),))}, written={"ada": {"W1": 4.0}},
           written_points={"W1": 5.0})
    render_class_report(out, run=RUN)
    add_late_columns(out, {"ada": LateNote(1, 0.5, "r", "1 day late"), "bob": LateNote(0, 0.0, "r", "on time")})
    render_class_report(out, run=RUN)
    lost = QUESTIONS["C4"][0].points
    assert [{k: (sorted(v), top) for k, (v, top) in p.items()} for p in panels] == [
        {"autograded total": ([100 - lost, 100], 100), "grand total (autograded and written)": ([100 - lost, 104], 105)},
        {"autograded total": ([100 - lost, 100], 100), "grand total (autograded and written)": ([100 - lost, 104], 105),
         "final (after the late penalty)": ([52, 100 - lost], 105)}]


def test_the_runs_date_is_the_submissions_folders_not_the_clock_nor_a_students(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch

    from autograder.sandbox import isolation

    monkeypatch.setattr(isolation, "detect", lambda: SimpleNamespace(level="rlimits"))
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ada.ipynb").write_text("{}")
    os.utime(subs, (1_764_590_400, 1_764_590_400))  # 2025-12-01 12:00 UTC
    os.utime(subs / "ada.ipynb", (4_102_444_800, 4_102_444_800))  # a student's file claiming 2100
    run = this_run(subs)
    assert run == RunInfo("rlimits", torch.__version__, "2025-12-01 12:00 UTC (when the submissions folder last changed)")
    assert this_run(subs) == run  # a rerun of the same folder: the same report
    assert this_run(tmp_path / "missing").date == "not recorded"


def test_timing_splits_each_grade_into_the_students_cpu_and_the_graders_own_cost(tmp_path):
    from autograder.reports.class_report import render_timing

    runs = {"ada": {"seconds": 5.5, "student_seconds": 3.0}, "bob": {"seconds": 2.0},
            "cy": {"seconds": 1.0, "student_seconds": "lots"}, "dee": "not a record"}
    for student, run in runs.items():
        (tmp_path / student).mkdir()
        (tmp_path / student / "run.json").write_text(json.dumps(run))
    lines = render_timing(tmp_path, {s: tmp_path / s for s in runs}).splitlines()
    assert lines == ["student,seconds,student_cpu_seconds,grader_seconds", "ada,5.500,3.000,2.500",
                     "bob,2.000,,", "cy,1.000,,", "dee,0.000,,"]
