"""The sandbox's working folders: removed by the next sandbox once their grader was killed, never before."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.sandbox.process import Sandbox
from autograder.sandbox.workdir import LOCK, PREFIX, WorkDir, sweep

REPO = Path(__file__).resolve().parents[2]

OWNER = """
import sys, time
from autograder.sandbox.workdir import WorkDir
print(WorkDir(sys.argv[1]).name, flush=True)
time.sleep(60)
"""


def _killed_owner(root: Path) -> Path:
    """A working folder whose process was killed with SIGKILL (no clean-up ran)."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(root)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert owner.stdout is not None
    folder = Path(owner.stdout.readline().strip())
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    assert (folder / LOCK).is_file()
    return folder


def test_a_live_owners_folder_is_kept_and_its_cleanup_removes_it(tmp_path):
    folder = WorkDir(str(tmp_path))
    assert Path(folder.name).name.startswith(PREFIX)
    assert sweep(str(tmp_path)) == [] and Path(folder.name).is_dir()
    folder.cleanup()
    assert not Path(folder.name).exists()


def test_a_killed_owners_folder_is_swept(tmp_path):
    folder = _killed_owner(tmp_path)
    (folder / "dgm_runtime").mkdir()
    (folder / "dgm_runtime" / "x.py").write_text("")
    assert sweep(str(tmp_path)) == [str(folder)]
    assert not folder.exists()


def test_what_is_not_an_abandoned_working_folder_is_left(tmp_path):
    unlocked = tmp_path / f"{PREFIX}being-made"  # no lock file yet, or an older version's folder
    unlocked.mkdir()
    other = tmp_path / "someone-else"
    other.mkdir()
    (other / LOCK).write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = _killed_owner(elsewhere)  # abandoned, but reached only through a link
    link = tmp_path / f"{PREFIX}link"
    link.symlink_to(target)
    plain = tmp_path / f"{PREFIX}file"
    plain.write_text("")
    assert sweep(str(tmp_path)) == []
    assert unlocked.is_dir() and other.is_dir() and target.is_dir() and link.is_symlink() and plain.is_file()


def test_a_sandbox_start_sweeps_what_a_killed_grader_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    left = _killed_owner(tmp_path)
    with Sandbox() as sandbox:
        sandbox.spawn().close()
        assert not left.exists()
        own = [p for p in tmp_path.iterdir() if p.name.startswith(PREFIX)]
        assert len(own) == 1 and (own[0] / LOCK).is_file()
    assert not own[0].exists()
