"""Answer cells as the template lays them out, for notebooks built in tests."""


def answer_cells(answers: dict[str, str | None], untag: set[str] = frozenset()) -> list[dict]:
    """For each written id: its heading cell, then (unless the text is None) its answer cell, tagged unless in ``untag``."""
    cells = []
    for qid, text in answers.items():
        cells.append({"cell_type": "markdown", "metadata": {}, "source": f"**Answer {qid}** (3 points)"})
        if text is not None:
            meta = {} if qid in untag else {"tags": [f"answer:{qid}"]}
            cells.append({"cell_type": "markdown", "metadata": meta, "source": text})
    return cells
