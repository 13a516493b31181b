"""The written answers: the rubric, review sheets for the TAs, and their scores merged into the reports.

* :mod:`~autograder.written.rubric` — the written questions of ``rubric.toml``;
* :mod:`~autograder.written.codes` — anonymous student codes and the key kept apart from the graders;
* :mod:`~autograder.written.scores` — reading and writing the TAs' ``scores.csv``;
* :mod:`~autograder.written.review` — ``python -m autograder review``: the sheets and ``review/index.html``;
* :mod:`~autograder.written.merge` — ``python -m autograder merge``: the scores into every report.
"""
