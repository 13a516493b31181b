"""Grade N copies of the solution notebook vs merely executing them with nbconvert.

    python bench/grade_vs_execute.py [--copies 8] [--rounds 3] [--jobs 1]

Both sides run as whole commands, alternated round by round on the same
machine; the figure is the median of the per-round ratios
grade-time / execute-time (target: below 1.5). Grading does far more than
executing (every check of every question), yet it pays the start-up of
Python and torch once per worker instead of once per notebook.

It also prints, from the last round's ``timing.csv``, what one notebook's
grade costs: its grading time, the CPU time spent inside the student's own
code (cells and calls, measured by the sandbox), and their difference, the
grader's own overhead (checks, the reference, reports).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "examples" / "submissions" / "solution.ipynb"


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _per_notebook(timing: Path) -> None:
    """Median grade, student-CPU and grader-overhead seconds per notebook, from a run's ``timing.csv``."""
    rows = [r for r in csv.DictReader(timing.open()) if r["student_cpu_seconds"]]
    if not rows:
        print("timing.csv holds no per-notebook split")
        return

    def med(col: str) -> float:
        return statistics.median(float(r[col]) for r in rows)
    print(f"per notebook (median of {len(rows)}): grade {med('seconds'):.2f} s = student code "
          f"{med('student_cpu_seconds'):.2f} s CPU + grader overhead {med('grader_seconds'):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        subs.mkdir()
        for i in range(args.copies):
            shutil.copy(SOLUTION, subs / f"student{i:03d}.ipynb")
        notebooks = sorted(str(p) for p in subs.glob("*.ipynb"))
        grade = [sys.executable, "-m", "autograder", "grade", str(subs), "-j", str(args.jobs), "--json"]
        execute = [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "notebook",
                   "--output-dir", str(Path(tmp) / "executed"), *notebooks]
        rows = []
        for r in range(args.rounds):
            out = Path(tmp) / f"grades{r}"  # a fresh folder: nothing is resumed
            g = _timed([*grade, "--out", str(out)])
            e = _timed(execute)
            rows.append((g, e))
            print(f"round {r + 1}: grade {g:6.2f} s   execute {e:6.2f} s   ratio {g / e:.2f}", flush=True)
        _per_notebook(out / "timing.csv")
    ratios = [g / e for g, e in rows]
    print(f"\n{args.copies} notebooks, -j {args.jobs}: median grade {statistics.median(g for g, _ in rows):.2f} s, "
          f"median execute {statistics.median(e for _, e in rows):.2f} s")
    print(f"grade-time / execute-time: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target < 1.5)")


if __name__ == "__main__":
    main()
