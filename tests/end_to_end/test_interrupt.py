"""Ctrl-C during `grade`: stop, kill the student processes, keep what is written, say how to resume, exit 130."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"


def _start(subs: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _runtimes() -> list[int]:
    """Pids of student-side processes (the sandbox runtime) still alive on this machine."""
    done = subprocess.run(["pgrep", "-f", "-m", "50", "dgm_runtime"], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def test_an_interrupt_during_start_up_exits_130_without_a_traceback(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / "solution.ipynb", subs / "ada.ipynb")
    proc = _start(subs, tmp_path / "out")
    time.sleep(1.0)  # torch is still importing, or the sandbox starting
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


@pytest.mark.slow  # grades a class twice; and it counts student processes machine-wide, so it runs alone
def test_an_interrupt_mid_run_keeps_what_is_done_and_a_rerun_resumes(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, example in (("ada", "solution"), ("bob", "log_sigmoid"), ("cy", "solution"), ("dee", "exp_diagonal")):
        shutil.copy(EXAMPLES / f"{example}.ipynb", subs / f"{name}.ipynb")
    out = tmp_path / "out"
    before = set(_runtimes())
    proc = _start(subs, out, "-j", "2")
    deadline = time.monotonic() + 600
    while not list(out.glob("*/results.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr, stderr
    graded = {p.parent.name for p in out.glob("*/results.json")}
    assert graded and f"interrupted: {len(graded)} of 4 submissions are graded" in stdout, stdout
    assert "run the same command again" in stdout
    time.sleep(2)
    assert not set(_runtimes()) - before  # no student process outlived the interrupt
    kept = {name: (out / name / "results.json").read_bytes() for name in graded}
    again = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "-j", "2",
                            "--json"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {n: (out / n / "results.json").read_bytes() for n in graded} == kept  # resumed, not regraded
    assert (out / "gradebook.csv").read_text().count("\n") == 5
