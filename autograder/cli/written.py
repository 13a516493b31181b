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
    from autograder.review import write_review

    if not args.submissions.is_dir():
        return usage_error(console, f"{args.submissions} is not a folder")
    folder = write_review(args.submissions, args.out)
    say(console, f"Review sheets: {folder}/<question>.html; scores to fill: {folder / 'scores.csv'}; "
                 f"code key (keep apart to grade blind): {folder / 'key.csv'}")
    return ExitCode.OK


def _merge(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.merge import MergeError, merge

    try:
        missing = merge(args.out, args.scores)
    except MergeError as exc:
        usage_error(console, f"{args.scores} was not merged; nothing was written:")
        for problem in exc.problems:
            say(console, f"  {problem}")
        return ExitCode.USAGE
    for student, qid in missing:
        say(console, f"no score yet: {student} {qid}")
    say(console, f"Merged {args.scores} into {args.out / 'gradebook.csv'} ({len(missing)} scores still missing).")
    return ExitCode.OK
