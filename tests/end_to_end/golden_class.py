"""The example class's grades as data, to compare before and after a refactoring.

``python -m tests.end_to_end.golden_class`` regrades ``examples/submissions``
and writes ``golden/example_class.json``: per student, the status, the score
of every question and every check's status, points and message (no timings).
Regenerate it only when a change is meant to change a grade, and say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "submissions"
GOLDEN = Path(__file__).with_name("golden") / "example_class.json"


def class_results() -> dict[str, Any]:
    """Student → what grading their example notebook says (seed 0), timings left out."""
    from autograder.grading import grade_notebook
    from autograder.reports.layout import plain_text
    from autograder.sandbox.process import Sandbox

    results = {}
    with Sandbox() as sandbox:
        for path in sorted(EXAMPLES.glob("*.ipynb")):
            graded = grade_notebook(path.read_bytes(), sandbox=sandbox)
            results[path.stem] = {
                "status": str(graded.status),
                "scores": {q: round(s, 4) for q, s in graded.scores.items()},
                "cells": [[c.index, str(c.status), c.error] for c in graded.cells],
                "checks": [[r.qid, r.check, str(r.status), round(r.points, 4), plain_text(r)] for r in graded.checks],
            }
    return results


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    GOLDEN.write_text(dumps(class_results()))
    print(f"wrote {GOLDEN}", file=sys.stderr)
