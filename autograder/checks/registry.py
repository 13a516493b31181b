"""The registry of checks: ``@check`` declares one, ``CHECKS`` holds them all."""

from __future__ import annotations

from typing import Callable

from autograder.checks.framework import HIDDEN, PUBLIC, Check, Context
from autograder.contract import BY_ID

CHECKS: list[Check] = []


def check(
    qid: str, name: str, *, points: float, hint: str, public: bool = False, kind: str = "check",
    keeps_inputs: bool = False,
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register ``body`` as a check of ``qid`` worth ``points``.

    ``kind`` names the family in feedback ("property", "value", "gradient",
    "statistical test", "symbolic check"). With ``keeps_inputs``, a call of the
    body that modifies a tensor argument in place fails the check (one check
    per question says so: the mistake costs once).
    """
    if qid not in BY_ID:
        raise KeyError(f"unknown question id {qid}")

    def register(body: Callable[[Context], None]) -> Callable[[Context], None]:
        CHECKS.append(Check(qid, name, float(points), PUBLIC if public else HIDDEN, hint, body, kind, keeps_inputs))
        return body

    return register
