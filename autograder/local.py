"""Public checks inside a student's own Jupyter kernel: ``from autograder import check; check("C4")``.

The student's functions are called in this very process (it is their own
code on their own machine): no sandbox and no time limit, but the same
requests, plain-data replies and checks as the grader, so a check that
passes here passes there on the same inputs.

``check`` returns a ``PublicChecks``: true when every public check passed
(``assert check("C4")``), shown in a notebook as an HTML table
(``_repr_html_``) and elsewhere as plain text of at most ``WIDTH`` columns.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

from autograder.checks import QUESTIONS, CheckResult, run_check
from autograder.checks.framework import PUBLIC, QUESTION_SECONDS, skipped
from autograder.checks.oracle import Oracle
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.escape import html_text, md_code, printable
from autograder.reports.layout import plain_text, reason
from autograder.sandbox.runtime.child import Responder
from autograder.sandbox.calls import Session

WIDTH = 80  # columns of the plain text
NOT_DEFINED = "{name} is not defined — run its cell"
NOT_CONTRACT = "{name} is a {kind}, not what the contract asks for"
HIDDEN_NOTE = "Hidden checks test more inputs and properties."
HTML_FIELD = 600  # characters of one HTML cell (the plain text holds the full message)
_CELL = 'style="text-align:left;vertical-align:top;padding:2px 8px;border-bottom:1px solid #d0d7de"'
_CODE = 'style="white-space:pre-wrap;overflow-wrap:anywhere;display:inline-block;min-width:8em"'
_FIELD_LINE = re.compile(r"^(\s+\w+\s*: )")


class LocalSession(Session):
    """A session over a namespace of this process (JSON round trip, as on the wire)."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.responder = Responder(namespace)

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.responder.handle(json.loads(json.dumps(request)))))


def _unusable(qid: str, kind: str) -> str | None:
    """Why the student's name for ``qid`` cannot be checked (``kind`` as ``describe`` says), or None."""
    name = BY_ID[qid].name
    if kind == "missing":
        return NOT_DEFINED.format(name=name)
    if not kind.startswith("dict" if qid == "A1" else "function("):
        return NOT_CONTRACT.format(name=name, kind=kind.split("(")[0])
    return None


def run_public_checks(session: Session, qids: tuple[str, ...], seed: int = 0,
                      truth: Oracle | None = None) -> list[CheckResult]:
    """Every public check of ``qids`` against ``session`` (skipped, saying why, where a name is not usable),
    judged by ``truth`` (default: ``tape.default_oracle``)."""
    kinds = session.describe([BY_ID[q].name for q in qids])
    results = []
    for qid in qids:
        public = [c for c in QUESTIONS[qid] if c.visibility == PUBLIC]
        why = _unusable(qid, kinds[BY_ID[qid].name])
        if why is not None:
            results += [skipped(c, why) for c in public]
            continue
        deadline = time.monotonic() + QUESTION_SECONDS
        results += [run_check(session, c, seed, deadline, truth=truth) for c in public]
    return results


def _wrapped(line: str) -> str:
    """``line`` folded to ``WIDTH`` columns, continuation lines under its value (``  call     : …``)."""
    if len(line) <= WIDTH:
        return line
    lead = _FIELD_LINE.match(line)
    indent = " " * (len(lead.group(1)) if lead else len(line) - len(line.lstrip()) + 2)
    return textwrap.fill(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False, replace_whitespace=False,
                         drop_whitespace=True)


@dataclass(frozen=True)
class PublicChecks:
    """What ``check`` returns: the public check results of some questions, true when all passed."""

    qids: tuple[str, ...]
    results: tuple[CheckResult, ...]
    _shown_in: list[object] = field(default_factory=list, compare=False, repr=False)  # IPython cells it showed in

    def __bool__(self) -> bool:
        return bool(self.results) and all(r.status == "passed" for r in self.results)

    def question(self, qid: str) -> tuple[int, int, CheckResult | None]:
        """Public checks of ``qid`` passed, their number, and the first that did not pass (or None)."""
        mine = [r for r in self.results if r.qid == qid]
        failed = [r for r in mine if r.status != "passed"]
        return len(mine) - len(failed), len(mine), failed[0] if failed else None

    def lines(self) -> list[str]:
        """One line per question: ``ok   C4 gmvae_elbo: 2/2 public checks passed`` (or ``FAIL …``)."""
        out = []
        for qid in self.qids:
            passed, total, failed = self.question(qid)
            mark = "ok  " if failed is None and total else "FAIL"
            out.append(f"{mark} {qid} {BY_ID[qid].name}: {passed}/{total} public checks passed")
        return out

    def __str__(self) -> str:
        messages = dict.fromkeys(printable(plain_text(r), keep_newlines=True) for r in self.results if r.status != "passed")
        blocks = ["\n".join(self.lines()), *messages, HIDDEN_NOTE]
        return "\n\n".join("\n".join(_wrapped(line) for line in block.split("\n")) for block in blocks)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return md_code(str(self))

    def _repr_html_(self) -> str:
        head = ("question", "function", "public checks", "result", "first failure", "input", "expected", "got")
        rows = ["<tr>" + "".join(f"<th {_CELL}>{h}</th>" for h in head) + "</tr>"]
        for qid in self.qids:
            passed, total, failed = self.question(qid)
            ok = failed is None and total
            result = ('<span style="color:#1a7f37">passed</span>' if ok
                      else '<span style="color:#cf222e;font-weight:bold">failed</span>')
            cells = [html_text(qid), f"<code>{html_text(BY_ID[qid].name)}</code>", f"{passed}/{total}", result]
            cells += _failure_cells(failed) if failed else ["—"] * 4
            rows.append("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in cells) + "</tr>")
        caption = f"Public checks of this kernel's functions. {html_text(HIDDEN_NOTE)}"
        return (f'<div class="autograder-check"><table style="border-collapse:collapse">'
                f'<caption style="text-align:left">{caption}</caption>'
                f"<thead>{rows[0]}</thead><tbody>{''.join(rows[1:])}</tbody></table></div>")

    def _ipython_display_(self) -> None:
        """Show in IPython once per cell: ``check`` shows it; ``check(…)`` as a cell's last line, not again."""
        from IPython import get_ipython
        from IPython.display import display

        cell = getattr(get_ipython(), "execution_count", None)
        if self._shown_in and self._shown_in[-1] == cell:
            return
        self._shown_in.append(cell)
        display({"text/plain": str(self), "text/markdown": self._repr_markdown_(), "text/html": self._repr_html_()},
                raw=True)


def _failure_cells(result: CheckResult) -> list[str]:
    """The first failure of a question as HTML cells: check and reason (with the hint), input, expected, got."""
    f = result.failure
    why = (f"<b>{html_text(result.check, HTML_FIELD)}</b> ({html_text(result.status)}): "
           f"{html_text(reason(result, HTML_FIELD), HTML_FIELD)}")
    if f is not None and f.hint and result.status != "skipped":
        why += f"<br><i>hint: {html_text(f.hint, HTML_FIELD)}</i>"
    values = [f.call, f.expected, f.got] if f is not None and result.status != "skipped" else ["", "", ""]
    return [why] + [f"<code {_CODE}>{html_text(v, HTML_FIELD)}</code>" if v else "—" for v in values]


def _in_ipython() -> bool:
    """Whether an IPython shell (a Jupyter kernel, or the IPython terminal) runs this process."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


def check(*qids: str, namespace: dict[str, Any] | None = None) -> PublicChecks:
    """Run the public checks of ``qids`` (all questions if none) on this notebook's functions.

    Question ids are case-insensitive (``check("c4")``). Shows the results (an
    HTML table in a notebook, plain text elsewhere) and returns them: true
    when every public check passed, so ``assert check("C4")`` works.
    """
    unknown = [q for q in qids if not isinstance(q, str) or q.upper() not in BY_ID]
    if unknown:
        raise ValueError(f"unknown question id(s) {unknown}; ids are {', '.join(QUESTION_IDS)} (in any case)")
    chosen = tuple(dict.fromkeys(q.upper() for q in qids)) or QUESTION_IDS
    ns = namespace if namespace is not None else vars(sys.modules["__main__"])
    report = PublicChecks(chosen, tuple(run_public_checks(LocalSession(ns), chosen)))
    if _in_ipython():
        report._ipython_display_()
    else:
        print(report)
    return report
