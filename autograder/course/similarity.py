"""Code similarity between the students of a class, per question and overall.

Fingerprints are copydetect's (winnowed k-grams of the code after its
tokenizer has replaced names by placeholders), so renamed variables and
reordered functions still match. The template's starter code and the
distributed notebook's code are boilerplate: their fingerprints never count.

A pair's score on a piece of code is the share of the smaller side's
fingerprints that the other side has too (containment, in [0, 1]). Short,
correct answers are alike, so nothing is flagged on an absolute score alone:
a pair is flagged when its overall score stands out of the class's own
distribution — above ``median + Z · spread`` (spread = 1.4826 · MAD, floored
at ``MIN_SPREAD``) and above ``MIN_SCORE``.
"""

from __future__ import annotations

import ast
import io
import itertools
import statistics
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass

import copydetect.utils
import numpy as np
from copydetect import CodeFingerprint, compare_files

from autograder.contract import CONTRACT

def _stable_hashed_kgrams(string: str, k: int) -> np.ndarray:
    """copydetect's k-gram hashes, but the same in every process: it uses ``hash(str)``, which Python
    salts per process, so winnowing picked other fingerprints in each run and the report changed."""
    return np.array([zlib.crc32(string[i:i + k].encode("utf-8", "surrogatepass"))
                     for i in range(len(string) - k + 1)], dtype=np.int64)


copydetect.utils.hashed_kgrams = _stable_hashed_kgrams  # looked up at call time by get_document_fingerprints

NOISE = 25  # characters of normalised code in one k-gram (copydetect's default noise threshold)
WINDOW = 6  # winnowing window: every match of NOISE + WINDOW − 1 characters is found
Z = 3.0
MIN_SPREAD = 0.05
MIN_SCORE = 0.5
REST = "rest"  # the code outside the contract's definitions: imports, helpers, top-level calls
TOP = 20
#: Code compared per notebook: the solution has ~37 000 characters (with the template's), and the fingerprints
#: cost ~12 µs a character in the class's own process, so a notebook padded with code is compared on its first
#: ones and cannot hold up the class.
MAX_COMPARED_CHARS = 150_000


@dataclass(frozen=True)
class Pair:
    """Two students (``a`` < ``b``) and their scores: ``overall`` and per question id."""

    a: str
    b: str
    overall: float
    per_question: dict[str, float]
    flagged: bool


@dataclass(frozen=True)
class Shared:
    """The code of a flagged pair with the spans they share, as ``(start, end)`` offsets into each side's code."""

    pair: Pair
    code_a: str
    code_b: str
    spans_a: tuple[tuple[int, int], ...]
    spans_b: tuple[tuple[int, int], ...]


def pieces(code: str) -> dict[str, str]:
    """The source of each contract name a notebook's code defines at top level, and the ``rest`` of it.

    Each piece is fingerprinted on its own, so the order of the functions
    does not matter; code that does not parse is one piece (``rest``).
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {REST: code}
    by_name = {e.name: e.qid for e in CONTRACT}
    lines = code.splitlines(keepends=True)
    found: dict[str, str] = {}
    rest: list[str] = []
    for node in tree.body:
        names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else [
            t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
        source = _segment(lines, node)
        qids = [by_name[n] for n in names if n in by_name]
        if qids:
            found[qids[0]] = source
        else:
            rest.append(source)
    found[REST] = "\n\n".join(rest)
    return found


def _segment(lines: list[str], node: ast.stmt) -> str:
    """The source of top-level ``node`` (``ast.get_source_segment`` re-splits the whole code per call)."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    chunk = [line.encode() for line in lines[first:last + 1]]
    if not chunk:
        return ""
    chunk[-1] = chunk[-1][:node.end_col_offset]
    chunk[0] = chunk[0][node.col_offset:]
    return b"".join(chunk).decode(errors="replace")


def _fingerprint(code: str, boilerplate: frozenset[int] = frozenset()) -> CodeFingerprint:
    return CodeFingerprint("code.py", NOISE, WINDOW, boilerplate=list(boilerplate), fp=io.StringIO(code),
                           language="python")


def _score(a: set[int], b: set[int]) -> float:
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller else 0.0


def rank(codes: dict[str, str], boilerplate: str = "") -> list[Pair]:
    """Every pair of students, most similar first; ``codes`` maps a student to the code of their notebook."""
    base = frozenset(_fingerprint(boilerplate).hashes) if boilerplate.strip() else frozenset()
    prints: dict[str, dict[str, set[int]]] = {}
    for student, code in codes.items():
        prints[student] = {q: set(_fingerprint(src, base).hashes) for q, src in pieces(code).items()}
    overall = {s: set().union(*by_piece.values()) for s, by_piece in prints.items()}
    pairs = []
    for a, b in itertools.combinations(sorted(prints), 2):
        shared = set(prints[a]) & set(prints[b])
        per = {q: round(_score(prints[a][q], prints[b][q]), 4) for q in sorted(shared - {REST})}
        pairs.append((a, b, round(_score(overall[a], overall[b]), 4), per))
    threshold = _threshold([p[2] for p in pairs])
    ranked = [Pair(a, b, s, per, s > threshold) for a, b, s, per in pairs]
    return sorted(ranked, key=lambda p: (-p.overall, p.a, p.b))


def _threshold(scores: list[float]) -> float:
    """The score above which a pair stands out of this class's distribution."""
    if len(scores) < 3:
        return 1.0  # too few pairs to know what is usual
    median = statistics.median(scores)
    spread = max(1.4826 * statistics.median(abs(s - median) for s in scores), MIN_SPREAD)
    return max(median + Z * spread, MIN_SCORE)


def shared_spans(pair: Pair, code_a: str, code_b: str, boilerplate: str = "") -> Shared:
    """The spans of code the two students of ``pair`` share (for showing them side by side)."""
    base = frozenset(_fingerprint(boilerplate).hashes) if boilerplate.strip() else frozenset()
    _, _, (slices_a, slices_b) = compare_files(_fingerprint(code_a, base), _fingerprint(code_b, base))

    def spans(slices) -> tuple[tuple[int, int], ...]:
        if len(slices) == 0 or len(slices[0]) == 0:
            return ()
        return tuple(sorted((int(s), int(e)) for s, e in zip(slices[0], slices[1])))

    return Shared(pair, code_a, code_b, spans(slices_a), spans(slices_b))


def per_question_outliers(pairs: list[Pair]) -> dict[str, list[Pair]]:
    """For each question, the pairs whose score on it stands out of that question's distribution."""
    by_question: dict[str, list[tuple[float, Pair]]] = defaultdict(list)
    for pair in pairs:
        for qid, score in pair.per_question.items():
            by_question[qid].append((score, pair))
    out = {}
    for qid, scored in sorted(by_question.items()):
        threshold = _threshold([s for s, _ in scored])
        hits = [p for s, p in sorted(scored, key=lambda sp: -sp[0]) if s > threshold]
        if hits:
            out[qid] = hits
    return out


def counts(pairs: list[Pair]) -> Counter[str]:
    """How many flagged pairs each student is in."""
    seen: Counter[str] = Counter()
    for pair in pairs:
        if pair.flagged:
            seen.update((pair.a, pair.b))
    return seen


def notebook_code(data: bytes) -> str:
    """The code cells of notebook ``data`` joined, at most ``MAX_COMPARED_CHARS`` of it (empty for a notebook
    that cannot be read)."""
    from autograder.notebook import NotebookError, read_notebook

    try:
        return "\n\n".join(cell.source for cell in read_notebook(data).code_cells)[:MAX_COMPARED_CHARS]
    except NotebookError:
        return ""
