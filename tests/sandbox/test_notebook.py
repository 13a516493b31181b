"""Reading submissions: code cells, magics, answers, and one-line reasons for bad files."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.notebook import MAX_CODE_CELLS, NotebookError, defined_names, read_notebook


def _nb(cells, language="python", **extra):
    meta = {"kernelspec": {"language": language, "name": "k", "display_name": "k"}}
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells, **extra}).encode()


def _code(src):
    return {"cell_type": "code", "source": src, "metadata": {}, "outputs": []}


def _md(src, tags=None):
    return {"cell_type": "markdown", "source": src, "metadata": {"tags": tags} if tags else {}}


def test_code_cells_are_numbered_and_sources_joined():
    nb = read_notebook(_nb([_code(["a = 1\n", "b = 2"]), _md("text"), _code("c = 3")]))
    assert [(c.index, c.source) for c in nb.code_cells] == [(0, "a = 1\nb = 2"), (1, "c = 3")]


def test_magics_and_shell_escapes_are_not_run():
    nb = read_notebook(_nb([_code("%%bash\nrm -rf /"), _code("x = 1\n!ls /\n  %timeit x\ny = 2")]))
    assert nb.code_cells[0].source == "" and "%%bash" in nb.code_cells[0].note
    assert nb.code_cells[1].source == "x = 1\npass\n  pass\ny = 2"
    assert nb.code_cells[1].note == "2 shell escape or magic line(s) were not run"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"{not json", "notebook does not parse (not valid JSON)"),
        (b"[]", "notebook does not parse (no list of cells)"),
        (json.dumps({"nbformat": 3, "cells": []}).encode(), "notebook format 3 is not supported (need 4)"),
        (_nb([], language="R"), "not a Python notebook (kernel language: R)"),
        (_nb([{"cell_type": "code", "source": 5}]), "notebook does not parse (a cell's source is not text)"),
    ],
)
def test_unreadable_notebooks_give_one_line_reasons(data, reason):
    with pytest.raises(NotebookError) as info:
        read_notebook(data)
    assert info.value.reason == reason


def test_answers_found_by_tag_and_by_heading_when_the_tag_was_deleted():
    cells = [
        _md("**Answer W004-2**"),
        _md("Tagged answer", tags=["answer:W004-2"]),
        _md("**Answer W000-1.3**"),
        _md("Untagged answer"),
        _md("**Answer W000-1.4**"),
    ]
    answers = read_notebook(_nb(cells)).answers
    assert answers["W004-2"].text == "Tagged answer" and answers["W004-2"].found_by == "tag"
    assert answers["W000-1.3"].text == "Untagged answer" and answers["W000-1.3"].found_by == "heading"
    assert "W000-1.4" not in answers


# -- magics: only where a logical line starts ---------------------------------------------------------

BLACK = '''def same_shape(a, b):
    if (
        a.shape
        != b.shape
    ):
        raise ValueError("shapes differ")
    return a.numel() % 2 == (
        b.numel()
        % 2
    )
'''
DOCSTRING = '''def f():
    """Usage:

    !pip install torch
    %timeit f()
    """
    return 1
'''
STRINGS = 'text = """\n!not a command\n%not a magic\n"""\nother = (\'\'\'\n% still text\'\'\', 1)\n'
CONTINUED = "total = 1 + \\\n    2\nvalue = [\n    3,\n    %(4)s\n]\n"


@pytest.mark.parametrize("source", [BLACK, DOCSTRING, STRINGS, CONTINUED],
                         ids=["black", "docstring", "strings", "continued"])
def test_valid_python_is_never_rewritten(source):
    cell = read_notebook(_nb([_code(source)])).code_cells[0]
    assert cell.source == source and cell.note is None


@pytest.mark.parametrize(
    "source, expected, removed",
    [
        ("%time x = f(3)\ny = 1\n", "pass\ny = 1\n", 1),
        ("!pip install -q 'torch<3'\nimport torch\n", "pass\nimport torch\n", 1),
        ("for i in range(3):\n    %time f(i)\n    !echo \"it's\"\n", "for i in range(3):\n    pass\n    pass\n", 2),
        (BLACK + "%timeit same_shape(a, b)\n", BLACK + "pass\n", 1),
        (DOCSTRING + "!ls\n" + STRINGS, DOCSTRING + "pass\n" + STRINGS, 1),
        ("x = (1,\n     2)\n%who\n", "x = (1,\n     2)\npass\n", 1),
    ],
    ids=["time", "pip", "indented", "after-black", "between-strings", "after-brackets"],
)
def test_magic_lines_that_start_a_logical_line_become_pass(source, expected, removed):
    cell = read_notebook(_nb([_code(source)])).code_cells[0]
    assert cell.source == expected
    assert cell.note == f"{removed} shell escape or magic line(s) were not run"
    compile(cell.source, "<cell>", "exec")


# -- totality over hostile notebooks --------------------------------------------------------------------


def _raw(**top):
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [], **top}).encode()


@pytest.mark.parametrize(
    "data",
    [
        _raw(metadata={"kernelspec": "python3", "language_info": ["python"]}),
        _raw(metadata=[1, 2]),
        _raw(cells=[{"cell_type": "markdown", "source": "x", "metadata": [1]}]),
        _raw(cells=[{"cell_type": "markdown", "source": "x", "metadata": {"tags": "answer:W000-1.2"}}]),
        _raw(cells=[{"cell_type": "markdown", "source": "x", "metadata": {"tags": [1, None, {"a": 1}]}}]),
        _raw(cells=[{"cell_type": "raw", "source": 5}, {"cell_type": ["code"], "source": "x"}, {"cell_type": None}]),
        _raw(cells=[{"cell_type": "code", "source": "x = 1", "metadata": "m", "outputs": 7}]),
    ],
    ids=["kernelspec-str", "metadata-list", "cell-metadata-list", "tags-str", "tags-not-str", "unknown-types",
         "code-metadata-str"],
)
def test_wrong_types_anywhere_are_read_or_refused_with_a_reason(data):
    try:
        nb = read_notebook(data)
    except NotebookError as exc:
        assert exc.reason.isprintable() and len(exc.reason) < 200
    else:
        assert all(isinstance(c.source, str) for c in nb.code_cells)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b'{"nbformat": 4, "cells": [], "x": ' + b"9" * 5000 + b"}", "notebook does not parse (not valid JSON)"),
        (b"[" * 100_000 + b"]" * 100_000, "notebook does not parse (not valid JSON)"),
        (b'{"nbformat": 4, "cells": [], "x": "\xed\xa0\x80\xff"}', "notebook does not parse (not valid JSON)"),
        (_raw(metadata={"kernelspec": {"language": "R\n\x1b[31m"}}),
         "not a Python notebook (kernel language: 'R\\n\\x1b[31m')"),
        (_raw(nbformat="4\n5"), "notebook format '4\\n5' is not supported (need 4)"),
        (_raw(cells=[5]), "notebook does not parse (a cell is not an object)"),
    ],
    ids=["huge-int", "deep", "bad-utf8", "language-controls", "nbformat-controls", "cell-not-object"],
)
def test_hostile_json_gives_a_one_line_reason(data, reason):
    with pytest.raises(NotebookError) as info:
        read_notebook(data)
    assert info.value.reason == reason


def test_lone_surrogates_are_made_valid_where_they_enter():
    cells = [_code("raise ValueError('\\ud800')\n# \ud800"), _md("answer \udfff", tags=["answer:W000-1.2"])]
    nb = read_notebook(json.dumps({"nbformat": 4, "metadata": {}, "cells": cells}).encode())
    assert nb.code_cells[0].source == "raise ValueError('\\ud800')\n# \\ud800"
    assert nb.answers["W000-1.2"].text == "answer \\udfff"
    for text in (nb.code_cells[0].source, nb.answers["W000-1.2"].text):
        text.encode("utf-8")


def test_shape_limits_are_stated_and_cheap():
    import time

    many = _nb([_code("x") for _ in range(15_000)])
    start = time.monotonic()
    with pytest.raises(NotebookError) as info:
        read_notebook(many)
    assert time.monotonic() - start < 5  # refused before any cell is looked at
    assert info.value.reason == "notebook has 15000 cells, more than the 10000 allowed"
    with pytest.raises(NotebookError) as info:
        read_notebook(_nb([_code("x") for _ in range(5_000)]))
    assert info.value.reason == f"notebook has 5000 code cells, more than the {MAX_CODE_CELLS} allowed"
    with pytest.raises(NotebookError) as info:
        read_notebook(_nb([_code("x" * 2**20), _code("y" * 2**20), _code("z")]))
    assert info.value.reason == "code cells hold more than 2 M characters"
    assert len(read_notebook(_nb([_code("x") for _ in range(MAX_CODE_CELLS)])).code_cells) == MAX_CODE_CELLS


UNICODE = st.characters(exclude_categories=())  # lone surrogates too
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=UNICODE)
    | st.sampled_from(["\ud800", "a\udfff", "\ud83d"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["cells", "cell_type", "source", "metadata", "tags", "kernelspec", "language", "nbformat",
                         "language_info", "name", "outputs"]) | st.text(UNICODE, max_size=3), inner, max_size=4),
    max_leaves=30,
)
CELL = st.fixed_dictionaries({
    "cell_type": st.sampled_from(["code", "code", "markdown", "raw", 3, None]),
    "source": st.text(UNICODE) | st.lists(st.text(UNICODE), max_size=3) | JSONISH,
    "metadata": st.fixed_dictionaries({"tags": st.lists(st.text(UNICODE) | st.just("answer:W000-1.2")) | JSONISH})
    | JSONISH,
})


@settings(max_examples=100, deadline=None)
@given(st.fixed_dictionaries({"nbformat": st.sampled_from([4] * 6 + ["4", None]), "metadata": JSONISH,
                              "cells": st.lists(CELL, max_size=5) | st.lists(CELL | JSONISH, max_size=3)}) | JSONISH)
def test_any_json_reads_or_raises_notebook_error(nb):
    data = json.dumps(nb).encode("utf-8", "surrogatepass")
    try:
        read = read_notebook(data)
    except NotebookError as exc:
        assert exc.reason.isprintable() and 0 < len(exc.reason) < 200
        return
    for cell in read.code_cells:
        cell.source.encode("utf-8")
    for answer in read.answers.values():
        answer.text.encode("utf-8") and answer.qid.encode("utf-8")


def test_defined_names_come_from_the_ast_or_from_definition_lines():
    assert defined_names("import torch.nn as nn, os.path\nfrom x import (a, b as c)\nif True:\n    def f(): g = 1\n"
                         "else:\n    class K: pass\nx, (y, *z) = 1, (2, 3)\nn: int = 1\n") == \
        {"nn", "os", "a", "c", "f", "K", "x", "y", "z", "n"}
    assert defined_names("def f(L):\n    return L @ L.mT +\nclass K:\nvalue = 3\nother == 4\n") == {"f", "K", "value"}


def test_only_newlines_end_lines_for_magics():
    source = 's = """a\x0c!not a command\x1c%nor a magic\u2028!x"""\n!ls\r\n'
    cell = read_notebook(_nb([_code(source)])).code_cells[0]
    assert cell.source == 's = """a\x0c!not a command\x1c%nor a magic\u2028!x"""\npass\n'
