"""`grade` writes only into OUT and the documented cache folder, never into the folder it is started from."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"


@pytest.mark.slow  # grades a notebook in a subprocess
def test_grade_leaves_the_current_folder_untouched(tmp_path):
    subs, out, cwd, cache = (tmp_path / n for n in ("subs", "out", "cwd", "cache"))
    for folder in (subs, cwd):
        folder.mkdir()
    shutil.copy(EXAMPLES / "transposed_cholesky.ipynb", subs / "ada.ipynb")
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env["DGM_AUTOGRADER_CACHE"] = str(cache)
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(cwd.iterdir()) == []  # hypothesis's .hypothesis/ used to appear here
    assert (out / "gradebook.csv").is_file()
    assert sorted(p.name for p in subs.iterdir()) == ["ada.ipynb"]
    assert (cache / "hypothesis").is_dir()  # its files went to the cache folder instead
