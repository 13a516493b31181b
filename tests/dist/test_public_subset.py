"""The public checks are a real subset: out of the bundle they already flag most flawed example notebooks.

Each flawed student of ``examples/flawed.py`` is the solution with one graded
cell rewritten; here only the bundle's public checks (tape playing, no
``reference``) run on the flawed question. They flag every flaw but one:

``sample_not_rsample`` (A3, ``q.sample()`` instead of ``q.rsample()``) returns
losses with exactly the distribution of the right ones, so no check of the
value can see it: only A3's gradient check can, and that check is hidden (A3's
public check is its value). That is acceptable: the public checks are meant
for the obvious mistakes (shapes, dtypes, known values, the straight-through
gradient of D1), the missing pathwise gradient still costs the 2 points of the
hidden check at grading time, and the contract states that the loss must be
differentiable through the samples.
"""

from __future__ import annotations

import json

from examples.flawed import FLAWS
from tests.dist.helpers import EXAMPLES, run

#: Flaws the public checks are known not to flag (see the module docstring for why).
NOT_FLAGGED_BY_PUBLIC_CHECKS = {"sample_not_rsample"}

SCRIPT = """
import contextlib, io, json, sys
from autograder.local import LocalSession, run_public_checks
from autograder.notebook import read_notebook
out = {}
for student, path, qid in json.loads(sys.argv[1]):
    namespace = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in read_notebook(open(path, "rb").read()).code_cells:
            exec(cell.source, namespace)
    out[student] = [[r.check, r.status] for r in run_public_checks(LocalSession(namespace), (qid,))]
print("RESULTS", json.dumps(out))
"""


def test_public_checks_flag_the_flawed_question_of_most_flawed_notebooks(clean_python, bundle):
    jobs = [(f.student, str(EXAMPLES / f"{f.student}.ipynb"), f.qid) for f in FLAWS]
    jobs.append(("solution", str(EXAMPLES / "solution.ipynb"), "A3"))
    done = run(clean_python, "-c", SCRIPT, json.dumps(jobs), cwd=bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout.split("RESULTS ", 1)[1])
    assert all(status == "passed" for _, status in results.pop("solution"))
    flagged = {student for student, checks in results.items() if any(s != "passed" for _, s in checks)}
    assert set(results) == {f.student for f in FLAWS}
    assert all(results.values()), "every flawed question has public checks"
    assert {f.student for f in FLAWS} - flagged == NOT_FLAGGED_BY_PUBLIC_CHECKS, results
    assert len(flagged) >= 0.8 * len(FLAWS)


def test_the_bundle_readme_lists_the_public_checks_that_flag_them(bundle):
    """A student reading the README learns which checks run locally; A3's is the value check."""
    readme = (bundle / "README.md").read_text()
    a3 = next(line for line in readme.splitlines() if line.startswith("- **A3**"))
    assert "value estimates KL" in a3 and "gradient" not in a3
    d1 = next(line for line in readme.splitlines() if line.startswith("- **D1**"))
    assert "straight-through gradient" in d1
