"""A check's call encodes each argument once: the request carries the very encoding the call's seed and its
shown text come from, and the seed is still the one of the sorted JSON of that encoding."""

from __future__ import annotations

import json
import time
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks.framework import PUBLIC, QUESTION_SECONDS, Check, Context, derive_seed
from autograder.sandbox.runtime import wire
from autograder.sandbox.calls import Session

SCALARS = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, width=32), st.text(max_size=4), st.none())
TENSORS = st.builds(lambda shape, dtype: (torch.arange(int(torch.tensor(shape).prod()) if shape else 1) - 1)
                    .reshape(shape).to(dtype), st.lists(st.integers(0, 3), max_size=3),
                    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool]))
VALUES = st.recursive(SCALARS | TENSORS, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                      | st.builds(lambda p: wire.Fn("normal", p), st.dictionaries(st.sampled_from("ab"), inner)),
                      max_leaves=6)
KWARGS = st.dictionaries(st.sampled_from(["x", "mu", "L", "z_e", "n"]), VALUES, max_size=4)


class Recording(Session):
    """A session that keeps every request and answers each call with 1."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        self.requests.append(request)
        return {"ok": True, "value": 1}


def _context(session: Session, seed: int = 7) -> Context:
    check = Check("B2", "a check", 1.0, PUBLIC, "", lambda ctx: None)
    return Context(session, check, seed, time.monotonic() + QUESTION_SECONDS)


@settings(max_examples=60, deadline=None)
@given(KWARGS, st.integers(0, 2), st.integers(0, 2**31 - 1))
def test_the_request_carries_the_encoding_the_seed_comes_from(kwargs, attempt, seed):
    session = Recording()
    _context(session, seed).reply(attempt=attempt, **kwargs)
    (request,) = session.requests
    encoded = {k: wire.encode(v) for k, v in kwargs.items()}
    assert request["kwargs"] == encoded and request["args"] == []
    blob = json.dumps(encoded, sort_keys=True)  # the seed of every call so far: the golden grades depend on it
    assert request["seed"] == (derive_seed(seed, blob, attempt) if attempt else derive_seed(seed, blob))


def test_each_argument_is_encoded_once_per_call(monkeypatch):
    kwargs = {"mu": torch.zeros(2), "L": torch.eye(2), "q": wire.Fn("normal", {"loc": torch.ones(1)})}
    encoded: list[int] = []
    encode = wire.encode

    def counting(value: Any, *args: Any, **kw: Any) -> Any:
        encoded.extend(k for k, v in kwargs.items() if v is value)
        return encode(value, *args, **kw)

    monkeypatch.setattr(wire, "encode", counting)
    session = Recording()
    _context(session).reply(**kwargs)
    assert sorted(encoded) == sorted(kwargs)
    assert session.requests[0]["kwargs"] == {k: encode(v) for k, v in kwargs.items()}


def test_a_call_without_its_encoding_encodes_its_arguments_itself():
    session = Recording()
    session.call("f", (torch.ones(1),), {"x": (1, torch.zeros(2))}, seed=3)
    (request,) = session.requests
    assert request["args"] == [wire.encode(torch.ones(1))]
    assert request["kwargs"] == {"x": wire.encode((1, torch.zeros(2)))} and request["seed"] == 3
