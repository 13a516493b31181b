"""``python -m autograder override``: a TA's overrides validated, kept, and applied to every report of the run."""

from __future__ import annotations

from pathlib import Path

from autograder.course.amend import add_late_columns, gradebook_rows, read_lateness, refresh
from autograder.course.overrides import STORE, Override, combine, read_file, read_overrides, render_store
from autograder.discovery import student_dir
from autograder.reports import write_atomic
from autograder.reports.graded_record import load_graded
from autograder.written.merge import MergeError, reapply


def override(out: Path, scores: Path) -> tuple[list[Override], list[tuple[Override, Override]], list[str]]:
    """``python -m autograder override OUT --scores scores``: validate, keep in ``OUT/overrides.csv``, re-render.

    All or nothing: an ``OverrideError`` lists every problem of ``scores`` and nothing is written. Returns
    the new overrides, each (kept, new) pair where a new one replaced a kept one, and the warnings."""
    rows = gradebook_rows(out)
    new = read_file(scores, {r.student: load_graded(student_dir(out, r.student)) for r in rows})
    merged, replaced = combine(read_overrides(out), new)
    write_atomic(out / STORE, render_store(merged))
    lateness = read_lateness(out)
    _, warnings = refresh(out, rows, lateness)
    try:
        reapply(out)
    except MergeError as exc:
        warnings.append(f"the written scores merged earlier could not be merged again: {exc}; fix them and run merge")
    add_late_columns(out, lateness)
    return new, replaced, warnings
