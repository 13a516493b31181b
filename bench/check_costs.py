"""What grading one notebook costs, check by check, with a warm sandbox.

    python bench/check_costs.py [NOTEBOOK] [--seed 0] [--rounds 1] [--top N] [--cold]

The sandbox is started and one grade is run first (imports, caches, and the
runs of the property checks that ``checks.drawn`` keeps, as in a worker that
graded a notebook before); then ``--rounds`` grades are timed (the figures
are those of the last one; ``--cold`` forgets the kept runs before each, as
for the first notebook of a worker), with
the grader instrumented from outside: every student request (its wall time
and the CPU time the sandbox measured), every question to the reference, and
the fixed costs around the checks (session start with its cells, describe,
closing, error carried forward, the reports). A check's ``grader`` column is
its wall time less the time spent inside the student's requests and the
reference: hypothesis drawing and shrinking, comparing, hints. The last line
is the floor of the call protocol itself: the cost of a call to a function
that returns its argument, times the grade's number of calls.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import grading, runner  # noqa: E402
from autograder.checks import drawn  # noqa: E402
from autograder.checks.live import LiveOracle  # noqa: E402
from autograder.notebook import CodeCell  # noqa: E402
from autograder.sandbox.session import StudentSession  # noqa: E402
from autograder.sandbox.worker import worker_sandbox  # noqa: E402

SOLUTION = ROOT / "examples" / "submissions" / "solution.ipynb"
FIELDS = ("wall", "calls", "student_wall", "student_cpu", "reference", "cpu")


@dataclass
class Cost:
    """What one check (or one fixed step) spent."""

    wall: float = 0.0
    calls: int = 0
    student_wall: float = 0.0
    student_cpu: float = 0.0
    reference: float = 0.0
    cpu: float = 0.0  # the grader process's own CPU time (robust to a loaded machine, unlike wall time)
    status: str = ""

    @property
    def grader(self) -> float:
        return self.wall - self.student_wall - self.reference


class Meter:
    """Costs by label; the label is the check (or fixed step) running now."""

    def __init__(self) -> None:
        self.costs: dict[str, Cost] = collections.defaultdict(Cost)
        self.label = "(outside any check)"

    @contextlib.contextmanager
    def under(self, label: str) -> Iterator[Cost]:
        outer, self.label = self.label, label
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield self.costs[label]
        finally:
            self.costs[label].wall += time.perf_counter() - start
            self.costs[label].cpu += time.process_time() - cpu
            self.label = outer


def _patch(owner: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]],
           undo: list[Callable[[], None]]) -> None:
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    undo.append(lambda: setattr(owner, name, original))


@contextlib.contextmanager
def instrumented(meter: Meter) -> Iterator[None]:
    """The grader, with every step of interest timed into ``meter`` (undone on exit)."""
    undo: list[Callable[[], None]] = []

    def step(label: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            def timed(*args: Any, **kwargs: Any) -> Any:
                with meter.under(label):
                    return fn(*args, **kwargs)
            return timed
        return wrap

    def check(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(session: Any, check: Any, *args: Any, **kwargs: Any) -> Any:
            carried = "  ↻ " if kwargs.get("oracle") else ""
            with meter.under(f"{carried}{check.qid} {check.name}") as cost:
                result = fn(session, check, *args, **kwargs)
                cost.status = str(result.status)
            return result
        return timed

    def request(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(self: StudentSession, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            cpu = self.cpu_spent
            try:
                return fn(self, *args, **kwargs)
            finally:
                cost = meter.costs[meter.label]
                cost.calls += 1
                cost.student_wall += time.perf_counter() - start
                cost.student_cpu += self.cpu_spent - cpu
        return timed

    def reference(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                meter.costs[meter.label].reference += time.perf_counter() - start
        return timed

    _patch(grading, "run_check", check, undo)
    _patch(StudentSession, "_measured", request, undo)
    _patch(StudentSession, "start", step("fixed: session start (cells, snapshot)"), undo)
    _patch(StudentSession, "close", step("fixed: session close"), undo)
    _patch(grading, "_describe", step("fixed: describe"), undo)
    _patch(grading, "_carry_forward", step("fixed: error carried forward (all regrades)"), undo)
    _patch(LiveOracle, "expected", reference, undo)
    _patch(LiveOracle, "expected_grad", reference, undo)
    try:
        yield
    finally:
        for restore in reversed(undo):
            restore()


def measure(data: bytes, seed: int) -> tuple[Meter, grading.Graded, float]:
    """One instrumented grade of ``data`` and its reports; the meter, the record and the reports' seconds."""
    meter = Meter()
    with instrumented(meter), meter.under("total: grade_notebook"):
        graded = grading.grade_notebook(data, sandbox=worker_sandbox(), seed=seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runner.write_reports_in(Path(tmp), "student", graded)
    return meter, graded, time.perf_counter() - start


def table(meter: Meter, graded: grading.Graded, reports: float, top: int | None) -> str:
    """The costs as a fixed-width table: checks by wall time (the ``top`` first), then the fixed costs."""
    head = (f"{'check':58} {'status':8} {'wall':>7} {'calls':>5} {'in stud':>7} {'st CPU':>7} {'ref':>6} "
            f"{'grader':>7} {'gr CPU':>7}")
    rows = [head, "-" * len(head)]

    def row(label: str, c: Cost) -> str:
        return (f"{label[:58]:58} {c.status[:8]:8} {c.wall:7.3f} {c.calls:5d} {c.student_wall:7.3f} "
                f"{c.student_cpu:7.3f} {c.reference:6.3f} {c.grader:7.3f} {c.cpu:7.3f}")

    checks = sorted(((k, c) for k, c in meter.costs.items() if not k.startswith(("fixed", "total", "("))),
                    key=lambda kc: -kc[1].wall)
    rows += [row(k, c) for k, c in checks[:top]]
    if top is not None and len(checks) > top:
        rest = Cost(*(sum(getattr(c, f) for _, c in checks[top:]) for f in FIELDS))
        rows.append(row(f"(the other {len(checks) - top} checks)", rest))
    rows.append("-" * len(head))
    first_level = [c for k, c in checks if not k.startswith(" ")]
    all_checks = Cost(*(sum(getattr(c, f) for c in first_level) for f in FIELDS))
    rows.append(row(f"all {len(first_level)} checks (first grading)", all_checks))
    for key in sorted(k for k in meter.costs if k.startswith(("fixed", "total", "("))):
        rows.append(row(key, meter.costs[key]))
    rows.append(row("fixed: reports (results, feedback, record)", Cost(wall=reports)))
    total = meter.costs["total: grade_notebook"].wall
    rows.append("")
    rows.append(f"score {graded.total}, status {graded.status!r}")
    cpu = meter.costs["total: grade_notebook"].cpu
    rows.append(f"grade_notebook {total:.2f} s wall; student CPU {graded.student_seconds:.2f} s; "
                f"grader overhead (wall - student CPU) {total - graded.student_seconds:.2f} s, of which the grader's "
                f"own CPU {cpu:.2f} s; reports {reports:.3f} s")
    return "\n".join(rows)


def protocol_floor(calls: int, rounds: int = 500) -> str:
    """What the call protocol alone costs: ``rounds`` calls of a function that returns its (4, 3) argument,
    per call, and times ``calls`` (a grade's student calls); no check work, no reference, no replay."""
    x = torch.randn(4, 3)
    with StudentSession(worker_sandbox(), (CodeCell(0, "def echo(x):\n    return x"),)) as session:
        for i in range(20):
            session.call("echo", (x,), seed=i)
        start, cpu, student = time.perf_counter(), time.thread_time(), session.cpu_spent
        for i in range(rounds):
            session.call("echo", (x,), seed=i)
        wall, cpu = (time.perf_counter() - start) / rounds, (time.thread_time() - cpu) / rounds
        child = (session.cpu_spent - student) / rounds
    return (f"protocol floor (a call that returns its argument, {rounds} calls): {wall * 1e3:.3f} ms wall, "
            f"{cpu * 1e3:.3f} ms grader CPU, {child * 1e3:.3f} ms CPU of the student process per call; "
            f"x {calls} calls = {wall * calls:.2f} s wall, {(wall - child) * calls:.2f} s of it overhead")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", nargs="?", type=Path, default=SOLUTION)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--top", type=int, default=None, help="show only the N most expensive checks")
    parser.add_argument("--cold", action="store_true", help="forget the kept runs of the checks before each grade")
    args = parser.parse_args()
    data = args.notebook.read_bytes()
    start = time.perf_counter()
    worker_sandbox(start=True)
    print(f"sandbox start {time.perf_counter() - start:.2f} s", flush=True)
    start = time.perf_counter()
    grading.grade_notebook(data, sandbox=worker_sandbox(), seed=args.seed)
    print(f"warm-up grade {time.perf_counter() - start:.2f} s", flush=True)
    for _ in range(args.rounds):
        if args.cold:
            drawn.forget()
        meter, graded, reports = measure(data, args.seed)
    print(table(meter, graded, reports, args.top))
    print(protocol_floor(sum(c.calls for k, c in meter.costs.items() if not k.startswith("total"))))


if __name__ == "__main__":
    main()
