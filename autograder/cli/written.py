"""``review`` and ``merge``: the written answers — review sheets for the TAs, their scores folded back in."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autograder.cli.base import ExitCode, say, usage_error


def add(sub: argparse._SubParsersAction, name: str) -> None:
    if name == "review":
        review = sub.add_parser(name, help="write review sheets of the written answers for the TAs")
        review.add_argument("submissions", type=Path, help="folder of submitted notebooks")
        review.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades)")
    else:
        merge = sub.add_parser(name, help="fold the TAs' written scores into the gradebook and reports")
        merge.add_argument("out", type=Path, help="the grading output folder")
        merge.add_argument("--scores", type=Path, required=True, help="the filled-in scores.csv")


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    return _review(args, console) if args.command == "review" else _merge(args, console)


def _review(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.written.review import write_review

    if not args.submissions.is_dir():
        return usage_error(console, f"{args.submissions} is not a folder")
    try:
        files = write_review(args.submissions, args.out)
    except ValueError as exc:  # a key.csv this command did not write
        return usage_error(console, str(exc))
    say(console, f"For the graders: {files.sheets}/ (sheets <question>.html, start at {files.index}); "
                 f"scores to fill: {files.scores}")
    say(console, f"Key from codes to students (keep it from the graders to grade blind): {files.key}/")
    return ExitCode.OK


def _merge(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.course.amend import add_late_columns, read_lateness
    from autograder.reports import write_atomic
    from autograder.reports.class_report import render_class_report
    from autograder.written.merge import MergeError, merge

    try:
        missing = merge(args.out, args.scores)
    except MergeError as exc:
        usage_error(console, f"{args.scores} was not merged; nothing was written:")
        for problem in exc.problems:
            say(console, f"  {problem}")
        return ExitCode.USAGE
    add_late_columns(args.out, read_lateness(args.out))  # the gradebook's `final`, from the new grand totals
    write_atomic(args.out / "report.html", render_class_report(args.out))
    for student, qid in missing:
        say(console, f"no score yet: {student} {qid}")
    say(console, f"Merged {args.scores} into {args.out / 'gradebook.csv'} and every student's reports "
                 f"({len(missing)} scores still missing; per sheet: {args.out / 'review' / 'index.html'}).")
    return ExitCode.OK
