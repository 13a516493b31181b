"""Sandboxed autograder for the deep-generative-models assignment.

Pipeline: ``notebook`` (read the .ipynb) → ``sandbox`` (run the student's
code in an isolated process) → ``checks`` (one registry of checks per
question id) → ``scoring`` → ``reports``. ``python -m autograder --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.local import PublicChecks

__version__ = "0.1.0"


def check(*qids: str) -> PublicChecks:
    """Run the public checks of ``qids`` (any case: ``check("c4")``) in this kernel and show them.

    True when all passed (``assert check("C4")``); see ``autograder.local.check``.
    """
    from autograder.local import check as _check

    return _check(*qids)
