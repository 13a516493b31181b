"""The guard's quick test (``Snapshot.unchanged``) never lets a change through that ``first_change`` sees.

A module of its own is snapshotted and tampered with in every way ``first_change``
looks for (and in ways it ignores); ``verify`` must say exactly what ``first_change``
says, and ``unchanged`` must be False whenever there is something to say.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.sandbox.runtime import guard

SOURCE = '''
import math

LIMIT = 3

def scaled(x, k=2, *, by=1):
    return math.floor(abs(x) * k * by) + LIMIT

def counter():
    seen = []
    def add(x):
        seen.append(len(str(x)))
        return sum(seen)
    return add

add = counter()

class Box:
    size = 1

    def area(self):
        return self.size * scaled(self.size)

    @staticmethod
    def unit():
        return max(1, LIMIT)
'''


def _module() -> types.ModuleType:
    module = types.ModuleType("guarded")
    exec(compile(SOURCE, "<guarded>", "exec"), vars(module))  # noqa: S102 - the test's own code
    return module


def _set(owner: object, name: str, value: object) -> Callable[[], None]:
    setattr(owner, name, value)
    return lambda: None


def _tamperings(m: types.ModuleType) -> dict[str, Callable[[], object]]:
    """Each way of changing what a snapshot of ``m`` holds (the last few change nothing it judges)."""
    return {
        "replace a global": lambda: setattr(m, "LIMIT", 4),
        "add a global": lambda: setattr(m, "extra", 1),
        "delete a global": lambda: delattr(m, "LIMIT"),
        "rebind a module the code uses": lambda: setattr(m, "math", types.ModuleType("math")),
        "shadow a builtin in the globals": lambda: setattr(m, "abs", abs),
        "replace a builtin": lambda: setattr(builtins, "max", lambda *a: 0),
        "rewrite a function's code": lambda: setattr(m.scaled, "__code__", (lambda x, k=2, *, by=1: x).__code__),
        "replace its defaults": lambda: setattr(m.scaled, "__defaults__", (3,)),
        "replace its keyword defaults": lambda: setattr(m.scaled, "__kwdefaults__", {"by": 2}),
        "fill a closure cell": lambda: setattr(m.add.__closure__[0], "cell_contents", []),
        "empty a closure cell": lambda: delattr(m.add.__closure__[0], "cell_contents"),
        "replace a class attribute": lambda: setattr(m.Box, "size", 2),
        "add a method": lambda: setattr(m.Box, "volume", lambda self: 0),
        "replace a method": lambda: setattr(m.Box, "area", lambda self: 0),
        "change a dunder": lambda: setattr(m, "__doc__", "changed"),
        "add a dunder": lambda: setattr(m, "__extra__", 1),
        "nothing": lambda: None,
    }


@contextmanager
def _restoring(m: types.ModuleType) -> Iterator[None]:
    """Put back ``m``, its class, its functions and ``builtins.max`` as they were."""
    space, box = dict(vars(m)), dict(vars(m.Box))
    functions = {fn: (fn.__code__, fn.__defaults__, fn.__kwdefaults__) for fn in (m.scaled, m.add)}
    cell, contents, real_max = m.add.__closure__[0], m.add.__closure__[0].cell_contents, builtins.max
    try:
        yield
    finally:
        builtins.max = real_max
        vars(m).clear()
        vars(m).update(space)
        for key in set(vars(m.Box)) - set(box):
            delattr(m.Box, key)
        for key, value in box.items():
            if not key.startswith("__"):
                setattr(m.Box, key, value)
        for fn, (code, defaults, kwdefaults) in functions.items():
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
        cell.cell_contents = contents


MODULE = _module()
NAMES = list(_tamperings(MODULE))


def _outcome(snapshot: guard.Snapshot) -> str | None:
    try:
        snapshot.verify("measured")
    except guard.Tampered as exc:
        return str(exc)
    return None


def test_an_untouched_snapshot_passes_the_quick_test():
    assert guard.Snapshot((MODULE,)).unchanged()
    # The runtime's own snapshot, in a fresh process as in the sandbox (other tests here patch its modules).
    fresh = subprocess.run([sys.executable, "-c", "from autograder.sandbox.runtime import child\n"
                            "assert child._SNAPSHOT[0].unchanged()"], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, "the runtime's own snapshot takes the slow path on every measurement: " + fresh.stderr


@pytest.mark.parametrize("name", NAMES)
def test_verify_says_what_first_change_says(name):
    snapshot = guard.Snapshot((MODULE,))
    with _restoring(MODULE):
        _tamperings(MODULE)[name]()
        found = snapshot.first_change()
        assert not (found is not None and snapshot.unchanged()), f"the quick test let through: {found}"
        assert _outcome(snapshot) == (None if found is None else f"{found} by student code; measured")
    assert snapshot.unchanged()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
def test_any_mix_of_changes_is_judged_as_first_change_judges_it(names):
    snapshot = guard.Snapshot((MODULE,))
    with _restoring(MODULE):
        for name in names:
            try:
                _tamperings(MODULE)[name]()
            except (AttributeError, ValueError):  # deleted or emptied twice
                pass
        found = snapshot.first_change()
        if found is not None:
            assert not snapshot.unchanged()
        assert _outcome(snapshot) == (None if found is None else f"{found} by student code; measured")


def test_changes_first_change_ignores_pass():
    snapshot = guard.Snapshot((MODULE,))
    for name in ("change a dunder", "add a dunder", "nothing"):
        with _restoring(MODULE):
            _tamperings(MODULE)[name]()
            assert _outcome(snapshot) is None, name
