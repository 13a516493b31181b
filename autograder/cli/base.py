"""What every command shares: exit codes, usage errors, printing student text safely."""

from __future__ import annotations

import enum

from rich.console import Console

from autograder.escape import printable


class ExitCode(enum.IntEnum):
    OK = 0  # graded, whatever the scores
    UNGRADABLE = 1  # some submissions could not be graded
    USAGE = 2
    INTERNAL = 3
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


def usage_error(console: Console, message: str) -> ExitCode:
    """Print ``message`` (it may quote paths a user typed: shown as text) and return the usage exit code."""
    console.print("[red]error:[/] ", end="")
    console.print(printable(message), markup=False, soft_wrap=True)
    return ExitCode.USAGE


def say(console: Console, text: str) -> None:
    """Print ``text`` that may quote student or TA text: no markup, control characters escaped."""
    console.print(printable(text), markup=False, soft_wrap=True)
