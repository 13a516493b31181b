"""The class report's plots, as base64 PNG: histograms of the totals, and each question's full / part / no marks.

Counts of students are whole numbers, so every count axis has integer ticks.
The PNGs hold no timestamp or software tag: the same scores give the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from autograder.contract import BY_ID, QUESTION_IDS

BLUE = "#36c"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _integer(axis: Any) -> None:
    """Whole-number ticks on ``axis``: it counts students."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins="auto", integer=True))


def _integer_counts(ax: Any) -> None:
    _integer(ax.yaxis)  # counts of students
    ax.set_ylabel("students", fontsize=8)
    ax.tick_params(labelsize=7)


def totals_histogram(totals: Mapping[str, tuple[Sequence[float], float]]) -> str:
    """One panel per total (title → (the students' values, its maximum)): how many students scored what."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(totals), figsize=(4.6 * len(totals), 2.8), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.88, wspace=0.3)
    for ax, (title, (values, top)) in zip(axes.flat, totals.items()):
        top = max([top, *values, 1.0])
        ax.hist(list(values), bins=20, range=(0, top), color=BLUE)
        ax.set_title(f"{title} (max {top:g})", fontsize=9)
        _integer_counts(ax)
    return _png(fig)


def question_bars(scores: Mapping[str, Sequence[float]]) -> str:
    """One stacked bar per question id (``scores[qid]``: every student's score of it): how many students have
    full marks, part of the points, or none. One axes, however many questions: a grid costs seconds."""
    plt = _pyplot()
    qids = list(reversed(QUESTION_IDS))  # A1 on top
    full = [sum(s >= BY_ID[q].points for s in scores.get(q, ())) for q in qids]
    none = [sum(s <= 0 for s in scores.get(q, ())) for q in qids]
    part = [len(scores.get(q, ())) - f - n for q, f, n in zip(qids, full, none)]
    fig, ax = plt.subplots(figsize=(9, 6))
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.09, top=0.93)
    labels = [f"{q} (max {BY_ID[q].points})" for q in qids]
    ax.barh(labels, full, color=BLUE, label="full marks")
    ax.barh(labels, part, left=full, color="#9bd", label="part of the points")
    ax.barh(labels, none, left=[f + p for f, p in zip(full, part)], color="#e77", label="no points")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 1.09), ncol=3, fontsize=8, frameon=False)
    _integer(ax.xaxis)
    ax.set_xlabel("students", fontsize=8)
    ax.tick_params(labelsize=8)
    return _png(fig)
