"""``symbolic``: student sympy trees are rebuilt from a whitelist only, within limits, and compared soundly."""

import json
import time

import pytest
import sympy

from autograder.checks.symbolic import SymbolicError, compare, evaluate, rebuild, wrong_dependence
from autograder.sandbox.runtime import wire

NAMES = ("mu_q", "s_q", "mu_p", "s_p")
SYMBOLS = {n: sympy.Symbol(n, positive=True) for n in NAMES}
mu_q, s_q, mu_p, s_p = SYMBOLS.values()
LEMMA = -sympy.log(2 * sympy.pi * s_p**2) / 2 - s_q**2 / (2 * s_p**2) - (mu_q - mu_p) ** 2 / (2 * s_p**2)


def _tree(expr):
    """The tree the student side sends (through a JSON round trip, as on the wire)."""
    return wire.decode(json.loads(json.dumps(wire.encode(expr)))).tree


ROUND_TRIPS = [
    LEMMA,
    -sympy.log(s_p) - sympy.log(2 * sympy.pi) / 2 - (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2),
    sympy.log(1 / sympy.sqrt(2 * sympy.pi * s_p**2)) - sympy.Rational(1, 2) * ((mu_q - mu_p) ** 2 + s_q**2) / s_p**2,
    sympy.Float(0.25) * sympy.exp(-mu_q) + sympy.Abs(mu_q - s_p) - sympy.E ** 2 + 3 * sympy.pi,
    sympy.Integer(-7),
    s_q ** sympy.Rational(-3, 2),
    # sympy.simplify of the integral writes log(a**b) with a symbolic exponent
    (-mu_p**2 + 2 * mu_p * mu_q - mu_q**2 - s_q**2 - sympy.log((2 * sympy.pi * s_p**2) ** (s_p**2))) / (2 * s_p**2),
]


@pytest.mark.parametrize("expr", ROUND_TRIPS, ids=range(len(ROUND_TRIPS)))
def test_rebuild_returns_the_expression_sent(expr):
    assert rebuild(_tree(expr), SYMBOLS) == expr


REJECTED = [
    (["Integral", ["Symbol", "mu_q"]], "'Integral'"),
    (["Piecewise", ["Symbol", "mu_q"]], "Piecewise"),
    (["Symbol", "z"], "the symbol 'z', which is not one of the arguments"),
    (["Constant", "oo"], "the constant 'oo'"),
    (["Constant", "EulerGamma"], "only pi and E"),
    (["Float", "nan"], "not a finite number"),
    (["Float", "1e308"], "not a finite number"),
    (["Integer", "1" * 31], "more than 30 digits"),
    (["Integer", "0x10"], "malformed"),
    (["Rational", "1", "0"], "non-positive denominator"),
    (["Pow", ["Integer", "10"], ["Integer", "100000"]], "too large"),
    (["Pow", ["Symbol", "mu_q"], ["Pow", ["Symbol", "s_q"], ["Symbol", "s_p"]]], "inside another exponential"),
    (["exp", ["Pow", ["Symbol", "s_q"], ["Symbol", "s_p"]]], "inside another exponential"),
    (["Pow", ["Pow", ["Add", ["Symbol", "mu_q"], ["Integer", "1"]], ["Integer", "64"]], ["Integer", "64"]], "too large"),
    (["Pow", ["Integer", "9" * 30], ["Integer", "64"]], "grows too large"),
    (["exp", ["exp", ["Symbol", "mu_q"]]], "exp inside another exponential"),
    (["log", ["Symbol", "mu_q"], ["Integer", "2"]], "one argument"),
    (["Mul"], "empty Mul"),
    (["Add", "mu_q"], "malformed"),
    ("mu_q", "malformed"),
    ([], "malformed"),
    (["Equality", ["Symbol", "mu_q"], ["Integer", "1"]], "'Equality'"),
    (["Pow", ["Integer", "0"], ["Integer", "-1"]], "zoo"),
]


@pytest.mark.parametrize("tree, says", REJECTED, ids=[r[1] for r in REJECTED])
def test_rebuild_rejects_with_a_clear_message(tree, says):
    with pytest.raises(SymbolicError) as info:
        rebuild(tree, SYMBOLS)
    assert says in str(info.value)


def test_size_and_depth_are_bounded():
    deep = ["Symbol", "mu_q"]
    for _ in range(100):
        deep = ["Add", deep, ["Integer", "1"]]
    with pytest.raises(SymbolicError, match="nested more than"):
        rebuild(deep, SYMBOLS)
    wide = ["Add", *[["Integer", str(i)] for i in range(2000)]]
    with pytest.raises(SymbolicError, match="more than 1000 nodes"):
        rebuild(wide, SYMBOLS)


def test_hostile_powers_are_rejected_or_compared_quickly():
    """Trees built to make expand or evaluation explode stay fast."""
    s = ["Add", ["Symbol", "mu_q"], ["Symbol", "s_q"], ["Symbol", "mu_p"], ["Symbol", "s_p"]]
    nested = ["Add", ["Pow", s, ["Integer", "16"]], ["Integer", "1"]]
    tree = ["Pow", nested, ["Integer", "16"]]
    start = time.monotonic()
    expr = rebuild(tree, SYMBOLS)
    result = compare(expr, LEMMA, SYMBOLS)
    assert not result.equal and result.difference is None  # too large to expand: decided numerically
    assert time.monotonic() - start < 2.0


def test_huge_exponentials_are_compared_quickly():
    """Symbolic exponents are evaluated in floating point: no exact powers of huge integers."""
    big = sympy.Mul(s_p**63, mu_q**63, s_q**63, mu_p**63)
    expr = sympy.Add(*[(s_p + i) ** (big * (mu_q + i)) for i in range(40)])
    start = time.monotonic()
    result = compare(rebuild(_tree(expr), SYMBOLS), LEMMA, SYMBOLS)
    assert not result.equal and time.monotonic() - start < 2.0


@pytest.mark.parametrize("expr", [ROUND_TRIPS[i] for i in (1, 2, -1)], ids=["split log", "reciprocal sqrt", "simplified"])
def test_equal_forms_are_equal_symbolically(expr):
    result = compare(expr, LEMMA, SYMBOLS)
    assert result.equal and result.how.startswith("symbolically")


def test_float_constants_are_equal_numerically():
    expr = -0.5 * sympy.log(2 * 3.141592653589793) - sympy.log(s_p) - (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2)
    result = compare(expr, LEMMA, SYMBOLS)
    assert result.equal and result.how.startswith("numerically")


WRONG = [
    (-sympy.log(s_p) - s_q**2 / (2 * s_p**2) - (mu_q - mu_p) ** 2 / (2 * s_p**2), []),
    (-sympy.log(2 * sympy.pi * s_p**2) / 2 - s_q**2 / s_p**2 - (mu_q - mu_p) ** 2 / (2 * s_p**2), ["s_q", "s_p"]),
    (-sympy.log(2 * sympy.pi * s_p**2) / 2 - s_q**2 / (2 * s_p**2) - (mu_q - mu_p) ** 2 / s_p**2, ["mu_q", "mu_p", "s_p"]),
    (-sympy.log(2 * sympy.pi * s_p) / 2 - s_q / (2 * s_p) - (mu_q - mu_p) ** 2 / (2 * s_p), list(NAMES)),
]


@pytest.mark.parametrize("expr, wrong", WRONG, ids=["no 2π", "no ½ on s_q", "no ½ on the mean", "std as variance"])
def test_different_forms_are_different_with_a_witness_and_the_wrong_symbols(expr, wrong):
    result = compare(expr, LEMMA, SYMBOLS)
    assert not result.equal and result.point is not None
    assert abs(result.got - result.expected) > 1e-6
    assert wrong_dependence(expr, LEMMA, SYMBOLS) == wrong


def test_evaluate_is_exact_enough_and_none_when_undefined():
    point = {mu_q: sympy.Rational(1), s_q: sympy.Rational(1), mu_p: sympy.Rational(1), s_p: sympy.Rational(1)}
    assert evaluate(LEMMA, point) == pytest.approx(-0.5 * (1.8378770664093453 + 1), rel=1e-15)
    assert evaluate(sympy.log(mu_q - mu_p), point) is None
    assert isinstance(evaluate(sympy.log(mu_q - 2 * mu_p), point), complex)
