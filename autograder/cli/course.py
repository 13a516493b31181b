"""``diff`` and ``export``: what changed between two runs, and the grades in an LMS's import layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.cli.base import ExitCode, say, usage_error
from autograder.escape import printable

SHOWN = 40


def add(sub: argparse._SubParsersAction, name: str) -> None:
    if name == "diff":
        diff = sub.add_parser(name, help="every score that moved between two runs, and why (writes NEW_OUT/changes.csv)")
        diff.add_argument("old", type=Path, help="the earlier run's output folder")
        diff.add_argument("new", type=Path, help="the later run's output folder")
    else:
        export = sub.add_parser(name, help="the grades as an LMS gradebook import (OUT/<lms>.csv)")
        export.add_argument("out", type=Path, help="the grading output folder")
        export.add_argument("--lms", choices=("canvas", "moodle"), required=True, help="the LMS to import into")
        export.add_argument("--roster", type=Path, required=True, help="the LMS's gradebook export (CSV)")
        export.add_argument("--assignment", default="DGM assignment",
                            help="the gradebook column: Canvas 'Name (id)' updates that assignment")


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    return _diff(args, console) if args.command == "diff" else _export(args, console)


def _diff(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.course.diff import DiffError, write_changes

    try:
        target, changes = write_changes(args.old, args.new)
    except DiffError as exc:
        return usage_error(console, str(exc))
    table = Table(title=f"Scores that moved ({len(changes)})", title_justify="left")
    for col in ("student", "item", "old", "new", "why"):
        table.add_column(col, overflow="fold")
    for c in changes[:SHOWN]:
        table.add_row(*(Text(printable(v)) for v in (c.student, c.item, c.old, c.new, c.why)))
    console.print(table)
    if len(changes) > SHOWN:
        console.print(f"… and {len(changes) - SHOWN} more")
    say(console, f"All changes: {target}")
    return ExitCode.OK


def _export(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.course.lms import ExportError, export

    try:
        target, matched = export(args.out, args.lms, args.roster, args.assignment)
    except ExportError as exc:
        usage_error(console, "nothing was exported:")
        for problem in exc.problems:
            say(console, f"  {problem}")
        return ExitCode.USAGE
    for person in matched.no_submission:
        say(console, f"on the roster, no submission: {person.name or person.login or person.email}")
    for student in matched.no_roster_entry:
        say(console, f"submitted, not on the roster (not exported): {student}")
    for student, why in matched.not_exported:
        say(console, f"submitted, not exported: {student} ({why})")
    say(console, f"Wrote {target}: {len(matched.scores)} grades for {args.lms}.")
    return ExitCode.OK
