"""Student ids and TA text in CSV files: printable, never a formula, read back exactly (issue 11).

Every CSV file the grader writes (gradebook.csv, timing.csv, similarity.csv, changes.csv, key.csv,
scores.csv, the LMS exports) is rendered by ``escape.csv_text``; these tests fuzz it and the writers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.contract import QUESTION_IDS
from autograder.course.diff import Change, render_changes
from autograder.course.similarity import Pair
from autograder.escape import csv_cell, csv_text, csv_value
from autograder.reports.class_report import render_timing
from autograder.reports.gradebook import GradebookRow, render_gradebook
from autograder.reports.similarity import render_similarity_csv

ROOT = Path(__file__).resolve().parents[2]
FORMULA = tuple("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
#: Any text, surrogates included, with the characters that make escapes and formulas over-represented.
TEXTS = st.text(st.one_of(st.characters(codec=None), st.sampled_from("\\x0u1bU=+-@'\t\r\n\x1b\x00\u202e\u2028")),
                max_size=40)


def _raw_unsafe(cell: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in "\u202e\u202d\u2066\u200f\ufeff"
               for ch in cell)


def _safe_cell(cell: str) -> None:
    assert not _raw_unsafe(cell), repr(cell)
    if cell.startswith(FORMULA):
        float(cell)  # only a number may start with a sign


def _read(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == text.count("\n"), "a cell split its row"
    return rows


@settings(max_examples=150, deadline=None)
@given(TEXTS)
def test_a_cell_is_printable_inert_and_reads_back_exactly(text):
    cell = csv_cell(text)
    _safe_cell(cell)
    assert csv_value(cell) == text


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.one_of(TEXTS, st.floats(allow_nan=False), st.integers()), min_size=1, max_size=4),
                min_size=1, max_size=4))
def test_csv_text_rows_read_back_cell_for_cell(rows):
    back = _read(csv_text(rows))
    assert [[csv_value(c) for c in row] for row in back] == [[v if isinstance(v, str) else str(v) for v in row]
                                                            for row in rows]
    for row in back:
        for cell in row:
            _safe_cell(cell)


def test_a_value_that_cannot_be_printed_still_gets_a_cell():
    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

    assert csv_cell(Hostile()) == "<a value that could not be printed>"


@settings(max_examples=25, deadline=None)
@given(st.lists(TEXTS, min_size=2, max_size=4, unique=True))
def test_every_writer_keeps_student_ids_printable_and_exact(ids):
    texts = {
        "gradebook": render_gradebook([GradebookRow(s, {q: 1.0 for q in QUESTION_IDS}, s) for s in ids]),
        "similarity": render_similarity_csv([Pair(ids[0], ids[1], 0.5, {}, True)]),
        "changes": render_changes([Change(s, "total", "1", "2", s) for s in ids]),
    }
    for name, text in texts.items():
        rows = _read(text)
        for row in rows:
            for cell in row:
                _safe_cell(cell)
        firsts = {csv_value(row[0]) for row in rows[1:]}
        assert firsts <= set(ids) and firsts, name


def test_timing_csv_ids_are_printable(tmp_path):
    ids = ["\x1b[31mred", "=HYPERLINK(\"x\")", "tab\there", "-1+2"]
    dirs = {}
    for k, s in enumerate(ids):
        (tmp_path / str(k)).mkdir()
        (tmp_path / str(k) / "run.json").write_text(json.dumps({"seconds": k}))
        dirs[s] = tmp_path / str(k)
    rows = _read(render_timing(tmp_path, dirs))
    assert sorted(csv_value(r[0]) for r in rows[1:]) == sorted(ids)
    for row in rows:
        for cell in row:
            _safe_cell(cell)


def test_only_escape_writes_csv():
    """No module but ``autograder/escape.py`` makes a ``csv.writer``: every CSV file goes through ``csv_text``."""
    writer = re.compile(r"\bcsv\s*\.\s*(?:writer|DictWriter)\b|\bfrom\s+csv\s+import\b")
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "autograder").rglob("*.py")
                 if path != ROOT / "autograder" / "escape.py" and writer.search(path.read_text())]
    assert not offenders
