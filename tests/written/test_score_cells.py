"""A TA's score cell is read strictly: the number typed, shown back exactly, never "-0" or another number."""

import math

from hypothesis import given
from hypothesis import strategies as st

from autograder.escape import parse_score
from autograder.reports.totals import number

TYPED = st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,2}0*)?", fullmatch=True)


@given(TYPED, st.sampled_from(["", " ", "\t", "\u00a0"]), st.sampled_from(["", " ", "\t"]))
def test_every_plain_score_is_read_as_typed_and_shown_back_exactly(text, before, after):
    score = parse_score(before + text + after)
    assert score == float(text) and parse_score(number(score)) == score


@given(st.text() | st.builds("".join, st.lists(st.sampled_from("0123456789.-+_e ١３\u00a0"), max_size=8)))
def test_any_cell_is_refused_or_a_non_negative_number_that_reads_back(text):
    score = parse_score(text)
    if isinstance(score, str):
        assert score.startswith("score ") and "\n" not in score
        return
    shown = number(score)
    assert math.copysign(1.0, score) == 1.0 and not shown.startswith("-")
    assert parse_score(shown) == score == float(text.strip()) and text.strip().isascii()


def test_what_float_would_take_is_refused():
    for cell in ("-0", "-0.0", "1_0", "\uff11", "\u0663", "1e0", "inf", "nan", "0x1", "+1", "1,5", "1.234",
                 "12345", ""):
        assert isinstance(parse_score(cell), str), cell
    assert [parse_score(cell) for cell in ("5.000", "0.50", "0007", " 2 ")] == [5.0, 0.5, 7.0, 2.0]
