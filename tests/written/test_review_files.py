"""Review files a spreadsheet reads: the key apart from the graders' folder, scores.csv with titles and maxima,
and review/index.html with what is still to score."""

import csv
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.written.codes import KEY_HEADER, read_key
from autograder.reports import write_atomic
from autograder.written.index import render_index, write_index
from autograder.written.merge import merge
from autograder.written.review import write_review
from autograder.written.rubric import RUBRIC as RUBRIC_PATH
from autograder.written.rubric import load_rubric
from autograder.written.scores import SCORE_COLUMNS, WrittenScore, merged_path, scores_csv
from tests.written import helpers

NAMES = ("=HYPERLINK(\"x\")", "<img src=x onerror=alert(1)>", "zz-plain-zz")
HOSTILE_TITLE = '<script>alert("t")</script> & "q"'


@pytest.fixture
def small_rubric(tmp_path) -> Path:
    """The course's rubric cut to two questions (a sheet each), one of them titled with markup."""
    tables = RUBRIC_PATH.read_text(encoding="utf-8").split("\n[[question]]\n")
    path = tmp_path / "rubric.toml"
    second = tables[2].replace('title = "Reverse KL optima"', f"title = '{HOSTILE_TITLE}'")
    assert HOSTILE_TITLE in second
    path.write_text("\n[[question]]\n".join(["", tables[1], second]), encoding="utf-8")
    assert len(load_rubric(path)) == 2
    return path


@pytest.fixture
def reviewed(tmp_path, small_rubric) -> Path:
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in NAMES:
        (subs / f"{name}.ipynb").write_bytes(helpers.notebook("an answer"))
    out = tmp_path / "out"
    write_review(subs, out, rubric=small_rubric)
    return out


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k == "href"]

    def handle_data(self, data) -> None:
        if data.strip():
            self.cells.append(data.strip())


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_the_key_starts_with_its_header_and_lives_apart_from_the_graders_folder(reviewed):
    with (reviewed / "review-key" / "key.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == KEY_HEADER and len(rows) == len(NAMES) + 1
    salt = (reviewed / "review-key" / "salt.txt").read_text().strip()
    assert salt and read_key(reviewed)[0] == salt
    given_to_graders = "".join(p.read_text() for p in (reviewed / "review").iterdir())
    assert salt not in given_to_graders and not any(name in given_to_graders for name in NAMES)
    assert not (reviewed / "review" / "key.csv").exists()


def test_scores_csv_names_each_question_and_its_maximum(reviewed, small_rubric):
    questions = load_rubric(small_rubric)
    with (reviewed / "review" / "scores.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == SCORE_COLUMNS and len(rows) == len(NAMES) * len(questions)
    assert all(r["title"] == questions[r["question"]].title and r["max"] == str(questions[r["question"]].points)
               and r["score"] == "" for r in rows)


def test_the_index_links_every_sheet_with_the_count_still_to_score(reviewed, small_rubric):
    questions = load_rubric(small_rubric)
    text = (reviewed / "review" / "index.html").read_text()
    page = _page(text)
    assert "script" not in page.tags and "<script" not in text and HOSTILE_TITLE in page.cells  # shown, as text
    assert sorted(link for link in page.links if link.endswith(".html")) == sorted(f"{q}.html" for q in questions)
    assert all((reviewed / "review" / link).is_file() for link in page.links)
    assert page.cells.count(f"{len(NAMES)} of {len(NAMES)}") == len(questions)


def test_the_index_counts_what_a_merge_left_to_score(tmp_path):
    _, out = helpers.graded_out(tmp_path)
    codes = helpers.codes(out)
    first, second = list(helpers.RUBRIC)[:2]
    merge(out, helpers.scores_file(tmp_path / "s.csv", [[codes["alice"], first, "1", ""], [codes["bob"], first, "0", ""],
                                                        [codes["carol"], second, "", "later"]]))
    page = _page((out / "review" / "index.html").read_text())
    row = {page.cells[i]: page.cells[i + 3] for i, cell in enumerate(page.cells) if cell in helpers.RUBRIC}
    assert row[first] == "1 of 3" and row[second] == "3 of 3" and set(row) == set(helpers.RUBRIC)


def test_a_filled_scores_csv_merges_as_written(tmp_path):
    _, out = helpers.graded_out(tmp_path)
    codes = helpers.codes(out)
    questions = helpers.RUBRIC
    path = tmp_path / "filled.csv"
    with path.open("w", newline="", encoding="utf-8") as f:  # the columns in another order, as a spreadsheet may
        csv.writer(f).writerows([("max", "title", "comment", "score", "question", "student_code"),
                                 (5, "whatever the TA's copy says", "fine", "4", "W004-3.5", codes["alice"])])
    merge(out, path)
    assert helpers.gradebook(out)["alice"]["W004-3.5"] == "4"
    with (out / "review" / "merged_scores.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["title"], row["max"], row["score"]) == (questions["W004-3.5"].title, str(questions["W004-3.5"].points), "4")


@pytest.mark.parametrize("header", [("student_code", "question", "score"),  # no comment column
                                    ("student_code", "question", "score", "comment", "notes"),  # an unknown one
                                    ("student_code", "question", "score", "score", "comment")])  # twice
def test_a_header_without_the_columns_is_refused(graded, tmp_path, header):
    _, out = graded
    path = tmp_path / "s.csv"
    path.write_text(",".join(header) + "\n")
    before = helpers.snapshot(out)
    with pytest.raises(ValueError, match="the first line must be"):
        merge(out, path)
    assert helpers.snapshot(out) == before


def test_render_index_escapes_what_it_shows():
    questions = load_rubric()
    qid = next(iter(questions))
    hostile = {qid: questions[qid].__class__(qid, 3, HOSTILE_TITLE, "", ())}
    text = render_index(hostile, {"S-1", "S-2"}, {("S-1", qid): WrittenScore(2.0, "")})
    assert "<script" not in text and "&lt;script&gt;" in text and "1 of 2" in text


def test_the_command_says_where_the_sheets_and_the_key_are(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ann.ipynb").write_bytes(helpers.notebook("an answer"))
    assert main(["review", str(subs), "--out", str(tmp_path / "out")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert str(tmp_path / "out" / "review") in printed and str(tmp_path / "out" / "review" / "index.html") in printed
    assert f"{tmp_path / 'out' / 'review-key'}/" in printed and "grade blind" in printed


def test_review_run_again_counts_the_scores_of_the_last_merge(reviewed, small_rubric):
    questions = load_rubric(small_rubric)
    _, key = read_key(reviewed)
    code, qid = sorted(key)[0], next(iter(questions))
    write_atomic(merged_path(reviewed), scores_csv(questions, [(code, qid, WrittenScore(3.0, ""))]))
    write_index(reviewed, questions, set(key), set(key))
    cells = _page((reviewed / "review" / "index.html").read_text()).cells
    assert cells[cells.index(qid) + 3] == f"{len(NAMES) - 1} of {len(NAMES)}"
    merged_path(reviewed).write_text("not, a, scores file\n")  # unreadable: nothing counts as merged
    write_index(reviewed, questions, set(key), set(key))
    cells = _page((reviewed / "review" / "index.html").read_text()).cells
    assert cells[cells.index(qid) + 3] == f"{len(NAMES)} of {len(NAMES)}"
