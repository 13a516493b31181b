"""Command line: thin wrappers over the library, sharing its defaults.

    python -m autograder grade SUBMISSIONS --out OUT [-j N] [--seed S] [--json]
    python -m autograder job SUBMISSION --out RESULTS [--seed S]
    python -m autograder check NOTEBOOK [-q ID ...]
    python -m autograder verify
    python -m autograder review SUBMISSIONS --out OUT
    python -m autograder merge OUT --scores scores.csv
"""

from __future__ import annotations

import argparse
import enum
import inspect
import json
import traceback
import warnings
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autograder.checks import CheckResult
from autograder.contract import BY_ID, MAX_TOTAL, QUESTION_IDS
from autograder.grading import grade_notebook
from autograder.runner import GradingWarning, Outcome, grade_class, grade_submission
from autograder.sandbox import isolation
from autograder.sandbox.process import Sandbox


class ExitCode(enum.IntEnum):
    OK = 0  # graded, whatever the scores
    UNGRADABLE = 1  # some submissions could not be graded
    USAGE = 2
    INTERNAL = 3


_DEFAULTS = inspect.signature(grade_class).parameters


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade deep-generative-models notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    grade = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    grade.add_argument("submissions", type=Path, help="folder of <student>.ipynb or <student>/<one>.ipynb")
    grade.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades)")
    grade.add_argument("-j", "--jobs", type=int, default=_DEFAULTS["jobs"].default, help="parallel student processes")
    grade.add_argument("--seed", type=int, default=_DEFAULTS["seed"].default, help="grading seed (default: 0)")
    grade.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    job = sub.add_parser("job", help="grade one submission into RESULTS/results.json (one container, e.g. Gradescope)")
    job.add_argument("submission", type=Path, help="a notebook, or a folder holding exactly one")
    job.add_argument("--out", type=Path, required=True, help="folder for results.json and feedback.md")
    job.add_argument("--seed", type=int, default=_DEFAULTS["seed"].default, help="grading seed (default: 0)")
    check = sub.add_parser("check", help="run the public checks on one notebook (exit 0 when all pass)")
    check.add_argument("notebook", type=Path, help="the .ipynb to check")
    check.add_argument("-q", "--question", action="append", choices=QUESTION_IDS, metavar="ID",
                       help="check only this question id (repeatable)")
    sub.add_parser("verify", help="self-checks: solution 100, template 0, student bundle leaks nothing")
    review = sub.add_parser("review", help="write review sheets of the written answers for the TAs")
    review.add_argument("submissions", type=Path, help="folder of submitted notebooks")
    review.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades)")
    merge = sub.add_parser("merge", help="fold the TAs' written scores into the gradebook and reports")
    merge.add_argument("out", type=Path, help="the grading output folder")
    merge.add_argument("--scores", type=Path, required=True, help="the filled-in scores.csv")
    return parser


def _summary_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="Per-question summary", title_justify="left")
    for col in ("question", "function", "mean", "max", "full marks"):
        table.add_column(col, justify="left" if col in ("question", "function") else "right")
    graded = [o for o in outcomes if o.gradable] or outcomes
    for qid in QUESTION_IDS:
        scores = [o.scores.get(qid, 0.0) for o in graded]
        full = sum(s >= BY_ID[qid].points for s in scores)
        mean = sum(scores) / len(scores) if scores else 0.0
        table.add_row(qid, BY_ID[qid].name, f"{mean:.2f}", str(BY_ID[qid].points), f"{full}/{len(scores)}")
    return table


def _students_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="Students", title_justify="left")
    table.add_column("student")
    table.add_column("total", justify="right")
    table.add_column("status")
    for o in outcomes:
        table.add_row(o.student, f"{sum(o.scores.values()):g} / {MAX_TOTAL}", o.status)
    return table


def _grade(args: argparse.Namespace, console: Console) -> ExitCode:
    if not args.submissions.is_dir():
        console.print(f"[red]error:[/] {args.submissions} is not a folder")
        return ExitCode.USAGE
    if args.jobs < 1:
        console.print("[red]error:[/] -j must be at least 1")
        return ExitCode.USAGE
    iso = isolation.detect()
    for warning in iso.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    progress = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[last]}"), console=console, disable=args.json or not console.is_terminal)
    with progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradingWarning)
        task = progress.add_task("grading", total=None, last="")
        outcomes = grade_class(
            args.submissions, args.out, jobs=args.jobs, seed=args.seed,
            on_start=lambda n: progress.update(task, total=n),
            on_done=lambda o: progress.update(task, advance=1, last=o.student),
        )
    for warning in caught:
        if issubclass(warning.category, GradingWarning):
            Console(stderr=True).print(f"[yellow]warning:[/] {escape(str(warning.message))}", soft_wrap=True)
    ungradable = [o for o in outcomes if not o.gradable]
    if args.json:
        print(json.dumps({
            "isolation": iso.level,
            "students": [{"student": o.student, "total": round(sum(o.scores.values()), 2), "status": o.status,
                          "scores": o.scores, "resumed": o.resumed} for o in outcomes],
        }, indent=2))
    else:
        console.print(_students_table(outcomes))
        console.print(_summary_table(outcomes))
        resumed = sum(o.resumed for o in outcomes)
        console.print(f"Graded {len(outcomes)} submissions ({resumed} unchanged since the last run, isolation: {iso.level}).")
        console.print(f"Gradebook: {args.out / 'gradebook.csv'}; class report: {args.out / 'report.html'}; "
                      f"per-student results.json and feedback.md in {args.out}/")
    return ExitCode.UNGRADABLE if ungradable else ExitCode.OK


def _job(args: argparse.Namespace, console: Console) -> ExitCode:
    if not args.submission.exists():
        console.print(f"[red]error:[/] {args.submission} does not exist")
        return ExitCode.USAGE
    for warning in isolation.detect().warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    outcome = grade_submission(args.submission, args.out, seed=args.seed)
    console.print(f"{outcome.student}: {sum(outcome.scores.values()):g} / {MAX_TOTAL}, {outcome.status}; "
                  f"wrote {args.out / 'results.json'}", markup=False)
    return ExitCode.OK if outcome.gradable else ExitCode.UNGRADABLE


def _failure_cells(result: CheckResult, limit: int = 90) -> tuple[str, str]:
    """The reason a check failed and the input it failed on, short enough for a table cell.

    The input is the one hypothesis shrank the failure to (in the student
    bundle: the smallest recorded input that fails); the full message follows the table.
    """
    fields: dict[str, str] = {}
    for line in result.message.splitlines()[1:]:
        key, sep, value = line.strip().partition(":")
        if sep and key.strip() in ("call", "got", "detail") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    reason = fields.get("detail") or (f"got {fields['got']}" if "got" in fields else result.message.strip())
    call = fields.get("call", "").removesuffix("(shrunk)").strip() or "—"

    def short(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    return short(f"{result.check} ({result.status}): {reason}"), short(call)


def _check(args: argparse.Namespace, console: Console) -> ExitCode:
    if not args.notebook.is_file():
        console.print(f"[red]error:[/] {args.notebook} is not a file")
        return ExitCode.USAGE
    from rich.text import Text

    qids = tuple(args.question or QUESTION_IDS)
    with Sandbox() as sandbox:
        graded = grade_notebook(args.notebook.read_bytes(), sandbox=sandbox, qids=qids, public_only=True)
    table = Table(title=f"Public checks of {args.notebook.name}", title_justify="left")
    for col in ("question", "function", "public checks", "result", "first failure: check and reason",
                "smallest failing input"):
        table.add_column(col, overflow="fold")
    for qid in qids:
        mine = [r for r in graded.checks if r.qid == qid]
        passed = sum(r.status == "passed" for r in mine)
        failed = [r for r in mine if r.status != "passed"]
        reason, call = _failure_cells(failed[0]) if failed else ("", "")
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
        console.print(f"notebook: {graded.status}", markup=False)
    failures = [r for r in graded.checks if r.status != "passed"]
    for r in failures:
        console.print(r.message, markup=False, soft_wrap=True)
        console.print()
    if failures or not graded.checks:
        console.print(f"{len(failures)} public check(s) failed. Hidden checks test more inputs and properties.")
        return ExitCode.UNGRADABLE
    console.print("Public checks passed. Hidden checks test more inputs and properties.")
    return ExitCode.OK


def _verify(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.verify import verify

    def report(step: str, problems: list[str]) -> None:
        console.print(f"{'[green]ok[/]  ' if not problems else '[red]FAIL[/]'} {step}")
        for problem in problems:
            console.print(f"     {problem}", markup=False, soft_wrap=True)

    return ExitCode.OK if verify(report) else ExitCode.UNGRADABLE


def _review(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.review import write_review

    if not args.submissions.is_dir():
        console.print(f"[red]error:[/] {args.submissions} is not a folder")
        return ExitCode.USAGE
    folder = write_review(args.submissions, args.out)
    console.print(f"Review sheets: {folder}/<question>.html; scores to fill: {folder / 'scores.csv'}; "
                  f"code key (keep apart to grade blind): {folder / 'key.csv'}")
    return ExitCode.OK


def _merge(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.merge import MergeError, merge

    try:
        missing = merge(args.out, args.scores)
    except MergeError as exc:
        console.print(f"[red]error:[/] {args.scores} was not merged; nothing was written:")
        for problem in exc.problems:
            console.print(f"  {problem}", markup=False)
        return ExitCode.USAGE
    for student, qid in missing:
        console.print(f"no score yet: {student} {qid}", markup=False)
    console.print(f"Merged {args.scores} into {args.out / 'gradebook.csv'} ({len(missing)} scores still missing).")
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return ExitCode.USAGE if exc.code else ExitCode.OK
    console = Console(stderr=False, highlight=False)
    try:
        commands = {"grade": _grade, "job": _job, "check": _check, "verify": _verify, "review": _review, "merge": _merge}
        return int(commands[args.command](args, console))
    except KeyboardInterrupt:
        console.print("interrupted: finished submissions are saved; run the same command again to resume")
        return ExitCode.INTERNAL
    except Exception:  # noqa: BLE001 - a grader bug: say so and exit 3
        traceback.print_exc()
        console.print("[red]internal error[/]: this is a bug in the grader, not in a submission")
        return ExitCode.INTERNAL
