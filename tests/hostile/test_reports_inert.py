"""Reports are inert, honest and bounded whatever a student or a TA writes.

Each report is parsed the way its reader parses it (markdown-it, html.parser,
csv, the terminal's bytes) and checked for structure that came from the
hostile text: a forged heading, raw HTML, a link or image, a forged hint, a
spreadsheet formula, an escape sequence; and for its size.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from autograder.checks import QUESTIONS
from autograder.checks.framework import CheckResult, FailureRecord, Status
from autograder.cli import _parser, main
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.escape import csv_cell, csv_value, md_code, md_text, printable
from autograder.grading import Graded
from autograder.local import check
from autograder.written.merge import WRITTEN_MARKER, merge, reapply
from autograder.reports import GradebookRow, render_feedback, render_gradebook, render_results, write_atomic
from autograder.reports.class_report import render_class_report
from autograder.reports.feedback import MAX_FEEDBACK_BYTES
from autograder.reports.markdown import render_markdown
from autograder.reports.results_json import MAX_RESULTS_BYTES
from autograder.written.codes import read_key
from autograder.written.review import review_page, write_review
from autograder.written.rubric import load_rubric
from autograder.written.scores import merged_path
from autograder.runner import student_dir, write_reports
from autograder.sandbox.session import CellRun

HOSTILE = (
    "boom\n## Score: 100 / 100\n<img src=x onerror=alert(1)>\n````\n# forged heading\n"
    "[click](http://evil.example) ![pic](http://evil.example/x.png) <http://evil.example>\n"
    "  hint     : spoofed hint\n\x1b]0;pwned\x07\x1b[2J\u202e &amp; `code` \ud800 | cell | *em* $x^2$"
)
NAMES = ("<img src=x onerror=alert(1)>", "=HYPERLINK(\"http://evil.example\",\"x\")", "a\n# forged name",
         "\x1b[31mred\x1b[0m", "+SUM(1,2)", "@SUM(1,2)")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
RUBRIC = load_rubric()


def _result(qid: str, index: int, status: Status, text: str) -> CheckResult:
    c = QUESTIONS[qid][index]
    failure = FailureRecord.of(text, call=f"f(x={text[:3000]!r})", shrunk=True, expected=text, got=text, detail=text,
                               hint=c.hint, kind=c.kind)
    return CheckResult(qid, c.name, c.visibility, 0.0, c.points, status, failure)


def _graded(text: str = HOSTILE, status: str = HOSTILE) -> Graded:
    checks = (_result("B2", 0, Status.FAILED, text), _result("B2", 1, Status.ERROR, text),
              _result("C4", 0, Status.TIMEOUT, text), _result("D1", 0, Status.SKIPPED, text))
    cells = (CellRun(0, "error", text, "", text), CellRun(1, "skipped", text, "", None))
    scores = {q: 0.0 for q in QUESTION_IDS}
    return Graded(key="k", status=status, scores=scores, checks=checks, cells=cells, gradable=True)


# ---------------------------------------------------------------- feedback.md


def _tokens(markdown: str) -> list:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [*tokens, *(child for t in tokens for child in (t.children or ()))]


def _headings(tokens: list) -> list[str]:
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


@pytest.mark.parametrize("name", NAMES)
def test_feedback_has_only_the_renderers_structure(name):
    tokens = _tokens(render_feedback(name, _graded()))
    lost = [f"{q} `{BY_ID[q].name}` — 0 / {BY_ID[q].points}" for q in ("B2", "C4", "D1")]
    assert _headings(tokens)[1:] == ["Your notebook", "Points lost", *lost]
    assert _headings(tokens)[0].startswith("Feedback for ")
    kinds = [t.type for t in tokens]
    assert not set(kinds) & {"html_inline", "html_block", "link_open", "image", "em_open", "s_open"}
    assert {t.content for t in tokens if t.type == "code_inline"} <= {e.name for e in BY_ID.values()}
    assert kinds.count("strong_open") == 1  # the renderer's own score line
    assert kinds.count("fence") == 4  # one block per lost check, none closed early
    strong = tokens[kinds.index("strong_open") + 1].content
    assert strong == "Score: 0 / 100"


def test_feedback_rendered_with_raw_html_allowed_has_no_student_element():
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(render_feedback(NAMES[0], _graded()))
    assert "<img" not in html and "<a " not in html and "\x1b" not in html and "\u202e" not in html


def test_a_name_with_a_newline_forges_no_heading():
    page = render_feedback("alice\n# Score: 100 / 100", _graded("plain", "ok"))
    assert MarkdownIt("commonmark").render(page).startswith("<h1>Feedback for alice # Score: 100 / 100</h1>\n<p>")
    assert page.count("\n# ") == 0 and page.startswith("# Feedback for alice \\# Score")


# ---------------------------------------------------------------- size budgets


def _everything_fails(text: str) -> Graded:
    checks = tuple(_result(q, i, Status.FAILED, text) for q in QUESTION_IDS for i in range(len(QUESTIONS[q])))
    return Graded(key="k", status="ok", scores={q: 0.0 for q in QUESTION_IDS}, checks=checks, cells=(),
                  gradable=True)


@pytest.mark.parametrize("unit", ["x", "€", "\x01", "\""])
def test_a_2_mib_value_in_every_check_keeps_results_and_feedback_bounded(unit):
    graded = _everything_fails(unit * 2**21)
    results = render_results(graded)
    assert len(results.encode()) <= MAX_RESULTS_BYTES
    doc = json.loads(results)
    assert len(doc["tests"]) == len(graded.checks) and all(t["output_format"] == "text" for t in doc["tests"])
    assert len(render_feedback("alice", graded).encode()) <= MAX_FEEDBACK_BYTES


def test_fifteen_thousand_failed_cells_keep_feedback_bounded():
    cells = tuple(CellRun(i, "error", "NameError: x" * 40, "", None) for i in range(15_000))
    graded = Graded(key="k", status="ok", scores={q: 0.0 for q in QUESTION_IDS}, checks=(), cells=cells,
                    gradable=True)
    page = render_feedback("alice", graded)
    assert len(page.encode()) < 64 * 1024 and "14950 more cells" in page


def test_results_json_carries_fields_and_round_trips_what_resume_needs():
    from autograder.reports import read_summary

    text = render_results(_graded())  # a status with a lone surrogate still gives valid UTF-8
    doc = json.loads(text.encode("utf-8"))
    assert [t["extra_data"]["status"] for t in doc["tests"]] == ["failed", "error", "timeout", "skipped"]
    assert doc["tests"][0]["extra_data"]["hint"] == QUESTIONS["B2"][0].hint
    summary = read_summary(text)
    assert (summary["key"], summary["scores"], summary["gradable"]) == ("k", _graded().scores, True)


# ---------------------------------------------------------------- report.html


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, tuple]] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.elements.append((tag, tuple(attrs)))

    def handle_data(self, data: str) -> None:
        self.cells.append(data)


def _class_out(tmp_path: Path, names: tuple[str, ...]) -> tuple[Path, dict[str, Path]]:
    out = tmp_path / "out"
    rows = []
    for name in names:
        graded = _graded()
        write_reports(out, name, graded)
        rows.append(GradebookRow(name, graded.scores, "code cell 1 raised " + printable(HOSTILE)))
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    return out, {n: student_dir(out, n) for n in names}


@pytest.fixture
def no_plot(monkeypatch):
    """The class report without its histograms (seconds of matplotlib, no student text)."""
    import autograder.reports.class_report as class_report

    monkeypatch.setattr(class_report, "totals_histogram", lambda totals: "")
    monkeypatch.setattr(class_report, "question_bars", lambda scores: "")


def test_class_report_has_no_student_element_and_no_forged_hint(tmp_path, no_plot):
    out, dirs = _class_out(tmp_path, NAMES)
    parser = _Elements()
    parser.feed(render_class_report(out, dirs))
    tags = {tag for tag, _ in parser.elements}
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code", "img", "table", "tr",
                    "th", "td", "a"}
    imgs = [dict(attrs) for tag, attrs in parser.elements if tag == "img"]  # the plots, nothing else
    assert [i["src"] for i in imgs] == ["data:image/png;base64,"] * 2
    assert {name for tag, attrs in parser.elements if tag == "a" for name, _ in attrs} == {"href"}
    page = render_class_report(out, dirs)
    failing = _Elements()  # the table of the checks that failed most often: question, check, students, hint, who
    failing.feed(page.split("<h2>Checks that failed most often</h2>")[1].split("<h2>")[0])
    rows = [c for c in failing.cells if c.strip()]
    assert rows[:5] == ["question", "check", "students", "hint", "who"] and "spoofed hint" not in " ".join(rows)
    assert rows[5:9] == ["B2", QUESTIONS["B2"][0].name, str(len(NAMES)), QUESTIONS["B2"][0].hint]
    assert any(c == NAMES[0] for c in parser.cells)  # the name, shown as text
    assert not [name for _, attrs in parser.elements for name, _ in attrs if name.startswith("on")]
    hrefs = [value for tag, attrs in parser.elements if tag == "a" for _, value in attrs]  # to feedback.md
    assert hrefs and all(re.fullmatch(r"\./[A-Za-z0-9_.~%-]+/feedback\.md", h) for h in hrefs), hrefs


# ---------------------------------------------------------------- CSV


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_gradebook_cells_are_neutralised_and_recoverable(prefix):
    student = f"{prefix}SUM(1,2)"
    text = render_gradebook([GradebookRow(student, {q: 1.5 for q in QUESTION_IDS}, f"{prefix}cmd|' /C calc'!A0")])
    (row,) = list(csv.DictReader(io.StringIO(text, newline="")))
    assert row["student"].startswith("'") and row["status"].startswith("'")
    assert csv_value(row["student"]) == student
    assert row["B2"] == "1.5" and row["total"] == f"{1.5 * len(QUESTION_IDS):g}"  # numbers stay numbers


@pytest.mark.parametrize("value", ["-1.5", "3", "+2", "alice", "", "'quoted", "''", "'=x", "=1", "-x"])
def test_csv_cells_round_trip(value):
    cell = csv_cell(value)
    assert csv_value(cell) == value
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r") or float(cell) == float(value)


def test_key_csv_neutralises_student_names_and_reads_them_back(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    names = [f"{p}HYPERLINK(x)" for p in ("=", "+", "-", "@")]
    for name in names:
        (subs / f"{name}.ipynb").write_text("{}")
    write_review(subs, tmp_path / "out")
    rows = list(csv.reader((tmp_path / "out" / "review-key" / "key.csv").open(newline="")))
    assert rows[0] == ["student_code", "student"] and all(r[1].startswith("'") for r in rows[1:])
    assert sorted(read_key(tmp_path / "out")[1].values()) == sorted(names)


# ---------------------------------------------------------------- merge: hostile TA comment


COMMENT = "=HYPERLINK(\"http://evil.example\",\"x\") <img src=x onerror=alert(1)> | # h\n## Score: 100"


def test_merge_with_a_hostile_ta_comment(tmp_path):
    out = tmp_path / "out"
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.ipynb").write_text("{}")
    scores = {q: 1.0 for q in QUESTION_IDS}
    write_reports(out, "alice", Graded(key="k", status="ok", scores=scores, checks=(), cells=(),
                                       gradable=True))
    write_atomic(out / "gradebook.csv", render_gradebook([GradebookRow("alice", scores, "ok")]))
    write_review(subs, out)
    code = next(iter(read_key(out)[1]))
    qid = next(iter(RUBRIC))
    sheet = tmp_path / "scores.csv"
    with sheet.open("w", newline="") as f:  # code and question id typed in lower case
        csv.writer(f).writerows([("student_code", "question", "score", "comment"),
                                 (code.lower(), qid.lower(), "1", COMMENT)])
    missing = merge(out, sheet)
    assert ("alice", qid) not in missing and len(missing) == len(RUBRIC) - 1
    tokens = _tokens((out / "alice" / "feedback.md").read_text())
    assert not {t.type for t in tokens} & {"html_inline", "link_open", "image"}
    assert [t.content for t in tokens if t.type == "html_block"] == [WRITTEN_MARKER + "\n"]  # merge's own marker
    assert _headings(tokens) == ["Feedback for alice", "Written answers (graded by TAs)", "Totals"]
    merged = list(csv.reader(merged_path(out).open(newline="")))
    assert merged[1][-1].startswith("'") and csv_value(merged[1][-1]) == COMMENT
    doc = json.loads((out / "alice" / "results.json").read_text())
    (written,) = [t for t in doc["tests"] if "written" in t["tags"]]
    assert written["output"] == COMMENT and written["output_format"] == "text"
    before = (out / "alice" / "results.json").read_bytes()
    reapply(out)  # the merged copy reads back to the same comment
    assert (out / "alice" / "results.json").read_bytes() == before


# ---------------------------------------------------------------- review sheets


def _sheet(answer: str) -> str:
    from autograder.notebook import Answer

    question = next(iter(RUBRIC.values()))
    return review_page(question, None, {"S-AAAAAA": Answer(question.qid, answer, "tag")})


@pytest.mark.parametrize("answer", [
    "[x]: http://evil.example/" + "a" * 20_000 + "\n\n" + "[x]" * 7_000,  # 41 kB that made 70 MB
    "[x]: http://evil.example/" + "a" * 9_000 + "\n\n" + "[x]" * 3_000,  # under the length cut
    " ".join([r"$\begin{pmatrix}a&b\\c&d\end{pmatrix}^{\frac{1}{2}}_{\sum_i x_i}$"] * 300),  # 300 formulas
    "$" + r"\frac{1}{\sqrt{2}}" * 1_000 + "$",  # one 17 kB formula
    " ".join([r"$\begin{pmatrix}a&b\\c&d\end{pmatrix}^{\frac{1}{2}}_{\sum_i x_i}$"] * 700),  # 42 kB of formulas
])
def test_a_42_kb_answer_gives_a_bounded_sheet(answer):
    page = _sheet(answer)
    assert len(page) < 1024 * 1024, len(page)
    assert "<script" not in page and "href=" not in page


def test_an_ordinary_answer_still_renders_math():
    assert "<math" in render_markdown("The entropy is $\\frac{1}{2}\\log 2\\pi e$.")


# ---------------------------------------------------------------- terminal and question ids


def test_grade_prints_no_raw_escape_sequence_or_markup_from_a_name(tmp_path, capsys, monkeypatch, no_plot):
    monkeypatch.setenv("COLUMNS", "400")  # a table row on one line
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "\x1b]0;pwned\x07\x1b[2J[bold red]x.ipynb").write_text("{ not json")
    (subs / "=SUM(1,2).ipynb").write_text("{ not json")
    code = main(["grade", str(subs), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert code == 1, printed
    assert "\x1b" not in printed.out and "\x07" not in printed.out
    assert "\\x1b]0;pwned\\x07\\x1b[2J[bold red]x" in printed.out  # shown escaped, markup as text
    rows = list(csv.DictReader((tmp_path / "out" / "gradebook.csv").open(newline="")))
    assert {r["student"] for r in rows} >= {"'=SUM(1,2)"}


def test_question_ids_are_case_insensitive():
    assert _parser().parse_args(["check", "x.ipynb", "-q", "c4", "-q", "B2"]).question == ["C4", "B2"]
    with pytest.raises(ValueError, match="unknown question id"):
        check("zz", namespace={})


def test_local_check_takes_a_lower_case_id(capsys):
    assert not check("a1", namespace={})
    assert "A1" in capsys.readouterr().out


def test_escapers_make_inert_text():
    assert "<" not in md_text("<b>").replace("\\<", "")
    fenced = md_code("```\n# x\n````")
    assert fenced.startswith("`````text\n") and fenced.endswith("\n`````\n")
    assert printable("\x1b[2J\u202e\ud800") == "\\x1b[2J\\u202e\\ud800"


# ---------------------------------------------------------------- the same, from a real student process


@pytest.mark.slow
def test_a_real_hostile_notebook_gives_inert_bounded_reports(tmp_path):
    from autograder.grading import grade_notebook
    from autograder.sandbox.process import Sandbox

    source = (
        f"HOSTILE = {HOSTILE.replace(chr(0xd800), '')!r}\n"
        "def scale_tril_from_raw(raw):\n    return 'x€' * 2**20\n"
        "def covariance_from_scale_tril(L):\n    raise ValueError(HOSTILE)\n"
    )
    cells = [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}}
    with Sandbox() as sandbox:
        graded = grade_notebook(json.dumps(notebook).encode(), sandbox=sandbox, qids=("B1", "B2"))
    assert {r.status for r in graded.checks if r.qid == "B2"} == {Status.ERROR}
    results = render_results(graded)
    assert len(results.encode()) <= 64 * 1024  # 2 MiB returned, a few kB reported
    feedback = render_feedback("alice", graded)
    assert len(feedback.encode()) <= 64 * 1024
    tokens = _tokens(feedback)
    assert not {t.type for t in tokens} & {"html_inline", "html_block", "link_open", "image"}
    assert all(h.startswith(("Feedback for", "Points lost", "B1 ", "B2 ")) for h in _headings(tokens))
    b2 = [t["extra_data"]["hint"] for t in json.loads(results)["tests"] if t["extra_data"]["qid"] == "B2"]
    assert b2 == [c.hint for c in QUESTIONS["B2"]]  # the checks' own hints, none from the exception text


@pytest.mark.parametrize("text", ["see http://evil.example/x", "HTTPS://evil", "www.evil.example", "mail me@evil.example",
                                  "ftp://x", "file:///etc/passwd"])
def test_markdown_text_holds_no_bare_address_a_renderer_would_link(text):
    from autograder.escape import md_text

    out = md_text(text)
    assert not re.search(r"(?i)(https?|ftp|file)://|www\.|[^\s\u2060]@", out), out
    assert out.replace("\u2060", "") == text  # only invisible word joiners were added
