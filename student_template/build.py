"""Build the student notebook and the solution notebook from their text sources.

    python student_template/build.py          # writes every notebook
    python student_template/build.py --check  # exit 1 if one is out of date

``assignment_source.md`` holds the notebook's cells between marker lines
(``<!-- markdown -->``, ``<!-- code -->``, ``<!-- code: NAME -->``,
``<!-- answer: ID -->``). The template keeps the stubs; the solution
replaces each graded stub with the reference implementation of NAME (its
source and the private helpers, constants and imports it needs, read from
``reference/``) and each answer with ``model_answers.md``. So the solution
notebook cannot drift from ``reference/``: a test rebuilds and compares.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "assignment_source.md"
ANSWERS = HERE / "model_answers.md"
TEMPLATE_OUT = HERE / "assignment.ipynb"
EXAMPLES = ROOT / "examples" / "submissions"
SOLUTION_OUT = EXAMPLES / "solution.ipynb"

_MARKER = re.compile(r"^<!-- (markdown|code|answer)(?::\s*(\S+))? -->\s*$")
_KERNEL = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def parse_cells(text: str) -> list[tuple[str, str | None, str]]:
    """``(kind, label, body)`` for each cell of a marker-separated source."""
    cells: list[tuple[str, str | None, list[str]]] = []
    for line in text.splitlines():
        m = _MARKER.match(line)
        if m:
            cells.append((m.group(1), m.group(2), []))
        elif cells:
            cells[-1][2].append(line)
    return [(kind, label, "\n".join(body).strip("\n")) for kind, label, body in cells]


class _ModuleIndex:
    """Top-level definitions of a reference module: name → (source segment, names it uses)."""

    def __init__(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        self.source = Path(module.__file__).read_text()
        tree = ast.parse(self.source)
        self.defs: dict[str, tuple[str, set[str]]] = {}
        self.imports: dict[str, str] = {}
        self.reference_imports: dict[str, str] = {}
        for node in tree.body:
            segment = ast.get_source_segment(self.source, node)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = (alias.asname or alias.name).split(".")[0]
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reference"):
                        self.reference_imports[bound] = node.module
                    elif not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                        self.imports[bound] = segment if len(node.names) == 1 else _single_import(node, alias)
                continue
            for name in _bound_names(node):
                decorated = segment
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.decorator_list:
                    start = node.decorator_list[0].lineno - 1
                    decorated = "\n".join(self.source.splitlines()[start : node.end_lineno])
                used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
                    n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                }
                self.defs[name] = (decorated, used - {name})


def _single_import(node: ast.ImportFrom | ast.Import, alias: ast.alias) -> str:
    as_part = f" as {alias.asname}" if alias.asname else ""
    if isinstance(node, ast.ImportFrom):
        return f"from {node.module} import {alias.name}{as_part}"
    return f"import {alias.name}{as_part}"


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


class SolutionWriter:
    """Emits reference definitions in dependency order, each once per notebook."""

    def __init__(self) -> None:
        self.indexes: dict[str, _ModuleIndex] = {}
        self.emitted: set[tuple[str, str]] = set()
        self.imports_done: set[str] = set()

    def _index(self, module: str) -> _ModuleIndex:
        if module not in self.indexes:
            self.indexes[module] = _ModuleIndex(module)
        return self.indexes[module]

    def parts_for(self, name: str) -> tuple[str, str]:
        """``(support, definition)``: what ``name`` needs that was not emitted yet, and ``name`` itself."""
        imports: list[str] = []
        blocks: list[str] = []
        self._emit(_module_of(name), name, imports, blocks)
        support = "\n".join(imports) + ("\n\n\n" if imports and blocks[:-1] else "") + "\n\n\n".join(blocks[:-1])
        return support, blocks[-1]

    def code_for(self, name: str) -> str:
        """The reference ``name`` with everything it needs, as one cell's code."""
        support, definition = self.parts_for(name)
        return f"{support}\n\n\n{definition}" if support else definition

    def _emit(self, module: str, name: str, imports: list[str], blocks: list[str]) -> None:
        if (module, name) in self.emitted:
            return
        self.emitted.add((module, name))
        index = self._index(module)
        segment, used = index.defs[name]
        for dep in sorted(used):
            if dep in index.defs:
                self._emit(module, dep, imports, blocks)
            elif dep in index.reference_imports:
                self._emit(index.reference_imports[dep], dep, imports, blocks)
            elif dep in index.imports and index.imports[dep] not in self.imports_done:
                self.imports_done.add(index.imports[dep])
                imports.append(index.imports[dep])
        blocks.append(segment)


def _module_of(name: str) -> str:
    for module in ("reference.kl", "reference.gaussian", "reference.gmvae", "reference.vq", "reference.vae"):
        if name in vars(importlib.import_module(module)):
            return module
    raise KeyError(name)


def _cell(kind: str, body: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}, "source": body}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def build(solution: bool, replace: dict[str, str] | None = None) -> dict:
    """The template (``solution=False``) or the solution notebook as a JSON-ready dict.

    In the solution, the private helpers and imports that the reference
    functions share go in one cell after the setup cell, so each graded cell
    holds just its function; ``replace`` swaps a graded cell's code (the
    example class's flawed students).
    """
    answers = {label: body for kind, label, body in parse_cells(ANSWERS.read_text()) if kind == "answer"}
    source = parse_cells(SOURCE.read_text())
    writer = SolutionWriter()
    definitions: dict[str, str] = {}
    support: list[str] = []
    for kind, label, _ in source:
        if solution and kind == "code" and label is not None:
            needs, definitions[label] = writer.parts_for(label)
            support += [needs] if needs else []
    cells = []
    for kind, label, body in source:
        if kind == "markdown":
            cells.append(_cell("markdown", body))
        elif kind == "answer":
            cells.append(_cell("markdown", _model_answer(answers[label]) if solution else body, [f"answer:{label}"]))
        elif label is None:
            cells.append(_cell("code", body))
            if support and len([c for c in cells if c["cell_type"] == "code"]) == 1:
                cells.append(_cell("code", "# Helpers shared by the solutions below.\n" + "\n\n\n".join(support)))
        else:
            code = (replace or {}).get(label, definitions.get(label, body))
            cells.append(_cell("code", code.strip("\n") if solution else body, [f"graded:{label}"]))
    return {"cells": cells, "metadata": _KERNEL, "nbformat": 4, "nbformat_minor": 5}


def _model_answer(text: str) -> str:
    """A model answer with the numbers it quotes computed by ``reference.kl_optima``."""
    if "M_STAR" in text:
        from reference.kl_optima import mode_seeking_onset

        text = text.replace("M_STAR", f"{mode_seeking_onset():.2f}")
    return text


def notebooks() -> dict[Path, dict]:
    """Every notebook this script writes: template, solution, blank and flawed example students."""
    sys.path.insert(0, str(ROOT))
    from examples.flawed import FLAWS

    out = {TEMPLATE_OUT: build(False), SOLUTION_OUT: build(True), EXAMPLES / "blank_template.ipynb": build(False)}
    for flaw in FLAWS:
        out[EXAMPLES / f"{flaw.student}.ipynb"] = build(True, {flaw.name: flaw.source})
    return out


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # the quadrature behind the quoted numbers is many small ops: threads only slow it
    stale = []
    for path, nb in notebooks().items():
        text = render(nb)
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"out of date: {path.relative_to(ROOT)} (run python student_template/build.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
