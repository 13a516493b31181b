"""``OUT/review/index.html``: a link to every review sheet, with how many of its answers are still to score.

"Still to score" counts the students on the sheet without a score in the
last merge. The page holds no student text; the rubric's titles are escaped
all the same, and the page loads nothing.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from autograder.escape import html_text
from autograder.reports.atomic import write_atomic
from autograder.written.rubric import WrittenQuestion
from autograder.written.scores import MergeError, WrittenScore, merged_path, read_scores

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Written answers — review sheets</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }}
td.n {{ text-align: right; }}
.done {{ color: #070; }}
</style></head><body>
<h1>Written answers — review sheets</h1>
<p>{students} students, shown by anonymous code. Enter scores in <a href="scores.csv">scores.csv</a>,
then run <code>python -m autograder merge OUT --scores scores.csv</code>; the counts below are those of the last merge.</p>
<table><thead><tr><th>Sheet</th><th>Question</th><th>Points</th><th>Still to score</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""

ROW = ('<tr><td><a href="{href}">{qid}</a></td><td>{title}</td><td class="n">{points}</td>'
       '<td class="n{done}">{left} of {count}</td></tr>')


def merged_scores(out: Path, questions: dict[str, WrittenQuestion], known: set[str]) -> dict[tuple[str, str], WrittenScore]:
    """The scores of the last merge (codes of ``known``), none when there was none or it no longer reads as one."""
    path = merged_path(out)
    if not path.is_file():
        return {}
    try:
        return read_scores(path, questions, known)
    except MergeError:
        return {}


def render_index(questions: dict[str, WrittenQuestion], codes: set[str], scored: dict[tuple[str, str], WrittenScore]) -> str:
    """The index page: a row per sheet, counting the ``codes`` without a score in ``scored``."""
    rows = []
    for qid, q in questions.items():
        left = sum(scored.get((code, qid), WrittenScore(None, "")).score is None for code in codes)
        rows.append(ROW.format(href=html_text(quote(f"{qid}.html")), qid=html_text(qid), title=html_text(q.title),
                               points=q.points, left=left, count=len(codes), done="" if left else " done"))
    return PAGE.format(students=len(codes), rows="\n".join(rows))


def write_index(out: Path, questions: dict[str, WrittenQuestion], codes: set[str], known: set[str]) -> Path:
    """Write ``OUT/review/index.html`` for the students ``codes`` (of the key's ``known``), counted as of the last merge."""
    path = out / "review" / "index.html"
    write_atomic(path, render_index(questions, codes, merged_scores(out, questions, known)))
    return path
