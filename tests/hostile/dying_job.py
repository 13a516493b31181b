"""A stand-in for ``runner.grade_job`` whose pool worker dies on one student (imported by the workers)."""

from __future__ import annotations

import os
from pathlib import Path

from autograder.runner import Outcome

DIES = "dies"


def job(student: str, data: bytes, seed: int, out: Path) -> Outcome:
    if student == DIES:
        os._exit(3)
    return Outcome(student, {"A1": 1.0}, "ok", True, False)
