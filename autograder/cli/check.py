"""``check``: the public checks of one notebook, as a table and every failure; exit 0 when all pass."""

from __future__ import annotations

import argparse
import errno
import os
import stat
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.cli.base import ExitCode, say, usage_error
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.escape import printable

HIDDEN_NOTE = "Hidden checks test more inputs and properties."


def add(sub: argparse._SubParsersAction, name: str) -> None:
    check = sub.add_parser(name, help="run the public checks on one notebook (exit 0 when all pass)")
    check.add_argument("notebook", type=Path, help="the .ipynb to check")
    check.add_argument("-q", "--question", action="append", choices=QUESTION_IDS, metavar="ID", type=str.upper,
                       help="check only this question id, in any case (repeatable)")


def failure_cells(result, limit: int = 90) -> tuple[str, str]:
    """The reason a check failed and the input it failed on, short enough for a table cell.

    The input is the one hypothesis shrank the failure to (in the student
    bundle: the smallest recorded input that fails); the full message follows the table.
    """
    from autograder.reports.layout import reason as failure_reason

    reason = failure_reason(result, 4 * limit)
    call = (result.failure.call if result.failure else "") or "—"

    def short(text: str) -> str:
        text = printable(" ".join(text.split()))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    return short(f"{result.check} ({result.status}): {reason}"), short(call)


class _CannotCheck(Exception):
    """Why a path cannot be checked, in one line."""


def _read(path: Path) -> bytes:
    """The bytes of the notebook ``path``, read once and never past the size limit (as ``grade`` reads it:
    a symbolic link, a FIFO or a device is refused, not followed or waited on)."""
    from autograder.notebook import MAX_NOTEBOOK_BYTES, NotebookError, read_notebook

    if path.suffix.lower() != ".ipynb":
        raise _CannotCheck(f"{path} is not a notebook (a .ipynb file): check the notebook you will submit")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _CannotCheck(f"{path} is a symbolic link: check the notebook itself") from None
        raise _CannotCheck(f"{path} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _CannotCheck(f"{path} is not a file")
        data = f.read(MAX_NOTEBOOK_BYTES + 1)  # one byte more: read_notebook refuses a file over the limit
    try:
        read_notebook(data)
    except NotebookError as exc:
        raise _CannotCheck(f"{path} is not a notebook that can be checked: {exc.reason}") from None
    return data


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.grading import grade_notebook
    from autograder.reports.layout import plain_text
    from autograder.sandbox.process import Sandbox

    try:
        data = _read(args.notebook)
    except _CannotCheck as exc:
        return usage_error(console, str(exc))
    qids = tuple(dict.fromkeys(args.question or QUESTION_IDS))
    with Sandbox() as sandbox:
        graded = grade_notebook(data, sandbox=sandbox, qids=qids, public_only=True)
    table = Table(title=Text(f"Public checks of {printable(args.notebook.name)}"), title_justify="left")
    for col in ("question", "function", "public checks", "result", "first failure: check and reason",
                "smallest failing input"):
        table.add_column(col, overflow="fold")
    for qid in qids:
        mine = [r for r in graded.checks if r.qid == qid]
        passed = sum(r.status == "passed" for r in mine)
        failed = [r for r in mine if r.status != "passed"]
        reason, call = failure_cells(failed[0]) if failed else ("", "")
        table.add_row(qid, BY_ID[qid].name, f"{passed}/{len(mine)}",  # reason and call quote student values:
                      "[red]failed[/]" if failed or not mine else "[green]passed[/]", Text(reason), Text(call))  # no markup
    width = console.width
    if not console.is_terminal:  # a pipe or CI's log: wide enough that reasons do not wrap into columns of words
        console.width = max(width, 200)
    try:
        console.print(table)
    finally:
        console.width = width
    if graded.status != "ok":
        say(console, f"notebook: {graded.status}")
    failures = [r for r in graded.checks if r.status != "passed"]
    for r in failures:
        console.print(printable(plain_text(r), keep_newlines=True), markup=False, soft_wrap=True)
        console.print()
    if failures or not graded.checks:
        console.print(f"{len(failures)} public check(s) failed. {HIDDEN_NOTE}")
        return ExitCode.UNGRADABLE
    console.print(f"Public checks passed. {HIDDEN_NOTE}")
    return ExitCode.OK
