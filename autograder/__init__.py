"""Sandboxed autograder for the deep-generative-models assignment.

Pipeline: ``notebook`` (read the .ipynb) → ``sandbox`` (run the student's
code in an isolated process) → ``checks`` (one registry of checks per
question id) → ``scoring`` → ``reports``. ``python -m autograder --help``.
"""

__version__ = "0.1.0"


def check(*qids: str) -> bool:
    """Run the public checks of ``qids`` (any case: ``check("c4")``) in this kernel (see ``autograder.local.check``)."""
    from autograder.local import check as _check

    return _check(*qids)
