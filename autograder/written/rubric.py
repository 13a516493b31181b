"""The written questions (``student_template/rubric.toml``) and where the course's own texts are."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUBRIC = ROOT / "student_template" / "rubric.toml"
TEMPLATE = ROOT / "student_template" / "assignment.ipynb"
SOLUTION = ROOT / "examples" / "submissions" / "solution.ipynb"


@dataclass(frozen=True)
class WrittenQuestion:
    """A written question: id, points, and what the review page shows at the top."""

    qid: str
    points: int
    title: str
    prompt: str
    rubric: tuple[str, ...]


def load_rubric(path: Path = RUBRIC) -> dict[str, WrittenQuestion]:
    """The written questions of ``rubric.toml``, in file order."""
    tables = tomllib.loads(path.read_text(encoding="utf-8"))["question"]
    return {t["id"]: WrittenQuestion(t["id"], int(t["points"]), t["title"], t["prompt"], tuple(t["rubric"])) for t in tables}


def maxima(questions: dict[str, WrittenQuestion]) -> dict[str, float]:
    """Each question's maximum, in rubric order (the gradebook's written columns)."""
    return {qid: float(q.points) for qid, q in questions.items()}
