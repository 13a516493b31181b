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


CURRENT_MAJORS = {"actions/checkout": 6, "actions/setup-python": 6, "actions/cache": 5, "actions/upload-artifact": 6}


def test_the_workflow_is_valid_against_the_github_workflow_schema():
    import subprocess
    import sys
    from pathlib import Path

    lint = Path(sys.executable).with_name("check-jsonschema")
    assert lint.exists(), "check-jsonschema is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run([str(lint), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_uses_current_actions_least_privilege_and_one_run_at_a_time():
    workflow = load_workflow()
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"] and "cancel-in-progress" in workflow["concurrency"]
    for step in _steps():
        if "uses" in step:
            name, _, version = step["uses"].partition("@")
            assert int(version.lstrip("v").split(".")[0]) >= CURRENT_MAJORS[name], step["uses"]


def test_pip_downloads_and_the_grades_are_cached_so_a_run_resumes():
    steps = _steps()
    setup = _index(steps, lambda s: s.get("uses", "").startswith("actions/setup-python@"))
    assert steps[setup]["with"]["cache"] == "pip"
    cache = _index(steps, lambda s: s.get("uses", "").startswith("actions/cache@"))
    grade = _index(steps, lambda s: "python -m autograder grade" in s.get("run", ""))
    assert cache < grade and steps[cache]["with"]["path"].rstrip("/") == "grades"
    key, restore = steps[cache]["with"]["key"], [k.strip() for k in steps[cache]["with"]["restore-keys"].splitlines() if k.strip()]
    assert all(key.startswith(prefix) and key != prefix for prefix in restore)  # a new key per run, the last one restored
