"""The one error shape of every all-or-nothing input a TA gives (scores, overrides, a policy, a roster)."""

from __future__ import annotations


class InputProblems(ValueError):
    """The input cannot be used at all; ``problems`` lists every reason, one line each. Nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
