"""CONTRIBUTING.md's way of adding a check, followed to the letter on its own example.

The example is read from the document, run in the namespace of the family module
the document names for its question, registered with ``@check``, graded in the
sandbox against the reference and a wrong answer, and removed again.
"""

from __future__ import annotations

import importlib
import re
import textwrap
from pathlib import Path

import pytest

from autograder.checks import QUESTIONS, registry
from autograder.checks.framework import Check
from autograder.contract import BY_ID
from tests.checks.conftest import failed, reference_source

GUIDE = (Path(__file__).resolve().parents[2] / "CONTRIBUTING.md").read_text()


def documented_example() -> str:
    """The first Python block of the section "Add a check to a question"."""
    section = GUIDE.split("## Add a check to a question", 1)[1].split("\n## ", 1)[0]
    return textwrap.dedent(re.search(r"```python\n(.*?)\n *```", section, re.S).group(1))


def documented_family(part: str) -> str:
    """The check module the guide names for ``part`` (a letter)."""
    return re.search(rf"\b{part} `(\w+)`", GUIDE).group(1)


@pytest.fixture
def toy_check(monkeypatch) -> Check:
    source = documented_example()
    qid = re.search(r'@check\("(\w+)"', source).group(1)
    family = importlib.import_module(f"autograder.checks.{documented_family(qid[0])}")
    monkeypatch.setattr(registry, "CHECKS", list(registry.CHECKS))  # removed again when the test ends
    exec(compile(source, "CONTRIBUTING.md", "exec"), dict(vars(family)))  # noqa: S102 - our own document
    added = registry.CHECKS[-1]
    monkeypatch.setitem(QUESTIONS, qid, (*QUESTIONS[qid], added))
    return added


def test_the_guide_names_a_module_for_every_part():
    for part in sorted({qid[0] for qid in BY_ID}):
        importlib.import_module(f"autograder.checks.{documented_family(part)}")


def test_a_check_added_as_documented_runs_and_judges(grade, toy_check):
    entry = BY_ID[toy_check.qid]
    solution = {r.check: r.status for r in grade(reference_source(entry.name), entry.qid)}
    assert solution[toy_check.name] == "passed"
    not_symmetric = f"def {entry.name}({', '.join(entry.params)}):\n    return L @ L\n"
    assert toy_check.name in failed(grade(not_symmetric, entry.qid))


def test_the_toy_check_is_not_left_behind():
    qid, name = re.search(r'@check\("(\w+)", "([^"]+)"', documented_example()).groups()
    assert all(c.name != name for c in registry.CHECKS + list(QUESTIONS[qid]))
