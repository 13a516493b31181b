"""Reading submissions: code cells, magics, answers, and one-line reasons for bad files."""

import json

import pytest

from autograder.notebook import NotebookError, read_notebook


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
