"""The texts the student bundle is made of: its command line, package metadata and README."""

from __future__ import annotations

import re
import tomllib

from autograder.checks import QUESTIONS
from autograder.checks.framework import PUBLIC
from autograder.contract import BY_ID, CONTRACT
from dist_engine import HERE, ROOT

MAIN = '''"""``python -m autograder``: the student bundle's command line, ``check`` alone."""

import sys

try:
    from autograder.cli import student_main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: no traceback
    sys.exit(130)

sys.exit(student_main())
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "dgm-assignment-checks"
version = "{version}"
description = "Public checks of the deep-generative-models assignment."
requires-python = ">=3.10"
dependencies = ["torch>=2.2,<3", "numpy>=1.24", "sympy>=1.12", "hypothesis==6.170.17", "rich>=13"]

[tool.setuptools.packages.find]
include = ["autograder*"]

[tool.setuptools.package-data]
"autograder.checks" = ["public_tape.json"]
'''

README = """# Deep Generative Models assignment — student bundle

Fill in `assignment.ipynb`, then check it locally before you submit.

## Set up once

```sh
python -m venv .venv
. .venv/bin/activate
pip install torch=={torch} --index-url {cpu_index}
pip install -e . ipykernel
python -m ipykernel install --user --name {kernel} --display-name "{kernel_title}"
```

On Windows, activate with `.venv\\Scripts\\activate` instead. The `pip install torch…` line
installs the CPU build of torch (about 200 MB; the checks need no GPU):
a plain `pip install torch` would fetch the multi-GB CUDA build on Linux.
The last line registers this environment as a Jupyter kernel named
"{kernel_title}". Open `assignment.ipynb` and pick that kernel:

- Jupyter Notebook or JupyterLab: *Kernel → Change Kernel… → {kernel_title}*.
- VS Code: *Select Kernel* (top right of the notebook) *→ Jupyter Kernel… → {kernel_title}*
  (or *Python Environments… →* the `.venv` of this folder).

## Run the public checks

```sh
python -m autograder check assignment.ipynb          # every question; exit code 0 when all public checks pass, 1 otherwise
python -m autograder check assignment.ipynb -q C4    # one question
```

It prints a table with one row per question: passed or failed and, for a
failed question, its first failing check with the reason and the smallest
input it fails on. The full message of every failure follows: the function,
the input, what was expected, what your code returned and a hint. The
command runs your notebook in a separate process, as the grader does.

Inside the notebook, after running your cells, check one question (or several,
or all with `check()`) against the functions of your live kernel. It takes a
few seconds and shows a table: for each question, how many public checks
passed and, for a failed one, its first failure with the input, the expected
value and what your code returned. The result is true when every public check
passed, so `assert check("C4")` works too:

```python
from autograder import check
check("C4")
```

Run the cell that defines a function before checking it: otherwise `check`
says it is not defined.

## Public and hidden checks

The public checks catch the obvious mistakes: shapes, dtypes, a few known
values and the key gradients. The grader also runs hidden checks that test
more inputs and properties, so passing every public check does not
guarantee full marks. The public checks are:

{public}

## Points

Code questions (graded automatically, 100 points):

| id | function | points |
|---|---|---:|
{code}

Written questions (graded by the TAs, {written_total} points):

| id | question | points |
|---|---|---:|
{written}
"""

def _public_list() -> str:
    return "\n".join(
        f"- **{qid}** `{BY_ID[qid].name}`: " + "; ".join(c.name for c in checks if c.visibility == PUBLIC)
        for qid, checks in QUESTIONS.items()
    )


CPU_INDEX = "https://download.pytorch.org/whl/cpu"
KERNEL = "dgm-assignment"
KERNEL_TITLE = "DGM assignment (CPU torch)"


def torch_pin() -> str:
    """The torch version the Makefile installs: the one pin every install of this project names."""
    return re.search(r"torch==([\w.+-]+)", (ROOT / "Makefile").read_text()).group(1)


def student_readme() -> str:
    rubric = tomllib.loads((HERE / "rubric.toml").read_text())["question"]
    return README.format(
        torch=torch_pin(), cpu_index=CPU_INDEX, kernel=KERNEL, kernel_title=KERNEL_TITLE,
        public=_public_list(),
        code="\n".join(f"| {e.qid} | `{e.name}` | {e.points} |" for e in CONTRACT),
        written="\n".join(f"| {q['id']} | {q['title']} | {q['points']} |" for q in rubric),
        written_total=sum(q["points"] for q in rubric),
    )
