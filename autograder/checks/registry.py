"""The registry of checks: ``@check`` declares one, ``CHECKS`` holds them all."""

from __future__ import annotations

from typing import Callable

from autograder.checks.framework import HIDDEN, PUBLIC, Check, Context
from autograder.contract import BY_ID

CHECKS: list[Check] = []


def check(
    qid: str, name: str, *, points: float, hint: str, public: bool = False, kind: str = "check"
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register ``body`` as a check of ``qid`` worth ``points``.

    ``kind`` names the family in feedback ("property", "value", "gradient",
    "statistical test", "symbolic check").
    """
    if qid not in BY_ID:
        raise KeyError(f"unknown question id {qid}")

    def register(body: Callable[[Context], None]) -> Callable[[Context], None]:
        CHECKS.append(Check(qid, name, float(points), PUBLIC if public else HIDDEN, hint, body, kind))
        return body

    return register
