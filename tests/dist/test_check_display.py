"""What ``check()`` gives back in a kernel: a result that is true when all passed, an HTML table, plain text.

Made-up results (no student process): the HTML must render in a browser and
hold no element a student controls; the text must fit 80 columns. The runs of
``check()`` inside the bundle and a real kernel are test_bundle_runs.py's.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from autograder.checks import CheckResult
from autograder.checks.framework import FailureRecord, Status
from autograder.escape import printable
from autograder.local import NOT_CONTRACT, NOT_DEFINED, WIDTH, PublicChecks, check
from tests.html_page import parse_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"></td></tr></table>&amp;\x1b[31m\u202e'
#: The elements and attributes the report itself writes; anything else came from a student's text.
OWN_TAGS = {"div", "table", "caption", "thead", "tbody", "tr", "th", "td", "span", "code", "b", "i", "br"}
OWN_ATTRS = {"style", "class"}


def _report() -> PublicChecks:
    failure = FailureRecord(f"wrong {HOSTILE}", call=f"gmvae_elbo(x={HOSTILE})", shrunk=True, expected=f"e {HOSTILE}",
                            got=f"g {HOSTILE} " + "tensor([1., 2., 3.]) " * 20, hint=f"h {HOSTILE}", kind="value")
    return PublicChecks(("B2", "C4", "D1"), (
        CheckResult("B2", "Σ = L Lᵀ", "public", 1.0, 1.0, Status.PASSED),
        CheckResult("C4", f"values {HOSTILE}", "public", 0.0, 1.0, Status.FAILED, failure),
        CheckResult("C4", "one sample", "public", 1.0, 1.0, Status.PASSED),
        CheckResult("D1", "ties", "public", 0.0, 1.0, Status.SKIPPED,
                    FailureRecord(NOT_DEFINED.format(name="quantize"), kind="value")),
    ))


def test_the_html_table_holds_no_student_controlled_element():
    page = parse_html(_report()._repr_html_())
    assert page.tag_names <= OWN_TAGS and page.attr_names <= OWN_ATTRS, (page.tag_names, page.attr_names)
    text = "".join(page.text)
    assert printable(HOSTILE) in text  # the student's text shows, as text
    for shown in ("gmvae_elbo(x=<script>", "e <script>", "g <script>", "hint: h <script>", "quantize is not defined"):
        assert shown in text, shown
    for row in ("B2covariance_from_scale_tril1/1passed", "C4gmvae_elbo1/2failed", "D1quantize0/1failed"):
        assert row in text, row  # question, function, public checks passed, result


def test_the_plain_text_keeps_the_old_lines_and_fits_a_terminal():
    report = _report()
    text = str(report)
    assert repr(report) == text
    assert text.startswith("ok   B2 covariance_from_scale_tril: 1/1 public checks passed\n"
                           "FAIL C4 gmvae_elbo: 1/2 public checks passed\n"
                           "FAIL D1 quantize: 0/1 public checks passed\n")
    assert "quantize is not defined — run its cell" in text and "\x1b" not in text and "\u202e" not in text
    assert max(map(len, text.splitlines())) <= WIDTH
    assert "  call     : gmvae_elbo(x=<script>" in text  # wrapped lines continue under the value
    assert re.search(r"\n {13}\S", text)
    markdown = report._repr_markdown_()
    assert markdown.startswith("```") and text in markdown


def test_the_result_is_true_only_when_every_public_check_passed():
    report = _report()
    assert not report
    passed = PublicChecks(("B2",), report.results[:1])
    assert passed and bool(passed) is True
    assert not PublicChecks(("B2",), ())  # nothing run is not a pass
    assert report.question("C4")[:2] == (1, 2) and report.question("C4")[2].check.startswith("values")


def test_a_function_whose_cell_did_not_run_is_not_defined(capsys):
    report = check("c4", "A1", namespace={"__name__": "__main__", "KL_SCENARIOS": lambda: None})
    out = capsys.readouterr().out
    assert not report and out.strip() == str(report)  # printed outside a notebook
    assert "gmvae_elbo is not defined — run its cell" in out and "KeyError" not in out
    assert NOT_CONTRACT.format(name="KL_SCENARIOS", kind="function") in out
    assert all(r.status == "skipped" for r in report.results)


def test_in_ipython_it_shows_once_per_cell(capsys):
    """Shown by ``check`` itself (so ``assert check(…)`` shows it too), not again as the cell's value."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.user_ns["check"] = check
        counts = []
        for cell in ('r = check("C4", namespace={})', 'check("C4", namespace={})', "r"):
            shell.run_cell(cell, store_history=True)
            counts.append(capsys.readouterr().out.count("gmvae_elbo is not defined"))
    finally:
        InteractiveShell.clear_instance()
    assert counts == [1, 1, 1]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_the_html_table_renders_in_a_browser(tmp_path):
    shots = {}
    for name, body in (("report", _report()._repr_html_()), ("blank", "")):
        page = tmp_path / f"{name}.html"
        page.write_text(f'<!doctype html><meta charset="utf-8"><body>{body}</body>', encoding="utf-8")
        shots[name] = tmp_path / f"{name}.png"
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shots[name]}",
                        "--window-size=1000,700", page.as_uri()], capture_output=True, timeout=120, check=True)
    report, blank = (shots[n].read_bytes() for n in ("report", "blank"))
    assert report.startswith(b"\x89PNG") and len(report) > 4 * len(blank)  # a table drawn, not a blank page
