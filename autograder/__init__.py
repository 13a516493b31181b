"""Sandboxed autograder for the deep-generative-models assignment.

Pipeline: ``notebook`` (read the .ipynb) → ``sandbox`` (run the student's
code in an isolated process) → ``checks`` (one registry of checks per
question id) → ``scoring`` → ``reports``. ``python -m autograder --help``.
"""

__version__ = "0.1.0"
