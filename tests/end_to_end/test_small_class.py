"""A small real class graded twice, at -j 1 and -j 2: byte-identical results, and the class report a TA reads."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.runner import grade_class

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
STUDENTS = ("solution", "argmax_sampler", "log_sigmoid")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.images: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    subs = tmp_path_factory.mktemp("subs")
    for student in STUDENTS:
        shutil.copy(EXAMPLES / f"{student}.ipynb", subs / f"{student}.ipynb")
    (subs / "broken.ipynb").write_text("{ not json")
    outs = tmp_path_factory.mktemp("serial"), tmp_path_factory.mktemp("parallel")
    grade_class(subs, outs[0], jobs=1)
    grade_class(subs, outs[1], jobs=2)
    return outs


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name in ("results.json", "feedback.md", "gradebook.csv", "report.html", "similarity.csv")}


def test_one_and_two_workers_write_byte_identical_results(runs):
    serial, parallel = runs
    assert _files(serial) == _files(parallel)
    assert len(_files(serial)) == 2 * (len(STUDENTS) + 1) + 3  # and the gradebook, report and similarity


def test_the_class_report_shows_distributions_failures_and_statuses(runs):
    page = (runs[0] / "report.html").read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(page)
    text = " ".join(parsed.text)
    assert parsed.images and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert "Checks that failed most often" in text and "Similar code" in text and "timing.csv" in text
    assert "E1" in text and "C4" in text  # the two flawed students' questions appear among the failures
    assert "notebook does not parse (not valid JSON)" in text
    assert "http://" not in page and "https://" not in page  # self-contained: opens offline


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_the_class_report_renders_in_a_browser(runs, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,2400", (runs[0] / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a rendered page, not a blank one
