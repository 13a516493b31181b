"""``grade``: a folder of notebooks into a gradebook, on this machine (``-j``) or on a Dask cluster."""

from __future__ import annotations

import argparse
import inspect
import json
import warnings
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from autograder.cli.base import ExitCode, say, usage_error
from autograder.contract import BY_ID, MAX_TOTAL, QUESTION_IDS
from autograder.escape import printable, terminal

STARTING = "starting the sandbox"


def add(sub: argparse._SubParsersAction, name: str) -> None:
    from autograder.runner import grade_class

    defaults = inspect.signature(grade_class).parameters
    grade = sub.add_parser(name, help="grade a folder of submitted notebooks")
    grade.add_argument("submissions", type=Path, help="folder of <student>.ipynb or <student>/<one>.ipynb")
    grade.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades)")
    where = grade.add_mutually_exclusive_group()
    where.add_argument("-j", "--jobs", type=int, default=defaults["jobs"].default,
                       help="parallel student processes on this machine (default: 1)")
    where.add_argument("--cluster", metavar="local:N", help="a local Dask cluster of N single-threaded workers")
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (tcp:// or tls://)")
    grade.add_argument("--seed", type=int, default=defaults["seed"].default, help="grading seed (default: 0)")
    grade.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    grade.add_argument("--policy", type=Path, help="late policy (policy.toml: deadline, grace, penalty, cap, "
                                                   "extensions); the gradebook gains late_days, penalty, final")
    grade.add_argument("--submitted-at", type=Path, metavar="TIMES_CSV",
                       help="when each student submitted, for --policy (CSV student,timestamp; ISO-8601 with offset)")


def _summary_table(outcomes) -> Table:
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


def _students_table(outcomes) -> Table:
    table = Table(title="Students", title_justify="left")
    table.add_column("student")
    table.add_column("total", justify="right")
    table.add_column("status")
    for o in outcomes:  # names and statuses are student text: no markup, no control characters
        table.add_row(Text(printable(o.student)), f"{sum(o.scores.values()):g} / {MAX_TOTAL}", Text(printable(o.status)))
    return table


def _cluster_spec(args: argparse.Namespace, console: Console):
    """The cluster to grade on (None: this machine); raises ``ClusterError`` for a malformed flag."""
    if args.cluster is None and args.scheduler is None:
        return None
    from autograder.cluster import ClusterSpec, insecure_address

    if args.cluster is not None:
        return ClusterSpec.parse_local(args.cluster)
    if insecure_address(args.scheduler):
        console.print("[yellow]warning:[/] ", end="")
        say(console, f"{args.scheduler} is plain TCP off this machine: Dask's TCP transport has no "
                     "authentication, so anyone who reaches the scheduler can run code on the workers. "
                     "Use tls:// or keep the scheduler unreachable from students (docs/scaling.md).")
    return ClusterSpec(address=args.scheduler)


def _late_policy(args: argparse.Namespace):
    """The late policy and submission times of the flags (None, None without ``--policy``);
    raises ``PolicyError`` for a file that cannot be used."""
    from autograder.course.lateness import PolicyError, read_policy, read_times

    if args.policy is None:
        if args.submitted_at is not None:
            raise PolicyError(["--submitted-at needs --policy"])
        return None, None
    if args.submitted_at is None:
        raise PolicyError(["--policy needs --submitted-at TIMES_CSV (student,timestamp)"])
    return read_policy(args.policy), read_times(args.submitted_at)


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.cluster import ClusterError
    from autograder.course.lateness import PolicyError
    from autograder.runner import GradingWarning, NoSubmissions, grade_class
    from autograder.sandbox import isolation

    if not args.submissions.is_dir():
        return usage_error(console, f"{args.submissions} is not a folder")
    if args.jobs < 1:
        return usage_error(console, "-j must be at least 1")
    try:
        cluster = _cluster_spec(args, console)
    except ClusterError as exc:
        return usage_error(console, str(exc))
    try:
        policy, submitted = _late_policy(args)
    except PolicyError as exc:
        return usage_error(console, "the late policy cannot be used: " + "; ".join(exc.problems))
    iso = isolation.detect()
    for warning in iso.warnings:
        console.print(f"[yellow]warning:[/] {terminal(warning)}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[last]}"), console=console, disable=args.json or not console.is_terminal)
    done: list = []
    total = [0]

    def started(n: int) -> None:
        total[0] = n
        progress.update(task, total=n)

    def finished(outcome) -> None:
        done.append(outcome)
        if not outcome.resumed and outcome.gradable:
            progress.update(task, description="grading")
        progress.update(task, advance=1, last=terminal(outcome.student)[:60])

    try:
        with progress, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradingWarning)
            task = progress.add_task(STARTING, total=None, last="")
            outcomes = grade_class(args.submissions, args.out, jobs=args.jobs, seed=args.seed, cluster=cluster,
                                   on_start=started, on_done=finished, policy=policy, submitted=submitted)
    except KeyboardInterrupt:
        say(console, f"interrupted: {len(done)} of {total[0]} submissions are graded and saved in {args.out}; "
                     "run the same command again to grade the rest")
        return ExitCode.INTERRUPTED
    except NoSubmissions as exc:
        say(console, str(exc))
        return ExitCode.UNGRADABLE
    except ClusterError as exc:
        return usage_error(console, str(exc))
    for warning in caught:
        if issubclass(warning.category, GradingWarning):
            Console(stderr=True).print(f"[yellow]warning:[/] {terminal(str(warning.message))}", soft_wrap=True)
    ungradable = [o for o in outcomes if not o.gradable]
    if args.json:
        print(json.dumps({
            "isolation": str(iso.level),
            "students": [{"student": o.student, "total": round(sum(o.scores.values()), 2), "status": o.status,
                          "scores": o.scores, "resumed": o.resumed} for o in outcomes],
        }, indent=2))
        return ExitCode.UNGRADABLE if ungradable else ExitCode.OK
    console.print(_students_table(outcomes))
    console.print(_summary_table(outcomes))
    resumed = sum(o.resumed for o in outcomes)
    console.print(f"Graded {len(outcomes)} submissions ({resumed} unchanged since the last run, "
                  f"isolation: {iso.level}).")
    say(console, f"Gradebook: {args.out / 'gradebook.csv'}; class report: {args.out / 'report.html'}; "
                 f"per-student results.json and feedback.md in {args.out}/")
    return ExitCode.UNGRADABLE if ungradable else ExitCode.OK
