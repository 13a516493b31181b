"""examples/ci/grade.yml: valid YAML that installs CPU torch and the package, verifies, grades, uploads grades/."""

from __future__ import annotations

import re
import shlex

import yaml

from autograder.cli import _parser
from tests.dist.helpers import ROOT

WORKFLOW = ROOT / "examples" / "ci" / "grade.yml"


def load_workflow() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return {("on" if k is True else k): v for k, v in workflow.items()}  # YAML 1.1 reads the key `on` as true


def _steps() -> list[dict]:
    workflow = load_workflow()
    assert workflow["name"] and set(workflow["on"]) >= {"workflow_dispatch"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu")
    return job["steps"]


def _index(steps: list[dict], predicate) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, found
    return found[0]


def _autograder_commands(run: str) -> list[list[str]]:
    commands = []
    for line in run.splitlines():
        if "python -m autograder" in line:
            tail = line.split("python -m autograder", 1)[1].split("||")[0]
            commands.append(shlex.split(tail))
    return commands


def test_the_workflow_parses_and_installs_cpu_torch_and_the_package():
    steps = _steps()
    runs = [s.get("run", "") for s in steps]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert any(s.get("uses", "").startswith("actions/setup-python@") and s["with"]["python-version"] for s in steps)
    pin = re.search(r"torch==(\S+)", (ROOT / "Makefile").read_text()).group(1)
    torch = _index(steps, lambda s: f"pip install torch=={pin}" in s.get("run", ""))
    assert "download.pytorch.org/whl/cpu" in runs[torch]  # the CPU build, not the CUDA one PyPI serves
    package = _index(steps, lambda s: re.search(r"pip install -e \.(\s|$)", s.get("run", "")))
    if torch == package:  # torch first, or pip would pull the CUDA build as a dependency
        assert runs[torch].index("torch==") < runs[torch].index("-e .")
    else:
        assert torch < package


def test_the_workflow_verifies_then_grades_then_uploads_grades():
    steps = _steps()
    verify = _index(steps, lambda s: "python -m autograder verify" in s.get("run", ""))
    assert steps[verify]["run"].strip() == "python -m autograder verify"  # its exit code fails the job
    assert not steps[verify].get("continue-on-error")
    grade = _index(steps, lambda s: "python -m autograder grade" in s.get("run", ""))
    upload = _index(steps, lambda s: s.get("uses", "").startswith("actions/upload-artifact@"))
    package = _index(steps, lambda s: "pip install -e ." in s.get("run", ""))
    assert package < verify < grade < upload
    (argv,) = _autograder_commands(steps[grade]["run"])
    args = _parser().parse_args(argv)
    assert args.command == "grade" and str(args.out) == "grades" and str(args.submissions) == "submissions"
    assert steps[upload]["with"]["path"].rstrip("/") == "grades"
    assert steps[upload]["if"] == "always()"  # the grades of a partly failed run are uploaded too
    for step in steps:
        for argv in _autograder_commands(step.get("run", "")):
            _parser().parse_args(argv)  # every command the workflow runs exists with these options


def test_the_makefile_targets_the_workflow_and_the_readme_name():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^student-dist:.*\n\t\$\(PY\) student_template/dist\.py --out dist/student$", makefile, re.M)
    assert re.search(r"^verify:.*\n\t\$\(PY\) -m autograder verify$", makefile, re.M)
