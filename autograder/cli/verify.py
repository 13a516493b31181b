"""``verify``: the package's self-checks for a course's CI (solution 100, template 0, bundle leaks nothing)."""

from __future__ import annotations

import argparse

from rich.console import Console

from autograder.cli.base import ExitCode, say


def add(sub: argparse._SubParsersAction, name: str) -> None:
    sub.add_parser(name, help="self-checks: solution 100, template 0, student bundle leaks nothing")


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from autograder.verify import verify

    def report(step: str, problems: list[str]) -> None:
        console.print(f"{'[green]ok[/]  ' if not problems else '[red]FAIL[/]'} {step}")
        for problem in problems:
            say(console, f"     {problem}")

    def starting(step: str) -> None:
        console.print(f"[dim]…    {step}[/]")

    return ExitCode.OK if verify(report, on_step=starting) else ExitCode.UNGRADABLE
