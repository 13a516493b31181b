"""The student bundle's command line offers ``check`` alone, and the bundle holds no grader-only module.

Every run uses ``clean_python`` (conftest.py): an interpreter that sees the
bundle's packages only. That ``check`` itself runs there is test_bundle_runs.py's.
"""

from __future__ import annotations

import shutil

import pytest

from tests.dist.helpers import ROOT, run

GRADER_COMMANDS = ("grade", "job", "review", "merge", "verify", "diff", "export")
#: What only the grader runs (the issue's list); the bundle must not hold any of it.
GRADER_MODULES = ("runner.py", "written", "verify.py", "cluster.py", "course", "cli/grade.py",
                  "cli/job.py", "cli/written.py", "cli/course.py", "cli/verify.py", "reports/class_report.py",
                  "reports/similarity.py")


@pytest.mark.parametrize("command", GRADER_COMMANDS)
def test_a_grader_command_is_a_usage_error_in_the_bundle(clean_python, bundle, tmp_path, command):
    done = run(clean_python, "-m", "autograder", command, str(tmp_path / "x"), "--out", str(tmp_path / "y"),
               cwd=bundle)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"invalid choice: '{command}'" in done.stderr and "choose from 'check'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stdout
    assert not (tmp_path / "y").exists()


def test_the_bundle_help_lists_check_alone(clean_python, bundle):
    done = run(clean_python, "-m", "autograder", "--help", cwd=bundle)
    assert done.returncode == 0, done.stderr
    assert "{check}" in done.stdout and not [c for c in GRADER_COMMANDS if c in done.stdout.split("{check}")[1]]


def test_the_bundle_holds_no_grader_only_module(bundle, dist):
    engine = bundle / "autograder"
    assert set(GRADER_MODULES) <= set(dist.GRADER_ONLY)
    assert not [part for part in dist.GRADER_ONLY if (engine / part).exists()]
    assert [p for p in GRADER_MODULES if (ROOT / "autograder" / p).exists()]  # the list names real modules
    assert "student_main()" in (engine / "__main__.py").read_text()
    assert (engine / "cli" / "check.py").is_file() and (engine / "local.py").is_file()


def test_the_audit_reports_a_grader_only_module_and_the_grader_command_line(bundle_copy, dist):
    shutil.copy(ROOT / "autograder" / "runner.py", bundle_copy / "autograder" / "runner.py")
    shutil.copytree(ROOT / "autograder" / "course", bundle_copy / "autograder" / "course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "autograder" / "__main__.py", bundle_copy / "autograder" / "__main__.py")
    problems = dist.audit(bundle_copy)
    assert "autograder/runner.py is grader-only" in problems
    assert "autograder/course is grader-only" in problems
    assert "autograder/__main__.py is not the student command line (check alone)" in problems
