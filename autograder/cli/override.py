"""``override``: a TA sets students' scores of autograded questions or checks, with a reason (regrades)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autograder.cli.base import ExitCode, say, usage_error


def add(sub: argparse._SubParsersAction, name: str) -> None:
    override = sub.add_parser(name, help="set students' scores of questions or checks, with a reason (regrades)")
    override.add_argument("out", type=Path, help="the grading output folder")
    override.add_argument("--scores", type=Path, required=True,
                          help="CSV with the columns student,question,score,reason,by (question: C4, or check C4.3)")


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.course.regrade import override
    from autograder.course.overrides import STORE, OverrideError
    from autograder.reports import write_atomic
    from autograder.reports.class_report import render_class_report

    if not args.out.is_dir():
        return usage_error(console, f"{args.out} is not a folder")
    try:
        new, replaced, warnings = override(args.out, args.scores)
    except OverrideError as exc:
        usage_error(console, f"{args.scores} was not applied; nothing was written:")
        for problem in exc.problems:
            say(console, f"  {problem}")
        return ExitCode.USAGE
    write_atomic(args.out / "report.html", render_class_report(args.out))
    for old, o in replaced:
        say(console, f"{o.student} {o.item}: {o.score:g} by {o.by or '?'} replaces the earlier override "
                     f"{old.score:g} by {old.by or '?'}")
    for warning in warnings:
        console.print("[yellow]warning:[/] ", end="")
        say(console, warning)
    say(console, f"Applied {len(new)} overrides; every override is kept in {args.out / STORE} and applied again "
                 f"by every later grade. Updated {args.out / 'gradebook.csv'}, report.html and the students' reports.")
    return ExitCode.OK
