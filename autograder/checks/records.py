"""What a check's outcome is made of: its status and its failure record (below the checks and the reports)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from autograder.escape import clip


class Status(enum.StrEnum):
    """How a check ended (equal to its plain string, as results.json writes it)."""

    PASSED = "passed"
    FAILED = "failed"  # a wrong answer
    ERROR = "error"  # the student's function raised
    TIMEOUT = "timeout"
    CRASH = "crash"  # the student process died or broke the protocol
    SKIPPED = "skipped"  # not run (the function is missing, or an earlier check stopped the question)
    GRADER_ERROR = "grader_error"  # a bug on the grader's side while running this check


@dataclass(frozen=True)
class FailureRecord:
    """Why a check did not pass, field by field (every field bounded, valid Unicode, not yet escaped).

    ``summary`` is one sentence on what went wrong; ``call`` the call it went
    wrong on (``shrunk`` when hypothesis shrank it); ``kind`` the check's kind.
    The layout of these fields as text lives in ``reports.layout``.
    """

    summary: str
    call: str = ""
    shrunk: bool = False
    expected: str = ""
    got: str = ""
    detail: str = ""
    hint: str = ""
    kind: str = "check"

    @classmethod
    def of(cls, summary: str, **fields: Any) -> FailureRecord:
        """A record with every text field clipped to ``escape.FIELD_CHARS``."""
        texts = {k: clip(v) if isinstance(v, str) else v for k, v in fields.items()}
        return cls(clip(summary), **texts)

