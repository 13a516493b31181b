"""Similarity ranking: a planted copy (renamed names, reordered functions) ranks first; the example class flags nothing."""

import ast
import json
import random
import re
from pathlib import Path

import pytest

from autograder.contract import BY_ID
from autograder.course.similarity import pieces, rank, shared_spans
from tests.checks import test_gaussian, test_gmvae, test_vae
from tests.checks.conftest import reference_source

ROOT = Path(__file__).resolve().parents[2]
HEADER = "import math\nimport torch\nimport torch.nn.functional as F\n\n"


def _notebook_code(path: Path) -> str:
    nb = json.loads(path.read_bytes())
    return "\n\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                       for c in nb["cells"] if c["cell_type"] == "code")


def _variants() -> dict[str, list[str]]:
    """For each question with alternatives in the checks' tests: the reference code and every alternative."""
    found: dict[str, list[str]] = {}
    for module in (test_gaussian, test_gmvae, test_vae):
        for qid, _, source, *_ in module.ALTERNATIVES:
            found.setdefault(qid, [reference_source(BY_ID[qid].name)]).append(source)
    return found


def _rename(code: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        code = re.sub(rf"\b{old}\b", new, code)
    return code


def _reordered(code: str, rng: random.Random) -> str:
    """The top-level statements of ``code`` in a shuffled order (imports first, so it still runs)."""
    tree = ast.parse(code)
    parts = [ast.get_source_segment(code, node) for node in tree.body]
    imports = [p for p, n in zip(parts, tree.body) if isinstance(n, (ast.Import, ast.ImportFrom))]
    rest = [p for p, n in zip(parts, tree.body) if not isinstance(n, (ast.Import, ast.ImportFrom))]
    rng.shuffle(rest)
    return "\n\n\n".join(imports + rest)


def _class() -> dict[str, str]:
    variants = _variants()
    students = {}
    for i in range(8):
        rng = random.Random(i)
        chosen = [rng.choice(v) for v in variants.values()]
        students[f"s{i}"] = HEADER + "\n\n".join(chosen)
    return students


def test_a_planted_copy_with_renamed_names_and_reordered_functions_ranks_first():
    students = _class()
    copy = _rename(_reordered(students["s3"], random.Random(0)),
                   {"L": "chol", "eps": "noise", "z": "latent", "x": "data", "mu": "mean"})
    ast.parse(copy)  # still Python
    students["zz_copy"] = copy
    pairs = rank(students, boilerplate=HEADER)
    assert (pairs[0].a, pairs[0].b) == ("s3", "zz_copy"), pairs[:3]
    assert pairs[0].flagged and not any(p.flagged for p in pairs[1:])
    assert pairs[0].overall > pairs[1].overall + 0.1  # it stands out of the class
    shared = shared_spans(pairs[0], students["s3"], copy, boilerplate=HEADER)
    assert shared.spans_a and shared.spans_b


def test_the_example_class_flags_nothing():
    codes = {p.stem: _notebook_code(p) for p in sorted((ROOT / "examples" / "submissions").glob("*.ipynb"))}
    template = _notebook_code(ROOT / "student_template" / "assignment.ipynb")
    pairs = rank(codes, boilerplate=template)
    assert len(pairs) == len(codes) * (len(codes) - 1) // 2
    assert not [p for p in pairs if p.flagged]


@pytest.mark.parametrize("code, rest", [("def broken(:\n", "def broken(:\n"), ("", ""),
                                        ("x = 1\ny = 2\n", "x = 1\n\ny = 2")])
def test_code_outside_the_contract_or_that_does_not_parse_is_one_piece(code, rest):
    assert pieces(code) == {"rest": rest}


def test_pieces_find_each_contract_name():
    code = "import torch\n\ndef quantize(z_e, codebook):\n    return 1\n\nKL_SCENARIOS = {1: 'C'}\n"
    found = pieces(code)
    assert found["D1"].startswith("def quantize") and found["A1"].startswith("KL_SCENARIOS")


def test_the_ranking_is_the_same_in_every_process(tmp_path):
    """copydetect hashes with ``hash(str)``, salted per process: the report must not change with the salt."""
    import os
    import subprocess
    import sys

    script = ("import json, sys; from pathlib import Path; from autograder.course.similarity import rank, pieces\n"
              "from tests.course.test_similarity import _notebook_code\n"
              "codes = {p.stem: _notebook_code(p) for p in sorted(Path(sys.argv[1]).glob('*.ipynb'))[:4]}\n"
              "print(json.dumps([(p.a, p.b, p.overall, p.per_question) for p in rank(codes)]))")
    runs = [subprocess.run([sys.executable, "-c", script, str(ROOT / "examples" / "submissions")], cwd=ROOT,
                           env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, timeout=300)
            for seed in ("1", "2")]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-500:] for r in runs]
    assert runs[0].stdout == runs[1].stdout


def test_a_notebook_padded_with_code_is_compared_on_its_first_characters_only():
    """The fingerprints run in the class's own process, outside every submission's budget: a notebook with
    nearly 2 MB of code must cost what one at the cap costs, and honest notebooks (far below it) are untouched."""
    import json

    from autograder.course.similarity import MAX_COMPARED_CHARS, notebook_code

    honest = (ROOT / "examples" / "submissions" / "solution.ipynb").read_bytes()
    assert len(notebook_code(honest)) < MAX_COMPARED_CHARS // 3
    padding = "".join(f"def helper_{i}(x):\n    return x + {i}\n\n" for i in range(40_000))  # ~1.7 MB, under the notebook limit
    padded = json.dumps({"cells": [{"cell_type": "code", "source": padding, "metadata": {}, "outputs": [],
                                    "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    code = notebook_code(padded.encode())
    assert len(code) == MAX_COMPARED_CHARS and padding.startswith(code)
