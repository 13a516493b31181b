"""Command line: one module per command, each a thin wrapper over the library, sharing its defaults.

    python -m autograder grade SUBMISSIONS --out OUT [-j N | --cluster local:N | --scheduler ADDRESS] [--seed S] [--json]
    python -m autograder job SUBMISSION --out RESULTS [--seed S]
    python -m autograder check NOTEBOOK [-q ID ...]
    python -m autograder verify
    python -m autograder review SUBMISSIONS --out OUT
    python -m autograder merge OUT --scores scores.csv
    python -m autograder override OUT --scores overrides.csv
    python -m autograder diff OLD_OUT NEW_OUT
    python -m autograder export OUT --lms canvas|moodle --roster roster.csv

The student bundle ships ``check`` alone (``STUDENT_COMMANDS``).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import traceback

from rich.console import Console

from autograder.cli.base import ExitCode

#: command name → module of ``autograder.cli`` that defines ``add(subparsers)`` and ``run(args, console)``
COMMANDS = {"grade": "grade", "job": "job", "check": "check", "verify": "verify", "review": "written",
            "merge": "written", "override": "override", "diff": "course", "export": "course"}
STUDENT_COMMANDS = ("check",)

__all__ = ["COMMANDS", "ExitCode", "STUDENT_COMMANDS", "main"]


def _modules(names: tuple[str, ...]) -> dict[str, object]:
    return {name: importlib.import_module(f"autograder.cli.{COMMANDS[name]}") for name in names}


def _parser(names: tuple[str, ...] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade deep-generative-models notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in _modules(names).items():
        module.add(sub, name)
    return parser


def _second_interrupt_exits_at_once(*_: object) -> None:
    import os

    os._exit(ExitCode.INTERRUPTED)


def main(argv: list[str] | None = None, names: tuple[str, ...] = tuple(COMMANDS)) -> int:
    """Run one command; returns its exit code (``ExitCode``). Ctrl-C at any point exits 130, without a traceback."""
    console = Console(stderr=False, highlight=False)
    try:
        try:
            args = _parser(names).parse_args(argv)  # imports every command's modules (torch included)
        except SystemExit as exc:
            return ExitCode.USAGE if exc.code else ExitCode.OK
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)  # from here a Ctrl-C is handled, saved, 130
        return int(_modules((args.command,))[args.command].run(args, console))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, _second_interrupt_exits_at_once)
        console.print("interrupted: what was finished is saved; run the same command again to resume")
        return ExitCode.INTERRUPTED
    except Exception:  # noqa: BLE001 - a grader bug outside any one submission: say so and exit 3
        traceback.print_exc(file=sys.stderr)
        console.print("[red]internal error[/]: this is a bug in the grader, not in a submission")
        return ExitCode.INTERNAL


def student_main(argv: list[str] | None = None) -> int:
    """The student bundle's command line: ``check`` only."""
    return main(argv, STUDENT_COMMANDS)
