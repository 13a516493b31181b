"""Build the student bundle: template, engine, public checks, recorded expected values.

    python student_template/dist.py [--out dist/student]   (make student-dist)

It then audits the bundle (``audit``) and exits 1 if anything could leak.

The bundle holds the notebook, the part of the ``autograder`` engine that
``check`` runs (``GRADER_ONLY`` is left out; the command line offers ``check``
alone) with only the public checks (hidden ones are cut from the source), a tape of the values the
public checks expect (recorded by running them on the reference solution,
played by ``checks.tape.TapeOracle``). It holds no ``reference/`` package, no
line of its code and nothing a hidden check compares against.

Its jobs live beside it: ``dist_engine`` (what of ``autograder/`` ships, hidden checks cut out),
``dist_tape`` (the recorded values), ``dist_texts`` (command line, metadata, README) and
``dist_audit`` (what could leak).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # the engine, and this folder's modules (also when loaded from a path)

from autograder.checks import tape as tapes  # noqa: E402
from dist_audit import audit, hidden_check_lines, solution_lines  # noqa: E402,F401 - the bundle's commands
from dist_engine import GRADER_ONLY, _ignore, _imported_from_checks, _names, shipped  # noqa: E402,F401
from dist_engine import strip_hidden_checks, stripped_sources  # noqa: E402,F401
from dist_tape import _size, record_tape, smallest_first  # noqa: E402,F401
from dist_texts import MAIN, PYPROJECT, student_readme  # noqa: E402,F401


def build(out: Path) -> Path:
    """Write the bundle to ``out`` and a zip beside it; returns the zip's path."""
    from autograder import __version__

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ROOT / "autograder", out / "autograder", ignore=_ignore)
    (out / "autograder" / "__main__.py").write_text(MAIN)
    for family, source in stripped_sources().items():
        (out / "autograder" / "checks" / f"{family}.py").write_text(source)
    (out / "autograder" / "checks" / tapes.TAPE_FILE.name).write_text(record_tape())
    shutil.copy(HERE / "assignment.ipynb", out / "assignment.ipynb")
    (out / "README.md").write_text(student_readme())
    (out / "pyproject.toml").write_text(PYPROJECT.format(version=__version__))
    return Path(shutil.make_archive(str(out), "zip", out.parent, out.name))


def main(argv: list[str]) -> int:
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else ROOT / "dist" / "student"
    archive = build(out)
    print(f"wrote {out} and {archive}")
    problems = audit(out)
    for problem in problems:
        print(f"leak: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
