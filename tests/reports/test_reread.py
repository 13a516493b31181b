"""Reading OUT back is total: every file that is not what the grader wrote reads as None."""

import os

import pytest
from hypothesis import given, strategies as st

from autograder.reports import reread

NOT_OURS = [
    b"",
    b"{ not json",
    b"\xff\xfe{}",  # not UTF-8
    b"[" * 100_000,  # nested too deep
    b'{"x": ' + b"1" * 5000 + b"}",  # more digits than int() takes
    b'{"x": NaN}',
    b'{"x": -Infinity}',
]


@pytest.mark.parametrize("data", NOT_OURS)
def test_what_the_grader_never_writes_reads_as_none(tmp_path, data):
    path = tmp_path / "results.json"
    path.write_bytes(data)
    assert reread.read_json(path) is None


def test_links_folders_missing_and_oversized_files_read_as_none(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2.5, "é"]}', encoding="utf-8")
    assert reread.read_json(good) == {"a": [1, 2.5, "é"]}
    link = tmp_path / "link.json"
    os.symlink(good, link)
    assert reread.read_json(link) is None
    assert reread.read_json(tmp_path) is None
    assert reread.read_json(tmp_path / "missing.json") is None
    assert reread.read_json(good, max_bytes=5) is None
    assert reread.read_text(good, max_bytes=good.stat().st_size) is not None


@given(st.text(max_size=200))
def test_parse_json_is_total(text):
    reread.parse_json(text)  # never raises


def test_a_deep_run_record_in_the_old_report_is_no_run_record(tmp_path):
    from autograder.reports.class_report import _previous

    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    (tmp_path / "report.html").write_text(f"<!-- run {deep} -->", encoding="utf-8")
    assert _previous(tmp_path)[0] is None
