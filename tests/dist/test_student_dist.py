"""The student bundle: public checks run without the reference; nothing hidden leaks."""

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from autograder.checks import QUESTIONS
from autograder.checks.framework import PUBLIC

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "student_template"))
import dist  # noqa: E402

EXAMPLES = ROOT / "examples" / "submissions"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "student"
    dist.build(out)
    return out


def _bundle_python(bundle: Path, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The bundle's code in a clean interpreter: no site hooks, so no editable ``reference`` either."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle), sysconfig.get_paths()["purelib"]])}
    return subprocess.run([sys.executable, "-S", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd or bundle, timeout=900)


def test_the_bundle_holds_the_template_engine_and_no_solution(bundle):
    assert (bundle / "assignment.ipynb").read_bytes() == (ROOT / "student_template" / "assignment.ipynb").read_bytes()
    assert dist.audit(bundle) == []
    assert (bundle.parent / "student.zip").is_file()


def test_the_audit_catches_a_leak(bundle, tmp_path):
    import shutil

    import reference.vq

    leaky = tmp_path / "leaky"
    shutil.copytree(bundle, leaky)
    shutil.copy(reference.vq.__file__, leaky / "autograder" / "vq_solution.py")
    hidden = next(c for checks in QUESTIONS.values() for c in checks if c.visibility != PUBLIC)
    (leaky / "notes.txt").write_text(f"remember: {hidden.name}")
    problems = dist.audit(leaky)
    assert any("vq_solution.py: a line of the reference solution" in p for p in problems)
    assert any(f"names the hidden check {hidden.qid}" in p for p in problems)


def test_only_public_checks_ship(bundle):
    tape = json.loads((bundle / "autograder" / "checks" / "public_tape.json").read_text())
    public = {f"{c.qid}/{c.name}" for checks in QUESTIONS.values() for c in checks if c.visibility == PUBLIC}
    assert set(tape) == public
    listed = _bundle_python(bundle, "-c", "from autograder.checks import QUESTIONS; "
                            "print(sum(len(v) for v in QUESTIONS.values()), all(c.visibility == 'public' "
                            "for v in QUESTIONS.values() for c in v))")
    assert listed.stdout.split() == [str(len(public)), "True"], listed.stderr


def test_public_checks_pass_on_the_solution_and_fail_on_the_template(bundle):
    ok = _bundle_python(bundle, "-m", "autograder", "check", str(EXAMPLES / "solution.ipynb"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Public checks passed" in ok.stdout
    blank = _bundle_python(bundle, "-m", "autograder", "check", "assignment.ipynb", "-q", "D1")
    assert blank.returncode == 1 and "NotImplementedError" in blank.stdout


def test_a_flawed_notebook_gets_its_public_failure_in_the_bundle(bundle):
    run = _bundle_python(bundle, "-m", "autograder", "check", str(EXAMPLES / "transposed_cholesky.ipynb"), "-q", "B2")
    assert run.returncode == 1 and "B2 covariance_from_scale_tril" in run.stdout and "hint" in run.stdout


def test_check_in_a_live_namespace(bundle):
    code = (
        "import json, torch, torch.nn.functional as F\n"
        "from autograder.notebook import read_notebook\n"
        f"nb = read_notebook(open({str(EXAMPLES / 'solution.ipynb')!r}, 'rb').read())\n"
        "ns = {'__name__': '__main__'}\n"
        "for c in nb.code_cells: exec(c.source, ns)\n"
        "from autograder.local import check\n"
        "print('RESULT', check('B2', 'D1', namespace=ns))\n"
    )
    run = _bundle_python(bundle, "-c", code)
    assert "RESULT True" in run.stdout, run.stdout + run.stderr


@pytest.mark.slow
def test_the_bundle_installs_and_runs_in_a_fresh_venv(bundle, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True, timeout=900)
    subprocess.run([py, "-m", "pip", "install", "-q", str(bundle)], check=True, timeout=900)
    probe = subprocess.run([py, "-c", "import reference, inspect; print(inspect.getsource(reference))"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert "Recorded reference values" in probe.stdout
    run = subprocess.run([py, "-m", "autograder", "check", str(EXAMPLES / "solution.ipynb")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
