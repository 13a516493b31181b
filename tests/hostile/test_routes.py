"""Every route hides the answers: a probe notebook (``routes.py``) graded as each install route grades.

Routes: the working tree (the editable install ``make grade`` uses), a copy
of the tree under ``/tmp`` with its own venv there, and a Gradescope-shaped
root after a ``setup.sh``-like install of the package from the zip into a
venv's site-packages, graded by ``job`` from the source folder as
``run_autograder`` does. The student bundle's ``check`` is in
tests/dist/test_check_hides_the_grader.py. In each, no grader file may be
readable and no host folder listable. The default run probes the sandbox of
the working tree and of the site-packages install directly (seconds); the
full ``grade`` and ``job`` runs are slow.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.notebook import read_notebook
from autograder.sandbox.isolation import detect
from autograder.sandbox.process import Limits, Sandbox
from autograder.sandbox.session import StudentSession
from tests.hostile import routes
from tests.hostile.corpus import REPO

pytestmark = pytest.mark.skipif(detect().level != "namespaces", reason="the fallback (no bubblewrap) cannot hide files")
GRADESCOPE = REPO / "examples" / "gradescope"


@dataclass(frozen=True)
class Gradescope:
    """A Gradescope-shaped root: ``source`` (the unpacked zip), ``venv`` with the package in ``site``."""

    root: Path
    python: str
    site: Path

    @property
    def source(self) -> Path:
        return self.root / "source"

    def targets(self, *extra: str) -> list[str]:
        places = routes.grader_places(self.python, self.source, routes.CLEAN_ENV)
        return [*places, *routes.copies(self.site), *routes.package_files(self.site),
                *routes.package_files(self.source), *extra]


def _make_zip():
    spec = importlib.util.spec_from_file_location("make_zip", GRADESCOPE / "make_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _venv(where: Path, packages_of: str) -> str:
    """A venv without pip at ``where`` whose packages (torch included) come from ``packages_of``'s site folders."""
    venv.create(where, with_pip=False, symlinks=True)
    python = str(where / "bin" / "python")
    Path(routes.site_dirs(python)[0], "_reuse_packages.pth").write_text(routes.reuse_packages(packages_of))
    return python


@pytest.fixture(scope="module")
def gradescope(tmp_path_factory) -> Gradescope:
    """The zip unpacked in ``<root>/source`` and pip-installed (not editable) into ``<root>/venv``'s site-packages."""
    root = tmp_path_factory.mktemp("gradescope") / "autograder"
    with zipfile.ZipFile(_make_zip().build(root.parent / "autograder.zip")) as archive:
        archive.extractall(root / "source")
    python = _venv(root / "venv", routes.THIS_PYTHON)
    site = Path(routes.site_dirs(python)[0])
    subprocess.run([routes.THIS_PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(root / "source")], check=True, timeout=600,
                   env=routes.CLEAN_ENV, capture_output=True)
    assert (site / "reference" / "gaussian.py").is_file() and list(site.glob("dgm_autograder-*.dist-info"))
    return Gradescope(root, python, site)


def _submit(folder: Path, targets: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probe.ipynb").write_bytes(routes.notebook(targets))
    return folder


def _grade(python: str, cwd: Path, submissions: Path, out: Path) -> str:
    done = subprocess.run([python, "-m", "autograder", "grade", str(submissions), "--out", str(out), "-j", "1"],
                          cwd=cwd, env=routes.CLEAN_ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return routes.outputs(out)


def _working_tree_targets(tmp_path: Path, *extra: str) -> list[str]:
    python = routes.THIS_PYTHON
    site_copies = [c for s in routes.site_dirs(python) for c in routes.copies(Path(s))]
    assert any("__editable__" in c for c in site_copies)  # the editable finder that names this tree is probed
    return [*routes.grader_places(python, REPO, routes.CLEAN_ENV), *site_copies, *routes.package_files(REPO),
            str(REPO / "examples" / "submissions"), str(REPO / "pyproject.toml"), routes.sentinel(tmp_path), *extra]


def test_the_sandbox_of_the_working_tree_hides_the_grader_and_the_host(tmp_path):
    cells = read_notebook(routes.notebook(_working_tree_targets(tmp_path))).code_cells
    with Sandbox(Limits(cell_seconds=60)) as sandbox, StudentSession(sandbox, cells) as session:
        assert routes.verdict(session.runs[0].output) == routes.CLEAN


def test_the_sandbox_of_a_site_packages_install_hides_the_installed_copy(gradescope, tmp_path):
    """The leak of the Gradescope route: the package in the venv's site-packages, the grader run from the
    source folder, so the grader's own modules load from there and not from the copy."""
    probe = _submit(tmp_path / "submission", gradescope.targets(routes.sentinel(tmp_path))) / "probe.ipynb"
    done = subprocess.run([gradescope.python, "-c", routes.SANDBOX_ONLY, str(probe)], cwd=gradescope.source,
                          env=routes.CLEAN_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert routes.verdict(done.stdout) == routes.CLEAN


@pytest.mark.slow
def test_job_after_a_setup_sh_install_hides_the_grader_and_the_host(gradescope, tmp_path):
    run_autograder = (GRADESCOPE / "run_autograder").read_text()
    assert "cd /autograder/source" in run_autograder and "-m autograder job /autograder/submission" in run_autograder
    submission, results = tmp_path / "submission", tmp_path / "results"
    _submit(submission, gradescope.targets(str(submission / "probe.ipynb"), str(results), routes.sentinel(tmp_path)))
    done = subprocess.run([gradescope.python, "-m", "autograder", "job", str(submission), "--out", str(results)],
                          cwd=gradescope.source, env=routes.CLEAN_ENV, capture_output=True, text=True, timeout=900)
    assert (results / "results.json").is_file(), done.stdout + done.stderr
    assert routes.verdict(routes.outputs(results)) == routes.CLEAN


@pytest.mark.slow
def test_grade_from_the_working_tree_hides_the_grader_and_the_host(tmp_path):
    subs, out = tmp_path / "submissions", tmp_path / "out"
    targets = _working_tree_targets(tmp_path, str(subs / "probe.ipynb"), str(out))
    assert routes.verdict(_grade(routes.THIS_PYTHON, REPO, _submit(subs, targets), out)) == routes.CLEAN


@pytest.mark.slow
def test_grade_from_a_copy_under_tmp_with_its_own_venv_hides_the_grader_and_the_host(tmp_path):
    """The tree copied under ``/tmp`` (tracked and new files, as a clone of it would be), a venv inside it."""
    clone = tmp_path / "clone"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    python = _venv(clone / ".venv", routes.THIS_PYTHON)
    subs, out = clone / "examples" / "probe-class", clone / "grades"
    places = routes.grader_places(python, clone, routes.CLEAN_ENV)
    assert all(Path(p).is_relative_to(clone) for p in places), places
    targets = [*places, *routes.package_files(clone), *routes.package_files(REPO), str(clone / "examples"),
               str(clone / "Makefile"), str(subs / "probe.ipynb"), str(out), routes.sentinel(tmp_path)]
    assert routes.verdict(_grade(python, clone, _submit(subs, targets), out)) == routes.CLEAN


def test_setup_sh_installs_the_makefiles_cpu_torch_from_the_cpu_index():
    pin = re.search(r"torch==[\w.+]+", (REPO / "Makefile").read_text()).group()
    setup = (GRADESCOPE / "setup.sh").read_text()
    assert f"pip install --quiet {pin} --index-url https://download.pytorch.org/whl/cpu" in setup


def test_the_probe_reports_what_an_open_view_would_leak(tmp_path, monkeypatch):
    """The negative control: with the tree and a host folder under ``/tmp`` bound into the view, the probe says so."""
    from autograder.sandbox import isolation

    view = isolation._python_view()
    host = Path(tempfile.mkdtemp(prefix="routes-open-view-"))
    host.chmod(0o755)
    monkeypatch.setattr(isolation, "_python_view", lambda: (*view, "--ro-bind", str(host), str(host),
                                                            "--ro-bind", str(REPO), str(REPO)))
    cells = read_notebook(routes.notebook(_working_tree_targets(tmp_path))).code_cells
    try:
        with Sandbox(Limits(cell_seconds=60)) as sandbox, StudentSession(sandbox, cells) as session:
            found = routes.verdict(session.runs[0].output)
    finally:
        host.rmdir()
    assert f"read {REPO}/reference/gaussian.py" in found and "import reference" in found, found
    assert f"listed {host}" in found and f"listed {REPO}/tests" in found, found
