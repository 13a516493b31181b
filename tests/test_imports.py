"""Every module of ``autograder/`` and ``reference/`` imports, and ``autograder``'s modules form no import circle.

The graph is built from every ``import`` statement of a module: at module
level, under ``if``/``try``/``TYPE_CHECKING``, and inside functions, so a
circle cannot hide in a late import or in one made only for type hints (share
the piece both sides need from a module below them, or type with a
``Protocol``). An edge goes to the module named, not to the packages around it.
The graph of what runs when a module loads (``_load_time_statements``) is the
one that decides what the student process and the contract pull in.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path
from typing import Iterator

import pytest

from autograder.contract import CONTRACT

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


AUTOGRADER = modules("autograder")
REFERENCE = modules("reference")


def _load_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of ``body`` that run when the module loads (into if/try/with/for, not into defs)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _load_time_statements(node.orelse)
            continue
        yield node
        for block in ("body", "orelse", "finalbody"):
            yield from _load_time_statements(getattr(node, block, []))
        for handler in getattr(node, "handlers", []):
            yield from _load_time_statements(handler.body)


def _targets(node: ast.stmt, here: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` an import statement loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & known
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        base = here.split(".")[: len(here.split(".")) - node.level + (1 if is_package else 0)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    # ``from package import submodule`` loads the submodule; ``from module import name`` the module
    return {f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names} & known


def import_graph(files: dict[str, Path], *, load_time: bool = True) -> dict[str, set[str]]:
    """Module → the modules of ``files`` it imports when it loads (``load_time``) or anywhere in it."""
    known = set(files)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        statements = _load_time_statements(tree.body) if load_time else ast.walk(tree)
        graph[name] = set().union(*(_targets(s, name, path.name == "__init__.py", known)
                                    for s in statements if isinstance(s, ast.stmt))) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` as a path ``[a, b, …, a]``, or ``[]``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_no_import_circle_among_autograder_modules():
    assert find_cycle(import_graph(AUTOGRADER, load_time=False)) == []


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_graph_sees_relative_and_conditional_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "autograder"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from typing import TYPE_CHECKING\n"
                                     "if TYPE_CHECKING:\n    from autograder import b\n")
    (pkg / "b.py").write_text("try:\n    from .sub import c\nexcept ImportError:\n    pass\n"
                              "def f():\n    import autograder\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import b\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph = import_graph(modules("autograder"))
    assert graph == {"autograder": set(), "autograder.b": {"autograder.sub.c"}, "autograder.sub": set(),
                     "autograder.sub.c": {"autograder.b"}}
    assert find_cycle(graph) == ["autograder.b", "autograder.sub.c", "autograder.b"]
    everywhere = import_graph(modules("autograder"), load_time=False)  # type hints and functions too
    assert everywhere["autograder"] == {"autograder.b"} and everywhere["autograder.b"] == {"autograder.sub.c", "autograder"}
    assert find_cycle(everywhere) == ["autograder", "autograder.b", "autograder"]


def test_the_sandbox_and_the_contract_do_not_import_reference():
    """The student process and the bundle's contract load without the solution code."""
    graph = import_graph(AUTOGRADER | REFERENCE)
    reachable, todo = set(), [m for m in graph if m.startswith("autograder.sandbox") or m == "autograder.contract"]
    while todo:
        m = todo.pop()
        if m not in reachable:
            reachable.add(m)
            todo.extend(graph[m])
    assert not {m for m in reachable if m.startswith("reference")}


def test_reference_exports_exactly_the_contract_names():
    import reference

    public = {n for n, v in vars(reference).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == {e.name for e in CONTRACT}


@pytest.mark.parametrize("name", [m for m in AUTOGRADER | REFERENCE if not m.endswith("__main__")])
def test_every_module_imports(name):
    """``__main__`` files run a program when imported: they are only parsed (by the graph)."""
    importlib.import_module(name)
