"""``report.html``: what a TA looks at before releasing grades.

Per-question score distributions (one embedded PNG), the checks that failed
most often with their hint and how many students they hit, every status that
is not ``ok``, and the similarity of the students' code. Built only from what
a run wrote (gradebook, results.json) and the grades' own data, nothing
timed, so the same class gives the same bytes however it was graded (``-j``
or a cluster). How long each submission took is in ``timing.csv``
(``render_timing``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter
from pathlib import Path

from autograder.contract import BY_ID, MAX_TOTAL, QUESTION_IDS
from autograder.escape import csv_text, csv_value, html_text

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Class report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
td, th {{ border: 1px solid #bbb; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; }}
img {{ max-width: 100%; }}
.sbs {{ display: grid; grid-template-columns: 1fr 1fr; gap: 0.5rem; }}
.sbs pre {{ overflow: auto; max-height: 30rem; border: 1px solid #bbb; padding: 0.4rem; font-size: 0.8rem; }}
mark {{ background: #fd6; }}
</style></head><body>
<h1>Class report</h1>
<p>{n} submissions · mean total {mean:.1f} / {max_total} · {not_ok} with a status other than <code>ok</code></p>
<h2>Score distribution per question</h2>
<img alt="histograms of the score of each question" src="data:image/png;base64,{plot}">
<h2>Checks that failed most often</h2>
<table><tr><th>question</th><th>check</th><th>students</th><th>hint</th></tr>{failing}</table>
<h2>Statuses other than ok</h2>
<table><tr><th>student</th><th>status</th></tr>{statuses}</table>
{similarity}
<p>How long each submission took to grade: <code>timing.csv</code>.</p>
</body></html>
"""


def _histograms(rows: list[dict[str, str]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(4, 6, figsize=(14, 8))
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.04, top=0.96, wspace=0.3, hspace=0.45)
    for ax, qid in zip(axes.flat, QUESTION_IDS):
        scores = [float(r[qid]) for r in rows]
        ax.hist(scores, bins=min(12, BY_ID[qid].points * 2 + 1), range=(0, BY_ID[qid].points), color="#36c")
        ax.set_title(f"{qid} (max {BY_ID[qid].points})", fontsize=9)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of students
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(QUESTION_IDS):]:
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render_timing(out: Path, student_dirs: dict[str, Path]) -> str:
    """``timing.csv``: each student's grading time in seconds (from ``run.json``), slowest first."""
    seconds = {}
    for student, folder in sorted(student_dirs.items()):  # not the order jobs finished in: -j and a cluster agree
        try:
            seconds[student] = float(json.loads((folder / "run.json").read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            seconds[student] = 0.0
    return csv_text([["student", "seconds"], *([s, f"{t:.3f}"] for s, t in sorted(seconds.items(), key=lambda kv: -kv[1]))])


def render_class_report(out: Path, student_dirs: dict[str, Path], similarity: str = "") -> str:
    """The report's HTML from ``out/gradebook.csv`` and each student's folder.

    Failures are counted and their hints shown from each test's ``extra_data``
    fields (never parsed out of the output text); every student-controlled
    text is escaped.
    """
    rows = [{k: csv_value(v) for k, v in r.items()}
            for r in csv.DictReader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8"), newline=""))]
    failures: Counter[tuple[str, str]] = Counter()
    hints: dict[tuple[str, str], str] = {}
    for student, folder in sorted(student_dirs.items()):  # not the order jobs finished in: -j and a cluster agree
        doc = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        for test in doc["tests"]:
            extra = test.get("extra_data") or {}
            if test["score"] < test["max_score"] and "written" not in test.get("tags", []) and "qid" in extra:
                key = (str(extra["qid"]), str(extra["check"]))
                failures[key] += 1
                hints.setdefault(key, str(extra.get("hint", "")))
    esc = html_text
    failing = "".join(
        f"<tr><td>{esc(q)}</td><td>{esc(name)}</td><td class=num>{n}</td><td>{esc(hints[(q, name)])}</td></tr>"
        for (q, name), n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    )
    statuses = "".join(f"<tr><td>{esc(r['student'])}</td><td>{esc(r['status'])}</td></tr>" for r in rows if r["status"] != "ok")
    totals = [float(r["total"]) for r in rows]
    return PAGE.format(
        n=len(rows), mean=sum(totals) / len(totals) if totals else 0.0, max_total=MAX_TOTAL,
        not_ok=sum(r["status"] != "ok" for r in rows), plot=_histograms(rows) if rows else "",
        failing=failing or "<tr><td colspan=4>none</td></tr>",
        statuses=statuses or "<tr><td colspan=2>none</td></tr>", similarity=similarity,
    )
