"""Fixtures of the student-bundle tests: the bundle, and an interpreter that cannot see this repository.

``clean_python`` is a fresh venv made without pip whose only way to torch and
the other dependencies is a ``.pth`` line naming the site-packages folders of
the interpreter running the tests. Python appends a ``.pth`` line to
``sys.path`` and does not process the ``.pth`` files inside that folder, so
the editable install's finder (which maps ``reference`` and ``autograder`` to
this repository) is never installed there. ``test_the_clean_interpreter_cannot_see_the_repo``
proves it: from a neutral folder that interpreter finds neither package.
Processes it starts (the sandbox's student process) run the same interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from autograder.verify import student_dist
from tests.dist.helpers import clean_environ


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With pytest-xdist, the bundle tests share one process, so the session's bundle is built once."""
    for item in items:
        if "tests/dist/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("dist"))


@pytest.fixture(scope="session")
def dist():
    """``student_template/dist.py``, the very module ``autograder verify`` uses."""
    return student_dist()


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, dist) -> Path:
    """A freshly built bundle folder (``student.zip`` beside it). Tests must not write into it."""
    out = tmp_path_factory.mktemp("dist") / "student"
    dist.build(out)
    return out


@pytest.fixture
def bundle_copy(bundle, tmp_path) -> Path:
    """A copy of the bundle (and its zip) that a test may tamper with."""
    copy = tmp_path / "student"
    shutil.copytree(bundle, copy)
    shutil.copy(bundle.parent / "student.zip", tmp_path / "student.zip")
    return copy


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("clean") / "venv"
    venv.create(env_dir, with_pip=False, symlinks=os.name != "nt")
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=clean_environ()).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    return python
