"""A function returning a huge tuple, list or dict costs its check, with a reason, in about a second (issue 11).

The student side sends a value of more than ``wire.MAX_ITEMS`` items as ``$big`` (after one ``len``);
the grader counts items while decoding and refuses a frame whose structure is larger before parsing.
"""

from __future__ import annotations

import json
import time

import pytest

from autograder.checks import QUESTIONS
from autograder.checks.framework import Status
from autograder.local import LocalSession, run_public_checks
from autograder.sandbox.runtime import frames, wire

HUGE = 12_000_000


def test_the_student_side_sends_a_huge_tuple_as_its_size_after_one_len():
    value = (0,) * HUGE
    start = time.monotonic()
    encoded = wire.encode(value, lenient=True)
    assert time.monotonic() - start < 0.5
    assert encoded == {"$big": "tuple", "n": HUGE, "exact": True}
    assert str(wire.decode(encoded)) == f"{HUGE} items; at most {wire.MAX_ITEMS} allowed"


def test_nested_and_dict_values_are_bounded_too():
    nested = [[0] * 1000 for _ in range(200)]  # 200 201 values, no container over the budget alone
    big = wire.decode(wire.encode(nested, lenient=True))
    assert isinstance(big, wire.Oversized) and not big.exact and big.items > wire.MAX_ITEMS
    assert wire.decode(wire.encode({k: k for k in range(wire.MAX_ITEMS + 1)}, lenient=True)).items == wire.MAX_ITEMS + 1
    with pytest.raises(wire.WireError, match="at most"):
        wire.encode([0] * (wire.MAX_ITEMS + 1))  # the grader's own side raises
    small = ([1.0] * 1000, {"a": (1, 2)})
    assert wire.decode(wire.encode(small, lenient=True)) == small


@pytest.mark.parametrize("obj", [[0] * (wire.MAX_ITEMS + 1), {"$tuple": [0] * (wire.MAX_ITEMS + 1)},
                                 {"$dict": [[k, 0] for k in range(wire.MAX_ITEMS + 1)]},
                                 [[0] * 60_000, [0] * 60_000]])
def test_the_grader_counts_items_while_decoding(obj):
    with pytest.raises(wire.WireError, match="at most"):
        wire.decode(obj)


def test_a_forged_frame_of_millions_of_values_is_refused_before_parsing():
    body = b'{"ok":true,"value":{"$tuple":[' + b"0," * 2_000_000 + b'0]}}'
    start = time.monotonic()
    with pytest.raises(ValueError, match="values"):
        frames.loads(body)
    assert time.monotonic() - start < 2.0
    text = json.dumps({"ok": True, "value": "," * 3_000_000}).encode()  # commas inside a string are not values
    assert frames.loads(text)["value"] == "," * 3_000_000


def test_a_function_returning_a_huge_tuple_costs_its_checks_with_a_reason_quickly():
    calls = []

    def quantize(z_e, codebook):
        calls.append(1)
        return (0,) * HUGE

    session = LocalSession({"__name__": "__main__", "quantize": quantize})
    start = time.monotonic()
    results = run_public_checks(session, ("D1",))
    assert time.monotonic() - start < 20.0  # about a second per check on an idle core
    # One request per check; a ``keeps_inputs`` check's request runs the function twice (on the same arguments)
    twice = sum(c.keeps_inputs for c in QUESTIONS["D1"] if any(r.check == c.name for r in results))
    assert len(calls) == len(results) + twice, "a refused value is not asked for again within its check"
    assert results and all(r.status == Status.FAILED for r in results)
    assert all(r.failure.summary == f"quantize returned {HUGE} items; at most {wire.MAX_ITEMS} allowed"
               for r in results), [r.failure.summary for r in results]
