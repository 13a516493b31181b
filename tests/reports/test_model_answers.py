"""The written part of the assignment: ids, points, model answers and the numbers they quote.

Every number the answers and the rubric quote about the KL optima of seed 004
§1.2 is recomputed here by ``reference.kl_optima``; the half-separation m* is
substituted at build time (``M_STAR``) and checked in the built solution.
"""

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch
from markdown_it import MarkdownIt

from autograder.written.rubric import load_rubric
from reference import kl_optima

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "student_template"
sys.path.insert(0, str(TEMPLATE_DIR))
import build  # noqa: E402
import dist  # noqa: E402

SHARED = ROOT.parent / "shared"
SOLUTION = ROOT / "examples" / "submissions" / "solution.ipynb"
RUBRIC = load_rubric()
ANSWERS = {label: body for kind, label, body in build.parse_cells(build.ANSWERS.read_text()) if kind == "answer"}
SOURCE = build.SOURCE.read_text()

#: The contract's list, transcribed: "seed 000: 1.2, 1.3, 1.4, 1.5, 1.6; seed 004: 1.1
#: justifications, 1.2 a–c, 2, 3.1–3.5, 4.1–4.4" (ASSIGNMENT.md, "Written answers").
WRITTEN_IDS = {
    "W000-1.2", "W000-1.3", "W000-1.4", "W000-1.5", "W000-1.6",
    "W004-1.1", "W004-1.2a", "W004-1.2b", "W004-1.2c", "W004-2",
    "W004-3.1", "W004-3.2", "W004-3.3", "W004-3.4", "W004-3.5",
    "W004-4.1", "W004-4.2", "W004-4.3", "W004-4.4",
}


def _expand(seed: str, item: str) -> list[str]:
    """``1.2 a–c`` → 1.2a, 1.2b, 1.2c; ``3.1–3.5`` → 3.1 … 3.5; ``1.1 justifications`` → 1.1."""
    item = item.strip()
    if m := re.fullmatch(r"(\d+\.\d+) ([a-z])[–-]([a-z])", item):
        return [f"W{seed}-{m[1]}{chr(c)}" for c in range(ord(m[2]), ord(m[3]) + 1)]
    if m := re.fullmatch(r"(\d+)\.(\d+)[–-]\1\.(\d+)", item):
        return [f"W{seed}-{m[1]}.{k}" for k in range(int(m[2]), int(m[3]) + 1)]
    return [f"W{seed}-{item.split()[0]}"]


def parse_written_ids(assignment: str) -> set[str]:
    """The written ids listed in ASSIGNMENT.md's "Written answers" section."""
    section = assignment.split("## Written answers", 1)[1].split("\n## ", 1)[0]
    listing = re.search(r"\((seed \d{3}:.*?)\)", " ".join(section.split()))[1]
    ids = set()
    for part in listing.split(";"):
        seed, items = re.fullmatch(r"\s*seed (\d{3}):(.*)", part).groups()
        for item in items.split(","):
            ids.update(_expand(seed, item))
    return ids


# ---------------------------------------------------------------- ids and points


def test_the_transcribed_list_parses_back():
    text = ("## Written answers (graded by TAs)\n\nEvery question ... (seed 000:\n1.2, 1.3, 1.4, 1.5, 1.6; seed 004: "
            "1.1 justifications, 1.2 a–c, 2, 3.1–3.5, 4.1–4.4).\n\n## Known traps\n")
    assert parse_written_ids(text) == WRITTEN_IDS


@pytest.mark.skipif(not (SHARED / "ASSIGNMENT.md").is_file(), reason="the contract is not checked out beside the repo")
def test_the_contract_lists_exactly_these_written_ids():
    assert parse_written_ids((SHARED / "ASSIGNMENT.md").read_text(encoding="utf-8")) == WRITTEN_IDS


def test_rubric_ids_are_the_contracts_and_each_question_has_points_and_key_points():
    assert set(RUBRIC) == WRITTEN_IDS and len(RUBRIC) == len(WRITTEN_IDS)
    for q in RUBRIC.values():
        assert q.points > 0 and q.title and q.prompt, q.qid
        assert 2 <= len(q.rubric) <= q.points + 1, f"{q.qid}: {len(q.rubric)} key points for {q.points} points"


def test_notebook_headings_and_answer_cells_match_the_rubric():
    headings = {qid: int(pts) for qid, pts in re.findall(r"\*\*Answer (W\d{3}-[\w.]+)\*\* \((\d+) points?\)", SOURCE)}
    cells = re.findall(r"^<!-- answer: (\S+) -->$", SOURCE, flags=re.M)
    assert headings == {q.qid: q.points for q in RUBRIC.values()}
    assert cells == list(RUBRIC)  # one answer cell each, in rubric order


def test_each_part_states_the_written_points_of_its_questions():
    parts = re.split(r"^## (?=Part )", SOURCE, flags=re.M)[1:]
    assert len(parts) == 5
    for part in parts:
        stated = int(re.match(r"Part \w .*?(\d+) points written\)", part)[1])
        asked = re.findall(r"\*\*Answer (W\d{3}-[\w.]+)\*\*", part)
        assert stated == sum(RUBRIC[q].points for q in asked), part.splitlines()[0]
    total = sum(q.points for q in RUBRIC.values())
    assert f"**Written questions** (ids such as W004-3.5 or W000-1.2, {total} points)" in SOURCE


def _written_table(readme: str) -> list[list[str]]:
    """The cells of the table after "Written questions" in ``readme``, as a Markdown renderer sees them."""
    tokens = MarkdownIt("commonmark").enable("table").parse(readme.split("Written questions", 1)[1])
    rows, row, cell = [], None, False
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type in ("td_open", "th_open"):
            cell = True
        elif t.type == "inline" and cell:
            row.append(t.content)
            cell = False
        elif t.type == "tr_close":
            rows.append(row)
        elif t.type == "table_close":
            break
    return rows


def test_the_student_readme_has_a_table_of_written_ids_and_points():
    readme = dist.student_readme()
    header, *rows = _written_table(readme)
    assert header == ["id", "question", "points"]
    assert [len(r) for r in rows] == [3] * len(rows), rows  # a "|" in a title would split its row
    assert {r[0]: int(r[2]) for r in rows} == {q.qid: q.points for q in RUBRIC.values()}
    assert {r[0] for r in rows} == WRITTEN_IDS
    assert f"Written questions (graded by the TAs, {sum(q.points for q in RUBRIC.values())} points)" in readme


def test_the_table_parser_sees_a_pipe_in_a_title():
    broken = "Written questions\n\n| id | question | points |\n|---|---|---:|\n| W1 | q(c | x) | 4 |\n"
    assert _written_table(broken)[1] == ["W1", "q(c", "x)"]


# ---------------------------------------------------------------- model answers


def _solution_answers() -> dict[str, str]:
    cells = json.loads(SOLUTION.read_text())["cells"]
    return {t[len("answer:"):]: c["source"] for c in cells for t in c["metadata"].get("tags", []) if t.startswith("answer:")}


def test_every_written_question_has_a_model_answer_with_latex_in_the_solution():
    assert list(ANSWERS) == list(RUBRIC)
    solution = _solution_answers()
    assert set(solution) == WRITTEN_IDS
    for qid, text in solution.items():
        assert "Write your answer here" not in text and len(text) > 400, qid
        assert re.search(r"\$[^$]*\\[a-zA-Z]+", text), f"{qid} has no LaTeX"
        assert "M_STAR" not in text, qid


#: Where a seed answer is wrong, what the model answer must say instead (Known traps, and the seeds' slips).
CORRECTIONS = [
    ("W004-1.2a", "both are global", "seed: 'no global minimum'"),
    ("W004-1.2a", "**third, worse local minimum**", "seed: two local minima only"),
    ("W004-1.2a", "no mode seeking at all", "seed: reverse KL always seeks a mode"),
    ("W004-1.2b", r"s^2 = 1 + m^2", "seed: no derivation of the forward optimum"),
    ("W004-1.2c", "Mode seeking is not automatic", "seed: mode seeking for every mixture"),
    ("W004-1.1", "without the division by $q$", "seed: E_q[f log 1/q] drops the 1/q of the weight"),
    ("W004-2", "selects the unique Cholesky factor", "seed: positivity only for definiteness"),
    ("W004-3.3", "the exact optimum is $\\gamma = r$", "seed: the KL can be made zero for every z"),
    ("W004-3.5", r"\frac12\sum_{j=1}^{J}\big(1 + \log(2\pi\tilde\sigma_j^2)\big)", "seed: entropy with sigma_j^2"),
    ("W004-3.5", "cancel, which is why the final formula has no $2\\pi$", "seed: the 2 pi cancellation unexplained"),
    ("W000-1.3", "p$ to have no mass outside that support", "seed: Jensen's step ignores the support"),
    ("W000-1.6", "the denominator is the prior $p(z)$, not $p(x)$", "seed: p(x) in the KL identity"),
]


@pytest.mark.parametrize("qid, phrase, trap", CORRECTIONS, ids=[f"{q}:{t}" for q, _, t in CORRECTIONS])
def test_the_model_answer_corrects_the_seed(qid, phrase, trap):
    assert phrase in ANSWERS[qid], f"{qid} no longer says {phrase!r} ({trap})"


def _prose_grams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of ``text`` outside math, never across a formula."""
    text = re.sub(r"\$\$.*?\$\$", "|", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", "|", text)
    grams = set()
    for chunk in text.split("|"):
        words = re.findall(r"[a-z]+", chunk.lower())
        grams |= {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    return grams


@pytest.mark.skipif(not (SHARED / "seeds").is_dir(), reason="the seeds are not checked out beside the repo")
def test_the_model_answers_are_in_the_projects_own_words():
    seeds = set().union(*(_prose_grams(p.read_text(encoding="utf-8"), 6) for p in (SHARED / "seeds").glob("*.txt")))
    shared = sorted(" ".join(g) for g in _prose_grams(build.ANSWERS.read_text(), 6) & seeds)
    assert shared == [], f"six-word runs copied from a seed: {shared}"


def test_the_copy_detector_finds_a_copied_sentence():
    seed = "Since if it covers one of the modes, the samples from the other mode are improbable."
    assert _prose_grams("We note: if it covers one of the modes, the samples fall", 6) & _prose_grams(seed, 6)


# ---------------------------------------------------------------- quoted numbers


@pytest.fixture(scope="module")
def optima() -> dict[str, float]:
    """Every optimum value the answers may quote, computed by reference.kl_optima."""
    left, centre, right = kl_optima.reverse_kl_local_minima(3.0)
    (centre2,) = kl_optima.reverse_kl_local_minima(2.0)
    return {
        "m=3 reverse: mode loc": right.loc,
        "m=3 reverse: mode scale": right.scale,
        "m=3 reverse: mode KL": right.kl,
        "m=3 reverse: centre scale": centre.scale,
        "m=3 reverse: centre KL": centre.kl,
        "m=2 reverse: centre scale": centre2.scale,
        "m=2 reverse: centre KL": centre2.kl,
        "m=3 forward: scale": kl_optima.forward_kl_minimum(3.0).scale,
        "m=2 forward: scale": kl_optima.forward_kl_minimum(2.0).scale,
        "p_3(0)": kl_optima.mixture_log_density(torch.zeros((), dtype=torch.float64), 3.0).exp().item(),
        "log 2, the KL of q on one of two equal components": math.log(2),
    }


#: Thresholds in m: quoted after these patterns, checked by bracketing the root.
THRESHOLD_PATTERNS = {
    "onset": [r"m\^\\star \\approx\$? ?(\d+\.\d+)", r"m\* ≈ (\d+\.\d+)"],
    "switch": [r"From \$m \\approx (\d+\.\d+)\$"],
}


def _brackets(threshold: str, quoted: str) -> bool:
    """Whether the root lies within the rounding interval of ``quoted``."""
    half = 0.5 * 10 ** -len(quoted.split(".")[1])
    value = float(quoted)
    find = kl_optima.mode_seeking_onset if threshold == "onset" else kl_optima.global_switch_separation
    try:
        find(lo=value - half, hi=value + half, tol=1.0)  # raises unless the root is bracketed
    except ValueError:
        return False
    return True


def _check_quotes(text: str, optima: dict[str, float]) -> tuple[list[str], set[str]]:
    """(numbers no computed value explains, labels of the optima quoted)."""
    for threshold, patterns in THRESHOLD_PATTERNS.items():
        for pattern in patterns:
            for quoted in re.findall(pattern, text):
                assert _brackets(threshold, quoted), f"m quoted as {quoted} for the {threshold}: not the computed root"
            text = re.sub(pattern, "", text)
    unexplained, used = [], set()
    for quoted in re.findall(r"\d+\.\d+", text):
        decimals = len(quoted.split(".")[1])
        labels = {k for k, v in optima.items() if f"{abs(v):.{decimals}f}" == quoted}
        used |= labels
        if not labels:
            unexplained.append(quoted)
    return unexplained, used


REQUIRED = {
    "W004-1.2a": {"m=3 reverse: mode loc", "m=3 reverse: mode scale", "m=3 reverse: mode KL",
                  "m=3 reverse: centre scale", "m=3 reverse: centre KL", "m=2 reverse: centre scale"},
    "W004-1.2b": {"m=3 forward: scale", "m=2 forward: scale"},
}


@pytest.mark.parametrize("qid", ["W004-1.2a", "W004-1.2b", "W004-1.2c"])
def test_every_number_the_model_answer_quotes_is_computed(optima, qid):
    unexplained, used = _check_quotes(ANSWERS[qid], optima)
    assert unexplained == [], f"{qid} quotes {unexplained}, which reference.kl_optima does not give"
    assert REQUIRED.get(qid, set()) <= used, f"{qid} no longer quotes {REQUIRED[qid] - used}"


@pytest.mark.parametrize("qid", ["W004-1.2a", "W004-1.2b"])
def test_every_number_the_rubric_quotes_is_computed(optima, qid):
    unexplained, _ = _check_quotes(" ".join(RUBRIC[qid].rubric), optima)
    assert unexplained == []


def test_a_wrong_number_is_caught(optima):
    assert _check_quotes("at $(\\pm 2.985, 1.023)$", optima)[0] == ["2.985"]
    assert not _brackets("onset", "2.43") and not _brackets("switch", "2.75")


def test_the_crossover_separation_is_substituted_at_build_time():
    assert "M_STAR" in ANSWERS["W004-1.2a"]
    assert not re.search(r"m\^\\star \\approx\$? ?\d", ANSWERS["W004-1.2a"]), "m* must come from the build"
    built = _solution_answers()["W004-1.2a"]
    (quoted,) = re.findall(r"m\^\\star \\approx\$? ?(\d+\.\d+)", built)
    assert _brackets("onset", quoted)


def test_the_dimension_scaling_quoted_for_prior_sampling():
    # W000-1.2: relative variance of the prior-sampling estimate, Gaussian toy model, per dimension.
    from scipy import integrate
    from scipy.stats import norm

    tau, mu = 0.1, 0.7
    rho = 1 + 1 / (tau**2 * (2 + tau**2))
    g = lambda z, k: math.exp(-k * (z - mu) ** 2 / (2 * tau**2)) * norm.pdf(z)  # noqa: E731
    m1, m2 = (integrate.quad(g, -10, 10, args=(k,), points=[mu], epsabs=1e-14)[0] for k in (1, 2))
    assert m2 / m1**2 == pytest.approx(rho**0.5 * math.exp(mu**2 / ((1 + tau**2) * (2 + tau**2))), rel=1e-8)
    assert round(rho**0.5) == 7 and "a factor of about 7 per latent dimension" in ANSWERS["W000-1.2"]


# ---------------------------------------------------------------- the figure


def test_the_reverse_kl_figure_is_made_by_a_command_and_shown_in_the_model_answer():
    (src,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", ANSWERS["W004-1.2a"])
    figure = (SOLUTION.parent / src).resolve()
    assert figure == ROOT / "docs" / "figures" / "reverse_kl.png" and figure.is_file()
    assert "`make figures`" in ANSWERS["W004-1.2a"] and "`python -m reference.figures`" in ANSWERS["W004-1.2a"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^figures:.*\n\t\$\(PY\) -m reference\.figures --out docs/figures$", makefile, flags=re.M)
    assert "![" in _solution_answers()["W004-1.2a"]


@pytest.mark.slow
def test_the_committed_figure_is_what_the_command_draws(tmp_path):
    import subprocess

    subprocess.run([sys.executable, "-m", "reference.figures", "--out", str(tmp_path)], check=True, cwd=ROOT, timeout=600)
    fresh = (tmp_path / "reverse_kl.png").read_bytes()
    assert fresh == (ROOT / "docs" / "figures" / "reverse_kl.png").read_bytes(), "run `make figures`"


@pytest.mark.parametrize("qid", list(RUBRIC))
def test_the_model_answer_renders_as_mathml_on_the_review_sheet(qid):
    from autograder.reports.markdown import render_markdown

    html = render_markdown(ANSWERS[qid])
    assert '<code class="latex">' not in html, "a formula latex2mathml cannot convert"
    unknown = re.findall(r"<m[ion]>(\\[a-zA-Z]+)", html)
    assert unknown == [], f"macros latex2mathml shows as text: {sorted(set(unknown))}"
