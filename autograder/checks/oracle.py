"""The truth a check compares against, injected into its ``Context``: what a check author must know.

A check never imports ``reference``. It asks its context:

- ``ctx.expected(name, *args, **kwargs)``: the reference's ``name`` (a
  contract name) on these arguments, detached (no autograd graph);
- ``ctx.expected_grad(name, *args, wrt=leaves, cotangent=c, output=k, **kwargs)``:
  that value and the gradients of output ``k`` (the whole output when
  ``None``) with respect to each tensor of ``leaves`` (tensors that require
  grad and that the arguments are built from), contracted with ``c`` (``None``
  for a scalar); a leaf the output does not depend on gets ``None``.

Behind the context is an ``Oracle``: in the grader a ``LiveOracle``
(``checks.live``), which calls the reference solution; in the student bundle a
``TapeOracle`` (``checks.tape``), which plays back the values and gradients
recorded when the bundle was built, by running the public checks on the
reference with a recording ``TapeOracle``. Examples drawn by ``for_all`` go
through the oracle as well: hypothesis draws them live and while recording;
the tape plays the recorded ones, in order, without shrinking.

So, in a check with ``public=True`` (hidden checks are free of these rules):

1. Ask the same questions, in the same order, for each example: the
   arguments come from the example and constants, never from the student's
   reply (the tape holds answers to the questions asked of the reference
   solution). Playing checks each question's name and the dtypes and shapes
   of its arguments; a mismatch is a ``TapeError``, a grader bug.
2. Every value and gradient must be wire-encodable (tensors, numbers,
   strings, tuples, lists, dicts of those).
3. Strategies that draw examples have no oracle: they do not use the
   reference (ask for what depends on it in the check body).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import torch

Grads = tuple[torch.Tensor | None, ...]


class TapeError(RuntimeError):
    """The recorded values do not match what a check asks for (a grader bug, never a student's)."""


class Oracle(abc.ABC):
    """Answers a check's questions about the reference; follows the checks and examples as they start."""

    def begin_check(self, key: str) -> None:
        """Check ``key`` (``qid/name``) starts."""

    def begin_example(self, example: Any) -> None:
        """An example of the current check starts (drawn by hypothesis, or played)."""

    def recorded_examples(self) -> list[Any] | None:
        """The examples to run the current check on, or None to let hypothesis draw them."""
        return None

    def carried(self, names: tuple[str, ...], seed: int) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """The answerer of a call's questions about the student's graded functions ``names`` (error carried
        forward, ``checks.carried``): only the grader, which has the reference, carries errors forward."""
        raise TapeError("error carried forward needs the reference solution")

    @abc.abstractmethod
    def expected(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``reference.<name>(*args, **kwargs)``, detached."""

    @abc.abstractmethod
    def expected_grad(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                      wrt: Sequence[torch.Tensor], cotangent: torch.Tensor | None,
                      output: int | None) -> tuple[Any, Grads]:
        """The detached value and the vector-Jacobian product of output ``output`` (see the module docstring)."""


def detached(value: Any) -> Any:
    """``value`` with every tensor in it (also in tuples and lists) detached from its graph."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(detached(v) for v in value)
    return value
