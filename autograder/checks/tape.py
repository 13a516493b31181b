"""Recorded public checks: what lets students run them without the reference.

When the student bundle is built, the public checks run once against the
reference solution with a ``Tape`` recording: for each check, the examples
hypothesis drew and, in order, every value the check body got from
``reference``. In the bundle, the same check code runs with the tape playing:
examples come from the tape (first failing one reported, no shrinking) and
``reference`` is a stub that hands back the recorded values. The bundle thus
holds the public checks' expected values and no solution code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from autograder.sandbox.runtime import wire

TAPE_FILE = Path(__file__).with_name("public_tape.json")


class TapeError(RuntimeError):
    """The recorded values do not match what a check asks for (a grader bug, never a student's)."""


def _keep_fn(kind: str, params: dict[str, Any]) -> wire.Fn:
    return wire.Fn(kind, params)


class Tape:
    """Examples and reference values of the public checks, recording or playing."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.recording = data is None
        self.data: dict[str, Any] = {} if data is None else data
        self._check: str | None = None
        self._example = 0
        self._call = 0
        self.in_body = False

    def start_check(self, key: str) -> None:
        self._check, self._example, self._call = key, -1, 0
        if self.recording:
            self.data[key] = {"examples": [], "values": []}
        elif key not in self.data:
            raise TapeError(f"no recording for check {key!r}")
        self.start_example(None)

    def start_example(self, example: Any) -> None:
        """Begin an example (``None`` for a check without drawn examples)."""
        self._example += 1
        self._call = 0
        if self.recording:
            entry = self.data[self._check]
            if example is not None:
                entry["examples"].append(wire.encode(example))
            if len(entry["values"]) <= self._example:
                entry["values"].append([])

    def examples(self) -> list[Any]:
        """The recorded examples of the current check (playing)."""
        return [wire.decode(e, build_fn=_keep_fn) for e in self.data[self._check]["examples"]]

    def reference(self, name: str, compute: Callable[[], Any] | None = None) -> Any:
        """The next reference value of this example: computed and recorded, or played back."""
        values = self.data[self._check]["values"]
        if self.recording:
            value = compute()
            if any(t.requires_grad for t in _tensors(value)):
                raise TapeError(f"{self._check}: a public check differentiates through reference.{name}; "
                                "compute the expected gradient in a hidden check instead")
            values[self._example].append([name, wire.encode(value)])
            return value
        try:
            recorded_name, encoded = values[self._example][self._call]
        except IndexError:
            raise TapeError(f"{self._check}: no recorded value for call {self._call + 1} of example {self._example}") from None
        if recorded_name != name:
            raise TapeError(f"{self._check}: recorded reference.{recorded_name}, asked for reference.{name}")
        self._call += 1
        return wire.decode(encoded)

    def dumps(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), sort_keys=True)


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def _load() -> Tape | None:
    if TAPE_FILE.is_file():
        return Tape(json.loads(TAPE_FILE.read_text()))
    return None


#: The playing tape of a student bundle, or None in the grader (set while recording).
TAPE: Tape | None = _load()


@contextmanager
def recording(reference_module: Any, names: list[str]) -> Iterator[Tape]:
    """Record reference values of checks run inside this block (patches ``reference_module``)."""
    global TAPE
    tape = Tape()
    originals = {n: getattr(reference_module, n) for n in names}

    def recorded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if tape.in_body:
                return tape.reference(name, lambda: original(*args, **kwargs))
            return original(*args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(reference_module, name, recorded(name, original))
    TAPE = tape
    try:
        yield tape
    finally:
        TAPE = None
        for name, original in originals.items():
            setattr(reference_module, name, original)
