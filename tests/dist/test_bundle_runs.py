"""The student bundle runs on its own: `python -m autograder check` and `check("C4")` with no `reference` package.

Every run here uses ``clean_python`` (conftest.py): an interpreter that cannot
import this repository's ``reference`` or ``autograder``, which the first
test proves. The slow test installs the bundle into a venv made from scratch
with pip, torch from the registry (or its local mirror) included.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.contract import QUESTION_IDS
from tests.dist.helpers import REPO_PACKAGES, ROOT, clean_environ, copy_notebook, probe, run


def _inside(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(folder.resolve())


def test_the_clean_interpreter_cannot_see_the_repo(clean_python, bundle, tmp_path):
    neutral = probe(clean_python, tmp_path)
    assert neutral["found"] == dict.fromkeys(REPO_PACKAGES), neutral["found"]
    assert neutral["holders"] == [], neutral["holders"]
    assert not [p for p in neutral["path"] if Path(p or tmp_path).resolve() == ROOT.resolve()]
    torch_ok = run(clean_python, "-c", "import torch, hypothesis, rich, sympy, numpy; print(torch.__version__)", cwd=tmp_path)
    assert torch_ok.returncode == 0, torch_ok.stderr
    # Out of the bundle folder, the bundle's packages are the ones found, and they alone.
    inside = probe(clean_python, bundle)
    assert _inside(inside["found"]["autograder"], bundle) and inside["found"]["reference"] is None
    assert inside["found"]["examples"] is None and inside["found"]["student_template"] is None
    assert [Path(p).resolve() for p in inside["holders"]] == [bundle.resolve()]
    assert not [p for p in inside["path"] if Path(p or bundle).resolve() == ROOT.resolve()]
    solution = run(clean_python, "-c", "import importlib.util as u; print(u.find_spec('autograder.checks.live'))",
                   cwd=bundle)
    assert solution.stdout.strip() == "None", solution.stdout + solution.stderr


def _check(clean_python, bundle, notebook: Path, *argv: str) -> subprocess.CompletedProcess:
    return run(clean_python, "-m", "autograder", "check", str(notebook), *argv, cwd=bundle)


def _rows(stdout: str) -> dict[str, list[str]]:
    """The per-question table: ``{qid: [function, public checks, result, first failure, input]}``."""
    rows: dict[str, list[str]] = {}
    last = None
    for line in stdout.splitlines():
        if not line.startswith("│"):
            last = None if line.startswith("└") else last
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0] in QUESTION_IDS:
            last = cells[0]
            rows[last] = cells[1:]
        elif last is not None and not cells[0]:  # a cell wrapped onto the next line
            rows[last] = [f"{a} {b}".strip() for a, b in zip(rows[last], cells[1:])]
    return rows


def test_check_passes_the_solution_with_exit_code_0(clean_python, bundle, tmp_path):
    done = _check(clean_python, bundle, copy_notebook("solution", tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(done.stdout)
    assert set(rows) == set(QUESTION_IDS)
    assert {r[2] for r in rows.values()} == {"passed"}
    assert "Public checks passed" in done.stdout


def test_check_fails_a_flawed_notebook_with_exit_code_1_naming_b2_its_reason_and_input(clean_python, bundle, tmp_path):
    done = _check(clean_python, bundle, copy_notebook("transposed_cholesky", tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = _rows(done.stdout)
    assert [q for q, r in rows.items() if r[2] != "passed"] == ["B2"]
    function, count, result, reason, call = rows["B2"]
    passed, total = map(int, count.split("/"))
    assert (function, result) == ("covariance_from_scale_tril", "failed") and passed < total, rows["B2"]
    assert reason.startswith("Σ = L Lᵀ for a hand-checkable") and "differs from the reference" in reason
    assert call.startswith("covariance_from_scale_tril(L=tensor(")
    assert "B2 covariance_from_scale_tril — value" in done.stdout and "hint     :" in done.stdout


KERNEL = """
import contextlib, io, json, sys, time
from autograder.notebook import read_notebook
with contextlib.redirect_stdout(io.StringIO()):
    for cell in read_notebook(open(sys.argv[1], "rb").read()).code_cells:
        exec(cell.source, globals())      # as a Jupyter kernel runs cells: in __main__'s namespace
start = time.monotonic()
from autograder import check
report = check(sys.argv[2])
first = report.question(sys.argv[2])[2]
print("RESULT", json.dumps({"ok": bool(report), "seconds": time.monotonic() - start,
                            "call": first.failure.call if first else None,
                            "checker": sys.modules["autograder"].__file__}))
"""


@pytest.mark.parametrize(("notebook", "qid", "ok"), [
    ("solution", "C4", True), ("log_sigmoid", "C4", False), ("seed_entropy", "C4", False),
    ("solution", "D1", True), ("detach_wrong_side", "D1", False), ("assignment", "D1", False),
])
def test_check_in_the_notebooks_namespace(clean_python, bundle, tmp_path, notebook, qid, ok):
    """``from autograder import check; check(qid)`` after the cells ran in ``__main__``, as in a kernel."""
    path = bundle / "assignment.ipynb" if notebook == "assignment" else copy_notebook(notebook, tmp_path)
    done = run(clean_python, "-c", KERNEL, str(path), qid, cwd=bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.split("RESULT ")[1])
    assert result["ok"] is ok and _inside(result["checker"], bundle)
    assert result["seconds"] < 15, result
    assert (f"ok   {qid}" if ok else f"FAIL {qid}") in done.stdout
    if notebook == "assignment":
        assert "raised NotImplementedError" in done.stdout
    elif not ok:  # tape examples play smallest first: the reported input is small enough to print whole
        assert result["call"] and "tensor(shape=" not in result["call"], result
        assert f"call     : {result['call'][:40]}" in done.stdout
    assert max(len(line) for line in done.stdout.split("RESULT ")[0].splitlines()) <= 80  # a terminal's width


def test_check_in_a_real_jupyter_kernel(clean_python, bundle, tmp_path):
    """``check`` in a kernel started by nbclient from the bundle folder: before the cells ran it says "not
    defined — run its cell"; after, ``assert check("C4")`` and ``check("C4")`` as a cell's last line each show
    the result once, as an HTML table with plain text and Markdown beside it."""
    script = f"""
import json, nbformat, sys
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.insert(0, nbformat.v4.new_code_cell('from autograder import check\\ncheck("C4")'))
nb.cells.append(nbformat.v4.new_code_cell('assert check("C4")'))
nb.cells.append(nbformat.v4.new_code_cell('check("C4")'))
nb.cells.append(nbformat.v4.new_code_cell('import autograder, importlib.util; print("FROM", autograder.__file__, importlib.util.find_spec("reference"))'))
NotebookClient(nb, timeout=300, kernel_name="python3", resources={{"metadata": {{"path": {str(bundle)!r}}}}}).execute()
print("CELLS", json.dumps([cell.get("outputs", []) for cell in [nb.cells[0], *nb.cells[-3:]]]))
"""
    done = run(clean_python, "-c", script, str(copy_notebook("solution", tmp_path)), cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    before, asserted, last, origin = json.loads(done.stdout.split("CELLS ", 1)[1])
    for outputs in (before, asserted, last):
        assert len(outputs) == 1, outputs  # shown once: not also printed, nor shown again as the cell's value
        assert set(outputs[0]["data"]) == {"text/plain", "text/html", "text/markdown"}, outputs
    assert "gmvae_elbo is not defined — run its cell" in before[0]["data"]["text/plain"]
    assert "gmvae_elbo is not defined — run its cell" in before[0]["data"]["text/html"]
    for outputs in (asserted, last):
        passed = re.search(r"ok   C4 gmvae_elbo: (\d+)/\1 public checks passed", outputs[0]["data"]["text/plain"])
        assert passed, outputs
        html = outputs[0]["data"]["text/html"]
        assert "<table" in html and f">{passed[1]}/{passed[1]}<" in html
    _, engine, reference = next(o["text"] for o in origin if o.get("name") == "stdout").split()
    assert _inside(engine, bundle) and reference == "None", (engine, reference)  # the bundle's engine, no solution


def test_the_bundle_installs_without_the_repo(clean_python, bundle, tmp_path):
    """pip installs a copy of the bundle (no dependencies to fetch: the clean venv sees them) and `check` runs."""
    source = tmp_path / "source"
    shutil.copytree(bundle, source)
    venv_dir = clean_python.parent.parent
    # The build backend comes from the dependencies the clean venv sees when they have one (no index needed).
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec("setuptools") else []
    installed = run(clean_python, "-m", "pip", "install", "--no-deps", *offline, "-q", str(source), cwd=tmp_path,
                    timeout=600)
    try:
        assert installed.returncode == 0, installed.stdout + installed.stderr
        where = tmp_path / "elsewhere"
        where.mkdir()
        found = probe(clean_python, where)["found"]
        assert _inside(found["autograder"], venv_dir) and found["reference"] is None, found
        tape = run(clean_python, "-c", "from autograder.checks import tape; print(type(tape.default_oracle()).__name__)",
                   cwd=where)
        assert tape.stdout.strip() == "TapeOracle", tape.stderr
        done = _check(clean_python, where, copy_notebook("transposed_cholesky", where), "-q", "B1", "-q", "B2")
        assert done.returncode == 1 and [q for q, r in _rows(done.stdout).items() if r[2] != "passed"] == ["B2"], (
            done.stdout + done.stderr)
    finally:
        run(clean_python, "-m", "pip", "uninstall", "-y", "-q", "dgm-assignment-checks", cwd=tmp_path)


def _readme_setup(bundle: Path) -> list[str]:
    """The commands of the README's "Set up once" block, in order."""
    text = (bundle / "README.md").read_text()
    block = text.split("## Set up once", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_installs_the_pinned_cpu_torch_and_a_named_kernel(bundle):
    from tests.dist.test_ci_workflow import WORKFLOW

    lines = _readme_setup(bundle)
    pin = re.search(r"torch==(\S+)", (ROOT / "Makefile").read_text()).group(1)
    torch_line = next(line for line in lines if "pip install torch" in line)
    assert f"torch=={pin} --index-url https://download.pytorch.org/whl/cpu" in torch_line
    assert re.search(r"pip install --quiet torch==" + re.escape(pin) + r" --index-url \$\(TORCH_INDEX\)",
                     (ROOT / "Makefile").read_text()) and "TORCH_INDEX ?= https://download.pytorch.org/whl/cpu" in (
        ROOT / "Makefile").read_text()
    for other in (ROOT / "examples" / "gradescope" / "setup.sh", WORKFLOW):  # every install names the same build
        assert f"torch=={pin}" in other.read_text() and "download.pytorch.org/whl/cpu" in other.read_text(), other
    assert lines.index(torch_line) < next(i for i, line in enumerate(lines) if "pip install -e ." in line)
    assert any("ipykernel install" in line and "--name dgm-assignment" in line for line in lines)
    text = (bundle / "README.md").read_text()
    assert "Change Kernel" in text and "VS Code" in text and "DGM assignment (CPU torch)" in text


@pytest.mark.slow
def test_following_the_readme_in_a_fresh_venv_gives_a_kernel_where_check_runs(bundle, tmp_path):
    """The README's set-up commands run as written in a fresh folder (only the CPU index is swapped for this
    machine's package mirror: no internet here), then ``check()`` runs in the kernel they registered."""
    work = tmp_path / "student"
    shutil.copytree(bundle, work)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_environ(HOME=str(home), JUPYTER_DATA_DIR=str(home / "jupyter"))
    for line in _readme_setup(bundle):
        if line.startswith(". "):  # activation: the later lines name the venv's executables instead
            continue
        argv = shlex.split(line)
        if argv[0] in ("pip", "python") and (work / ".venv").exists():
            argv[0] = str(work / ".venv" / "bin" / argv[0])
        if "--index-url" in argv:
            i = argv.index("--index-url")
            del argv[i:i + 2]
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
    py = work / ".venv" / "bin" / "python"
    torch = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert torch.stdout.strip().endswith("+cpu") or "cuda" not in torch.stdout, torch.stdout
    script = """
import nbformat, sys
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell('from autograder import check\\nprint("CHECK", bool(check("B2")))'))
NotebookClient(nb, timeout=600, kernel_name="dgm-assignment", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("".join(o.get("text", "") for o in nb.cells[-1].get("outputs", [])))
"""
    done = subprocess.run([sys.executable, "-c", script, str(copy_notebook("solution", tmp_path)), str(work)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "CHECK True" in done.stdout, done.stdout
