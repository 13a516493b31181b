"""One submission per container: ``python -m autograder job`` and the Gradescope autograder zip."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.contract import MAX_TOTAL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "submissions"
sys.path.insert(0, str(ROOT / "examples" / "gradescope"))
from make_zip import build  # noqa: E402


def _job(submission: Path, out: Path, *, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "job", str(submission), "--out", str(out)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_folder_with_two_notebooks_gets_a_reason_and_zero(tmp_path):
    (tmp_path / "submission").mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        shutil.copy(EXAMPLES / "solution.ipynb", tmp_path / "submission" / name)
    done = _job(tmp_path / "submission", tmp_path / "results")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    assert doc["score"] == 0
    assert "2 notebooks (a.ipynb, b.ipynb) and none is named assignment.ipynb" in doc["output"]


def test_usage_error_for_a_missing_submission(tmp_path):
    assert _job(tmp_path / "nothing.ipynb", tmp_path / "results").returncode == 2


@pytest.mark.slow  # installs the zip into a fresh venv
def test_the_gradescope_zip_installs_and_grades_the_solution_to_full_marks(tmp_path):
    archive = build(tmp_path / "autograder.zip")
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "pyproject.toml", "autograder/__main__.py", "reference/__init__.py"} <= names
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111
        z.extractall(tmp_path / "source")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(tmp_path / "source")], check=True, timeout=600)
    (tmp_path / "submission").mkdir()
    shutil.copy(EXAMPLES / "solution.ipynb", tmp_path / "submission" / "hw.ipynb")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = _job(tmp_path / "submission", tmp_path / "results", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    probe = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.startswith(str(site))  # graded by the installed zip, not by this checkout
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    assert doc["score"] == MAX_TOTAL
