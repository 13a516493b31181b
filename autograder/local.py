"""Public checks inside a student's own Jupyter kernel: ``from autograder import check; check("C4")``.

The student's functions are called in this very process (it is their own
code on their own machine): no sandbox and no time limit, but the same
requests, plain-data replies and checks as the grader, so a check that
passes here passes there on the same inputs.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from autograder.checks import QUESTIONS, CheckResult, run_check
from autograder.checks.framework import PUBLIC, QUESTION_SECONDS
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.escape import printable
from autograder.sandbox.runtime.child import Responder
from autograder.sandbox.session import Session


class LocalSession(Session):
    """A session over a namespace of this process (JSON round trip, as on the wire)."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.responder = Responder(namespace)

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.responder.handle(json.loads(json.dumps(request)))))


def run_public_checks(session: Session, qids: tuple[str, ...], seed: int = 0) -> list[CheckResult]:
    """Every public check of ``qids`` against ``session``."""
    results = []
    for qid in qids:
        deadline = time.monotonic() + QUESTION_SECONDS
        results += [run_check(session, c, seed, deadline) for c in QUESTIONS[qid] if c.visibility == PUBLIC]
    return results


def check(*qids: str, namespace: dict[str, Any] | None = None) -> bool:
    """Run the public checks of ``qids`` (all questions if none) on this notebook's functions.

    Question ids are case-insensitive (``check("c4")``). Prints one line per
    question and the failure messages; returns whether every public check passed.
    """
    unknown = [q for q in qids if not isinstance(q, str) or q.upper() not in BY_ID]
    if unknown:
        raise ValueError(f"unknown question id(s) {unknown}; ids are {', '.join(QUESTION_IDS)} (in any case)")
    qids = tuple(dict.fromkeys(q.upper() for q in qids))
    ns = namespace if namespace is not None else vars(sys.modules["__main__"])
    results = run_public_checks(LocalSession(ns), qids or QUESTION_IDS)
    for qid in qids or QUESTION_IDS:
        mine = [r for r in results if r.qid == qid]
        passed = sum(r.status == "passed" for r in mine)
        mark = "ok  " if passed == len(mine) else "FAIL"
        print(f"{mark} {qid} {BY_ID[qid].name}: {passed}/{len(mine)} public checks passed")
    for r in results:
        if r.status != "passed":
            print("\n" + printable(r.message, keep_newlines=True))
    return all(r.status == "passed" for r in results)
