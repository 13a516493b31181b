"""An interrupted ``python -m autograder grade`` resumes: nothing graded twice, the same gradebook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile.corpus import REPO, SOLUTION, partial

pytestmark = pytest.mark.skipif(not SOLUTION.is_file(), reason="the solution notebook is not built yet (make notebooks)")

STUDENTS = {  # six small honest students, a few seconds each
    "s1": {"KL_SCENARIOS"},
    "s2": {"covariance_from_scale_tril"},
    "s3": {"vq_losses"},
    "s4": {"scale_tril_from_raw", "KL_SCENARIOS"},
    "s5": {"rsample_full_gaussian"},
    "s6": {"expected_log_gaussian"},
}


def _command(subs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--json"]


def _grade(subs: Path, out: Path) -> dict[str, dict]:
    done = subprocess.run(_command(subs, out), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return {s["student"]: s for s in json.loads(done.stdout)["students"]}


def _results(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*/results.json")}


@pytest.mark.slow  # kills and restarts a class run; the quick resume test is in tests/reports/test_cli_grade.py
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for student, names in STUDENTS.items():
        (subs / f"{student}.ipynb").write_bytes(partial(names))
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(subs, out), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uninterrupted = subprocess.Popen(_command(subs, tmp_path / "reference"), cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*/results.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a Ctrl-C that does not wait
        proc.wait()
    reference = {s["student"]: s for s in json.loads(uninterrupted.communicate(timeout=600)[0])["students"]}
    assert uninterrupted.returncode == 0
    before = _results(out)
    assert 1 <= len(before) < len(STUDENTS), sorted(before)
    assert not (out / "gradebook.csv").exists()

    resumed = _grade(subs, out)
    assert {s for s, r in resumed.items() if r["resumed"]} == set(before)
    after = _results(out)
    assert {s: after[s] for s in before} == before  # same bytes, not even rewritten
    assert (out / "gradebook.csv").read_bytes() == (tmp_path / "reference" / "gradebook.csv").read_bytes()
    assert {s: r[0] for s, r in after.items()} == {s: r[0] for s, r in _results(tmp_path / "reference").items()}
    assert {s: r["scores"] for s, r in resumed.items()} == {s: r["scores"] for s, r in reference.items()}

    (subs / "s6.ipynb").write_bytes(partial({"expected_log_gaussian", "KL_SCENARIOS"}))
    again = _grade(subs, out)
    assert {s for s, r in again.items() if not r["resumed"]} == {"s6"}
    assert again["s6"]["scores"]["A1"] == 6 and reference["s6"]["scores"]["A1"] == 0
    assert _results(out)["s6"][0] != after["s6"][0]
    assert {s: r for s, r in _results(out).items() if s != "s6"} == {s: r for s, r in after.items() if s != "s6"}
