"""`python -m autograder verify` and `make student-dist` (dist.py's main): exit code 1 on any broken condition.

The two slow steps of verify (rebuilding the notebooks, grading the solution
and the template in the sandbox) are replaced by stubs where a test is about
another step; the whole command runs in the slow test at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import autograder.verify as verify_mod
import reference.gaussian
from autograder.cli import main
from autograder.contract import MAX_TOTAL
from tests.dist.helpers import ROOT


def _steps(*keep: str):
    """verify's steps with every step not named in ``keep`` (by function name) replaced by a clean stub."""
    return tuple((name, step if step.__name__ in keep else (lambda: [])) for name, step in verify_mod.STEPS)


def _solution_line(dist) -> str:
    """A ``return`` line of the reference's B code: the kind of line a leak is made of."""
    code = dist.solution_lines(published=True)
    return next(s.strip() for s in Path(reference.gaussian.__file__).read_text().splitlines()
                if s.strip().startswith("return") and s.strip() in code)


@pytest.fixture
def prebuilt(monkeypatch, dist, bundle):
    """``dist.build`` copies the session's bundle (and zip) instead of building; ``tamper(folder)`` runs after."""
    calls = []

    def use(tamper=lambda folder: None):
        def build(out: Path) -> Path:
            shutil.copytree(bundle, out)
            archive = Path(shutil.copy(bundle.parent / "student.zip", out.parent / f"{out.name}.zip"))
            tamper(out)
            calls.append(out)
            return archive

        monkeypatch.setattr(dist, "build", build)
        return calls

    return use


def test_verify_exits_0_on_a_clean_bundle(monkeypatch, prebuilt, capsys):
    calls = prebuilt()
    monkeypatch.setattr(verify_mod, "STEPS", _steps("_bundle_is_clean"))
    assert main(["verify"]) == 0, capsys.readouterr().out
    assert len(calls) == 1
    assert "ok   student bundle holds no solution" in capsys.readouterr().out


def test_verify_exits_1_on_a_tampered_bundle(monkeypatch, prebuilt, dist, capsys):
    line = _solution_line(dist)

    def tamper(folder: Path) -> None:
        local = folder / "autograder" / "local.py"
        local.write_text(local.read_text() + f"\n\ndef _peek(L):\n    {line}\n")

    prebuilt(tamper)
    monkeypatch.setattr(verify_mod, "STEPS", _steps("_bundle_is_clean"))
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "FAIL student bundle holds no solution" in out
    assert f"leak: autograder/local.py: a line of the reference solution: {line[:80]}" in out


def test_verify_exits_1_when_the_audit_reports_a_leak(monkeypatch, prebuilt, dist, capsys):
    prebuilt()
    monkeypatch.setattr(dist, "audit", lambda bundle: ["README.md: planted"])
    monkeypatch.setattr(verify_mod, "STEPS", _steps("_bundle_is_clean"))
    assert main(["verify"]) == 1
    assert "leak: README.md: planted" in capsys.readouterr().out


def test_verify_exits_1_when_the_bundle_fails_its_own_check(monkeypatch, prebuilt, capsys):
    """A tape that no longer matches the checks (here: one record emptied) fails the bundle's `check` on the solution."""
    def tamper(folder: Path) -> None:
        import json

        path = folder / "autograder" / "checks" / "public_tape.json"
        tape = json.loads(path.read_text())
        key = next(k for k, r in tape.items() if k.startswith("B2/") and any(r["values"]))
        tape[key]["values"] = [[] for _ in tape[key]["values"]]
        path.write_text(json.dumps(tape))
        (folder.parent / f"{folder.name}.zip").unlink()  # no zip: the audit compares the folder alone

    prebuilt(tamper)
    monkeypatch.setattr(verify_mod, "STEPS", _steps("_bundle_is_clean"))
    assert main(["verify"]) == 1
    assert "`python -m autograder check` exits" in capsys.readouterr().out


@pytest.mark.parametrize(("solution", "template", "message"), [
    (MAX_TOTAL - 1, 0, f"the solution scores {MAX_TOTAL - 1:g}, not {MAX_TOTAL}"),
    (MAX_TOTAL, 3, "the blank template scores 3, not 0"),
])
def test_verify_exits_1_when_a_score_is_off(monkeypatch, capsys, solution, template, message):
    totals = iter([solution, template])
    monkeypatch.setattr(verify_mod, "grade_notebook", lambda data, sandbox: SimpleNamespace(total=next(totals), checks=()))
    monkeypatch.setattr(verify_mod, "STEPS", _steps("_scores"))
    assert main(["verify"]) == 1
    assert message in capsys.readouterr().out


def test_verify_exits_1_when_a_step_breaks(monkeypatch, capsys):
    def broken() -> list[str]:
        raise RuntimeError("the sandbox did not start")

    monkeypatch.setattr(verify_mod, "STEPS", (("a broken step", broken),) + _steps())
    assert main(["verify"]) == 1
    assert "RuntimeError: the sandbox did not start" in capsys.readouterr().out


def test_make_student_dist_writes_the_folder_and_the_zip_and_exits_0(dist, tmp_path, capsys):
    out = tmp_path / "dist" / "student"
    assert dist.main(["--out", str(out)]) == 0, capsys.readouterr().out
    assert (out / "assignment.ipynb").is_file() and (tmp_path / "dist" / "student.zip").is_file()
    assert dist.audit(out) == []


def test_make_student_dist_exits_1_on_a_leak(dist, prebuilt, monkeypatch, tmp_path, capsys):
    def plant(folder: Path) -> None:
        (folder / "reference").mkdir()
        (folder / "reference" / "gaussian.py").write_text(Path(reference.gaussian.__file__).read_text())

    prebuilt(plant)
    assert dist.main(["--out", str(tmp_path / "student")]) == 1
    out = capsys.readouterr().out
    assert "leak: reference/ is in the bundle" in out
    assert "leak: reference/gaussian.py: a line of the reference solution" in out


@pytest.mark.slow
def test_verify_passes_on_this_repository():
    done = subprocess.run([sys.executable, "-m", "autograder", "verify"], capture_output=True, text=True, cwd=ROOT,
                          timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok  ") == len(verify_mod.STEPS)
