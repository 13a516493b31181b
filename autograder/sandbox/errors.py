"""Typed failures of the student process (each costs the question it happened in)."""

from __future__ import annotations


class StudentProcessError(Exception):
    """Base class: something the student's code did, never a grader bug."""

    reason = "the student process failed"


class StudentTimeout(StudentProcessError):
    """A cell or a call ran past its time limit (CPU time, or ``clock`` time); the process was killed."""

    def __init__(self, seconds: float, what: str, clock: str | None = None) -> None:
        spent = f"{seconds:g} s" + (f" of {clock} time" if clock else "")
        super().__init__(f"{what} timed out after {spent}")
        self.seconds = seconds
        self.reason = f"timed out after {spent}"


class BudgetSpent(StudentTimeout):
    """The submission's cells and calls used up its time budget; nothing more of it is run."""

    def __init__(self, seconds: float, what: str, wall_seconds: float | None = None) -> None:
        super().__init__(seconds, what)
        wall = f" or {wall_seconds:g} s of wall-clock time" if wall_seconds else ""
        self.reason = f"the submission used up its time budget ({seconds:g} s of CPU time{wall}); grading stopped"
        self.args = (f"{what}: {self.reason}",)


class StudentCrashed(StudentProcessError):
    """The process died (``os._exit``, a signal, a resource limit) or closed its channel."""

    def __init__(self, status: str, what: str) -> None:
        super().__init__(f"the student process died during {what} ({status})")
        self.status = status
        self.reason = f"the process died ({status})"


class BrokenReply(StudentProcessError):
    """The process sent something that does not follow the protocol."""

    def __init__(self, detail: str, what: str) -> None:
        super().__init__(f"broken reply during {what}: {detail}")
        self.reason = f"broken reply ({detail})"


class StudentException(StudentProcessError):
    """The student's code raised; ``type``/``message``/``traceback`` are its own words."""

    def __init__(self, error: dict) -> None:
        self.type = str(error.get("type", "Exception"))
        self.message = str(error.get("message", ""))
        self.traceback = str(error.get("traceback", ""))
        super().__init__(f"{self.type}: {self.message}")
        self.reason = f"raised {self.type}: {self.message}"[:300]
