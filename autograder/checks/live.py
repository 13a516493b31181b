"""The grader's oracle: the reference solution itself (the student bundle ships neither)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

import reference
from autograder.checks import carried
from autograder.checks.oracle import Grads, Oracle, detached
from autograder.contract import CONTRACT

#: The reference's function of every contract name that is a function.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    e.name: getattr(reference, e.name) for e in CONTRACT if callable(getattr(reference, e.name, None))
}


def function(name: str) -> Callable[..., Any]:
    """The reference's function ``name`` (a contract name)."""
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a function of the contract") from None


class LiveOracle(Oracle):
    """Calls the reference solution."""

    def carried(self, names: tuple[str, ...], seed: int) -> carried.Oracle:
        return carried.Oracle(names, seed, FUNCTIONS)

    def expected(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return detached(function(name)(*args, **kwargs))

    def expected_grad(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                      wrt: Sequence[torch.Tensor], cotangent: torch.Tensor | None,
                      output: int | None) -> tuple[Any, Grads]:
        value = function(name)(*args, **kwargs)
        differentiated = value if output is None else value[output]
        grads = torch.autograd.grad(differentiated, list(wrt), cotangent, allow_unused=True)
        return detached(value), tuple(grads)
