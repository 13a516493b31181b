"""``similarity.csv`` and the similarity section of ``report.html``: pairs ranked, flagged pairs side by side."""

from __future__ import annotations

from autograder.contract import QUESTION_IDS
from autograder.course.similarity import Pair, Shared
from autograder.escape import csv_text, html_text
from autograder.reports.class_sections import name

SHOWN_PAIRS = 15
CODE_CHARS = 20_000


def render_similarity_csv(pairs: list[Pair]) -> str:
    """One row per pair, most similar first: both students, the overall score, flagged, and each question's."""
    header = ["student_a", "student_b", "overall", "flagged", *QUESTION_IDS]
    rows = [[p.a, p.b, f"{p.overall:.4f}", "yes" if p.flagged else "",
             *(f"{p.per_question[q]:.4f}" if q in p.per_question else "" for q in QUESTION_IDS)] for p in pairs]
    return csv_text([header, *rows])


def _marked(code: str, spans: tuple[tuple[int, int], ...]) -> str:
    """``code`` as escaped HTML with the shared ``spans`` in ``<mark>``."""
    code = code[:CODE_CHARS]
    out, at = [], 0
    for start, end in spans:
        start, end = max(start, at), min(end, len(code))
        if start >= end:
            continue
        out += [html_text(code[at:start], CODE_CHARS), "<mark>", html_text(code[start:end], CODE_CHARS), "</mark>"]
        at = end
    out.append(html_text(code[at:], CODE_CHARS))
    return "".join(out)


def render_similarity_section(pairs: list[Pair], shared: list[Shared]) -> str:
    """The HTML section: the most similar pairs, then every flagged pair's code side by side."""
    flagged = [p for p in pairs if p.flagged]
    rows = "".join(
        f"<tr><td>{name(p.a)}</td><td>{name(p.b)}</td><td class=num>{p.overall:.2f}</td>"
        f"<td>{'flagged' if p.flagged else ''}</td><td>"
        + html_text(", ".join(f"{q} {s:.2f}" for q, s in sorted(p.per_question.items(), key=lambda kv: -kv[1])[:5]))
        + "</td></tr>"
        for p in pairs[:SHOWN_PAIRS])
    sides = "".join(
        f"<h3>{name(s.pair.a)} and {name(s.pair.b)} — {s.pair.overall:.2f}</h3>"
        "<div class=sbs>"
        f"<pre>{_marked(s.code_a, s.spans_a)}</pre><pre>{_marked(s.code_b, s.spans_b)}</pre></div>"
        for s in shared)
    summary = (f"{len(flagged)} pair(s) stand out of this class's distribution of code similarity"
               if flagged else "No pair stands out of this class's distribution of code similarity")
    return ("<h2>Similar code</h2>"
            f"<p>{summary} (copydetect fingerprints, the template's code left out; the full ranking is "
            "in <code>similarity.csv</code>).</p>"
            "<table><tr><th>student</th><th>student</th><th>overall</th><th></th><th>most similar questions</th></tr>"
            f"{rows or '<tr><td colspan=5>fewer than two students</td></tr>'}</table>{sides}")
