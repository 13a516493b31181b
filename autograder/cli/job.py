"""``job``: one submission into one results folder — the job of one container (Gradescope) or worker."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autograder.cli.base import ExitCode, say, usage_error
from autograder.contract import MAX_TOTAL
from autograder.escape import terminal


def add(sub: argparse._SubParsersAction, name: str) -> None:
    job = sub.add_parser(name, help="grade one submission into RESULTS/results.json (one container, e.g. Gradescope)")
    job.add_argument("submission", type=Path, help="a notebook, or a folder holding it (subfolders are searched)")
    job.add_argument("--out", type=Path, required=True, help="folder for results.json and feedback.md")
    job.add_argument("--seed", type=int, default=0, help="grading seed (default: 0)")
    job.add_argument("--policy", type=Path, help="late policy (policy.toml); the submission time is the "
                                                 "created_at of Gradescope's submission_metadata.json")
    job.add_argument("--metadata", type=Path, help="Gradescope's submission metadata (default: "
                                                   "submission_metadata.json beside SUBMISSION)")


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.course.lateness import PolicyError, gradescope_time, read_policy
    from autograder.runner import grade_submission
    from autograder.sandbox import isolation

    if not args.submission.exists():
        return usage_error(console, f"{args.submission} does not exist")
    try:
        policy = None if args.policy is None else read_policy(args.policy)
    except PolicyError as exc:
        return usage_error(console, "the late policy cannot be used: " + "; ".join(exc.problems))
    for warning in isolation.detect().warnings:
        console.print(f"[yellow]warning:[/] {terminal(warning)}")
    metadata = args.metadata or args.submission.absolute().parent / "submission_metadata.json"
    submitted = None if policy is None else gradescope_time(metadata)
    outcome = grade_submission(args.submission, args.out, seed=args.seed, policy=policy, submitted=submitted)
    if outcome.note:
        say(console, outcome.note)
    say(console, f"{outcome.student}: {sum(outcome.scores.values()):g} / {MAX_TOTAL}, {outcome.status}; "
                 f"wrote {args.out / 'results.json'}")
    return ExitCode.OK if outcome.gradable else ExitCode.UNGRADABLE
