"""Recorded public checks: what lets students run them without the reference.

When the student bundle is built, the public checks run once against the
reference solution with a recording ``TapeOracle``: for each check, the
examples hypothesis drew and, per example in order, every question the check
asked its oracle (name, argument dtypes and shapes) with the answer (value,
and gradients for ``expected_grad``). In the bundle, the same check code runs
with a playing ``TapeOracle`` (``default_oracle``): examples come from the
tape (first failing one reported, no shrinking) and each question gets its
recorded answer. The bundle thus holds the public checks' expected values
and no solution code. The rules this puts on a public check are in
``checks.oracle``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from autograder.checks.oracle import Grads, Oracle, TapeError
from autograder.sandbox.runtime import wire

TAPE_FILE = Path(__file__).with_name("public_tape.json")


def _keep_fn(kind: str, params: dict[str, Any]) -> wire.Fn:
    return wire.Fn(kind, params)


def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The dtypes and shapes of a question's arguments (what playing checks: values may differ in the last bit
    from one machine to another, their kinds may not)."""

    def of(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
        if isinstance(value, (tuple, list)):
            return "(" + ",".join(of(v) for v in value) + ")"
        return type(value).__name__

    return ",".join([of(a) for a in args] + [f"{k}={of(v)}" for k, v in sorted(kwargs.items())])


class TapeOracle(Oracle):
    """The public checks' examples and answers: recorded from ``source``, or played from ``data``."""

    def __init__(self, data: dict[str, Any] | None = None, source: Oracle | None = None) -> None:
        if (data is None) == (source is None):
            raise ValueError("a tape records from a source or plays data, not both")
        self.source = source
        self.data: dict[str, Any] = {} if data is None else data
        self._check: str | None = None
        self._example = 0
        self._question = 0

    @property
    def recording(self) -> bool:
        return self.source is not None

    def begin_check(self, key: str) -> None:
        if self.recording:
            self.data[key] = {"examples": [], "values": []}
        elif key not in self.data:
            raise TapeError(f"no recording for check {key!r}")
        self._check, self._example = key, -1
        self.begin_example(None)

    def begin_example(self, example: Any) -> None:
        """Example ``example`` starts (``None``: the questions asked before any example)."""
        self._example += 1
        self._question = 0
        if self.recording:
            record = self._record()
            if example is not None:
                record["examples"].append(wire.encode(example))
            record["values"].append([])

    def recorded_examples(self) -> list[Any] | None:
        if self.recording:
            return None
        return [wire.decode(e, build_fn=_keep_fn) for e in self._record()["examples"]]

    def expected(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.recording:
            value = self.source.expected(name, args, kwargs)
            self._write(name, args, kwargs, [wire.encode(value)])
            return value
        return wire.decode(self._read(name, args, kwargs, 1)[0])

    def expected_grad(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                      wrt: Sequence[torch.Tensor], cotangent: torch.Tensor | None,
                      output: int | None) -> tuple[Any, Grads]:
        if self.recording:
            value, grads = self.source.expected_grad(name, args, kwargs, wrt=wrt, cotangent=cotangent,
                                                     output=output)
            self._write(name, args, kwargs, [wire.encode(value), wire.encode(list(grads))])
            return value, grads
        value, grads = self._read(name, args, kwargs, 2)
        return wire.decode(value), tuple(wire.decode(grads))

    def _record(self) -> dict[str, Any]:
        if self._check is None:
            raise TapeError("a question asked outside a check")
        return self.data[self._check]

    def _write(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], answer: list[Any]) -> None:
        self._record()["values"][self._example].append([name, signature(args, kwargs), *answer])

    def _read(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], parts: int) -> list[Any]:
        where = f"{self._check}, example {self._example}, question {self._question + 1}"
        try:
            recorded = self._record()["values"][self._example][self._question]
        except IndexError:
            raise TapeError(f"{where}: nothing recorded for {name}") from None
        asked = [name, signature(args, kwargs)]
        if recorded[:2] != asked or len(recorded) != 2 + parts:
            raise TapeError(f"{where}: recorded {recorded[:2]}, asked {asked}")
        self._question += 1
        return recorded[2:]


@functools.cache
def default_oracle() -> Oracle:
    """This installation's oracle: the tape of the student bundle when there is one, else the live reference."""
    if TAPE_FILE.is_file():
        return TapeOracle(json.loads(TAPE_FILE.read_text()))
    # Not at the top: the student bundle ships the tape and no ``live`` module (no reference solution).
    from autograder.checks.live import LiveOracle

    return LiveOracle()
