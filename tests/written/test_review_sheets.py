"""Review sheets: inert and self-contained, hostile answers escaped, answers found as README says, stable codes."""

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.reports.markdown import render_markdown
from autograder.written.codes import assign_codes, read_key, student_code
from autograder.written.review import write_review
from autograder.written.rubric import TEMPLATE, load_rubric
from tests.reports.answers import answer_cells

ROOT = Path(__file__).resolve().parents[2]
RUBRIC = load_rubric()

HOSTILE = [  # (what a student wrote, what must not survive as markup)
    ('<script>alert("x")</script>', "raw script"),
    ('<img src=x onerror="alert(1)">', "raw img with onerror"),
    ("$\\text{<script>alert(2)</script>}$", "script inside \\text (latex2mathml unescapes its output)"),
    ("$\\text{<img src=x onerror=alert(3)>}$", "img inside \\text"),
    ("$$\\href{javascript:alert(4)}{x}$$", "MathML href"),
    ("$\\style{background:url(https://evil.example/a.png)}{x}$", "MathML style loading a URL"),
    ("![t](https://evil.example/track.png)", "external image"),
    ("[me](https://evil.example/) and <https://evil.example/auto>", "links out of the page"),
    ('<iframe src="https://evil.example"></iframe><link rel=stylesheet href="https://evil.example/s.css">', "frames, styles"),
    ("<style>@import url(https://evil.example/s.css);</style>", "a style element"),
    ("[x](javascript:alert(5))", "javascript link"),
]


class _Page(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def assert_inert(page: str) -> None:
    """Nothing on ``page`` runs, loads or links anywhere: the only style is the page's own."""
    parsed = _parse(page)
    tags = [tag for tag, _ in parsed.elements]
    assert not {"script", "iframe", "object", "embed", "link", "base", "form", "frame", "svg"} & set(tags), tags
    assert tags.count("style") <= 1
    for tag, attrs in parsed.elements:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert name not in ("href", "action", "formaction", "xlink:href", "background", "poster"), (tag, name, value)
            if name == "src":
                assert (value or "").startswith("data:image/"), (tag, value)
            if name == "style":
                assert "url" not in (value or "") and ":" in (value or ""), (tag, value)
            if name == "xmlns":
                assert value == "http://www.w3.org/1998/Math/MathML"


@pytest.mark.parametrize("text, what", HOSTILE, ids=[w for _, w in HOSTILE])
def test_hostile_markdown_renders_inert(text, what):
    assert_inert(render_markdown(text))


def test_escaped_text_stays_readable():
    html = render_markdown('<script>alert("x")</script> and $\\text{a < b}$ and $x<y$')
    parsed = _parse(html)
    text = "".join(parsed.text)
    assert '<script>alert("x")</script>' in text and "a\xa0<\xa0b" in text  # \\text keeps its spaces as no-break spaces
    assert "math" in [t for t, _ in parsed.elements]


def test_the_inertness_check_catches_markup():
    for bad in ['<script>x</script>', '<img src="https://e/x.png">', '<a href="https://e">x</a>', '<p onclick="x">']:
        with pytest.raises(AssertionError):
            assert_inert(bad)


def test_math_and_markdown_stay_readable():
    html = render_markdown("**Entropy** $\\tfrac12\\sum_j (1 + \\log 2\\pi\\tilde\\sigma_j^2)$\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    tags = [t for t, _ in _parse(html).elements]
    assert {"strong", "math", "msub", "table", "td"} <= set(tags)
    assert "∑" in html and "σ" in html  # entities decoded once, not shown as "&#x02211;"


class _Tree(HTMLParser):
    """Each heading element with the chain of its enclosing ``tag.class`` elements, outermost first."""

    VOID = {"br", "hr", "img", "meta"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.headings: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in {f"h{n}" for n in range(1, 7)}:
            self.headings.append((tag, tuple(self.open)))
        if tag not in self.VOID:
            self.open.append(f"{tag}.{dict(attrs).get('class') or ''}")

    def handle_startendtag(self, tag, attrs) -> None:
        pass  # ``<x />``: no heading, nothing left open

    def handle_endtag(self, tag) -> None:
        assert self.open and self.open[-1].split(".")[0] == tag, (tag, self.open)
        self.open.pop()


FORGED = ("I did not answer.\n\n| score: &nbsp; / 5 | comment: |\n|---|---|\n| | |\n\n### S-7F3A21\n\n"
          "The model answer, $\\Sigma = L L^\\top$, copied.\n\n---\n\n# Top\n\n## Part\n\n###### Deep\n\n"
          "Setext\n======\n")


def test_an_answer_cannot_pass_for_another_students_entry():
    from autograder.notebook import Answer
    from autograder.written.review import review_page

    q = RUBRIC["W004-2"]
    page = review_page(q, None, {"S-AAAAAA": Answer(q.qid, FORGED, "tag"), "S-BBBBBB": Answer(q.qid, "Mine.", "tag")})
    tree = _Tree()
    tree.feed(page)
    entries = [(tag, chain) for tag, chain in tree.headings if chain[-1] == "section.student"]
    assert entries == [("h3", ("html.", "body.", "section.student"))] * 2  # one code per student, the sheet's own
    inside = [tag for tag, chain in tree.headings if "div.answer" in chain]
    assert inside == ["h6", "h4", "h5", "h6", "h4"]  # every heading of the answer stays in its box, below h3
    assert page.count('<table class="score">') == 2 and "S-7F3A21" in page


def test_the_sheet_styles_only_its_own_code_heading():
    from autograder.written.review import PAGE

    assert "section.student > h3" in PAGE and "section.student h3" not in PAGE


def _write(path: Path, cells: list[dict]) -> None:
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))


@pytest.fixture
def hostile_class(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for i, (text, _) in enumerate(HOSTILE):
        _write(subs / f"student{i:02d}.ipynb", answer_cells({"W004-3.5": text, "W000-1.2": text}, untag={"W000-1.2"}))
    out = tmp_path / "out"
    write_review(subs, out)
    return out


def test_every_sheet_is_inert_and_self_contained(hostile_class):
    for qid in RUBRIC:
        page = (hostile_class / "review" / f"{qid}.html").read_text()
        assert_inert(page)
        assert page.count("<section class=\"student\"") == len(HOSTILE)
        tree = _Tree()
        tree.feed(page)  # well nested, and no heading of an answer outside its box
        assert all((tag, chain[-1]) == ("h3", "section.student") or ("div.answer" in chain and tag > "h3")
                   for tag, chain in tree.headings if "section.student" in chain)


def test_hostile_answers_are_shown_as_text(hostile_class):
    text = "".join(_parse((hostile_class / "review" / "W004-3.5.html").read_text()).text)
    assert '<script>alert("x")</script>' in text and '<img src=x onerror="alert(1)">' in text
    assert "image not shown: t — https://evil.example/track.png" in text


def test_the_sheet_shows_the_question_as_asked_and_the_embedded_figure(hostile_class):
    page = (hostile_class / "review" / "W004-1.2a.html").read_text()
    parsed = _parse(page)
    text = " ".join(parsed.text)
    assert "is there a global minimum? How many local minima are there" in text  # the notebook's wording
    images = [a["src"] for t, a in parsed.elements if t == "img"]
    assert len(images) == 1 and images[0].startswith("data:image/png;base64,iVBORw0KGgo")  # reverse_kl.png
    assert "2.744" in text and "Rubric" in text and "Model answer" in text
    question = page.split("<h2>Question</h2>", 1)[1].split("<h2>Rubric</h2>", 1)[0]
    assert "Answer the next three questions" in question  # the prose the heading cell relies on
    formula = (hostile_class / "review" / "W004-3.5.html").read_text().split("<h2>Rubric</h2>", 1)[0]
    assert "Putting everything together" in formula and formula.count("<math") > 3


def _template_cells() -> list[dict]:
    return json.loads(TEMPLATE.read_text())["cells"]


def test_a_deleted_answer_cell_does_not_pass_off_the_next_prompt_as_the_answer(tmp_path):
    cells = _template_cells()
    deleted = [c for c in cells if "answer:W004-1.1" not in c["metadata"].get("tags", [])]
    untagged = copy.deepcopy(cells)
    for c in untagged:
        if "answer:W004-1.1" in c["metadata"].get("tags", []):
            c["metadata"] = {}
            c["source"] = "Scenario 1 is C because both densities can be evaluated."
    subs = tmp_path / "subs"
    subs.mkdir()
    _write(subs / "deleted.ipynb", deleted)
    _write(subs / "untagged.ipynb", untagged)
    review = write_review(subs, tmp_path / "out").sheets
    _, key = read_key(tmp_path / "out")
    page = (review / "W004-1.1.html").read_text()
    by_code = {student: page.split(f'id="{code}"')[1].split("</section>")[0] for code, student in key.items()}
    assert "the answer cell was deleted" in by_code["deleted"] and "A.2 The three estimators" not in by_code["deleted"]
    assert "Scenario 1 is C" in by_code["untagged"] and "found by its heading" in by_code["untagged"]


def test_the_readme_states_the_rule_for_finding_answers():
    section = re.split(r"\n#{2,3} ", (ROOT / "README.md").read_text().split("### Written answers", 1)[1])[0]
    for phrase in ("answer:<id>", "**Answer <id>**", "No answer", "Empty answer", "assignment's own text"):
        assert phrase in section, phrase


def test_a_new_code_never_collides_with_a_given_one():
    salt = "abc"
    taken = {"old": student_code(salt, "new")}  # "old" already holds the code "new" would get
    codes = assign_codes(salt, ["old", "new"], taken)
    assert codes["old"] == taken["old"] and codes["new"] != taken["old"]
    assert codes["new"].startswith(taken["old"]) and len(codes["new"]) == len(taken["old"]) + 1


def test_codes_survive_a_new_student_and_a_withdrawn_one(tmp_path):
    ann, ben, cy = "zz-ann-zz", "zz-ben-zz", "zz-cy-zz"
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in (ann, ben):
        _write(subs / f"{name}.ipynb", answer_cells({"W004-2": "text"}))
    review = write_review(subs, tmp_path / "out").sheets
    first = read_key(tmp_path / "out")
    (subs / f"{ben}.ipynb").unlink()
    _write(subs / f"{cy}.ipynb", answer_cells({"W004-2": "text"}))
    write_review(subs, tmp_path / "out")
    salt, key = read_key(tmp_path / "out")
    assert salt == first[0] and set(first[1].items()) <= set(key.items()) and cy in key.values()
    page = (review / "W004-2.html").read_text()
    code = {s: c for c, s in key.items()}
    assert code[cy] in page and code[ann] in page and code[ben] not in page
    assert "zz-" not in page  # anonymous: no student id on the sheet


def test_a_foreign_key_file_is_refused(tmp_path):
    (tmp_path / "review-key").mkdir()
    (tmp_path / "review-key" / "key.csv").write_text("student,code\nann,S-1\n")
    with pytest.raises(ValueError, match="not a key written by"):
        read_key(tmp_path)
