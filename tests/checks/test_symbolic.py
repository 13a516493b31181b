"""``symbolic`` and ``symbolic_worker``: student sympy trees are rebuilt from a whitelist only, within limits,
compared soundly, in a bounded process: every equal form passes, a huge or slow one costs its comparison only."""

import json
import resource
import time

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.stats import Normal, density

from autograder.checks import symbolic_worker
from autograder.checks.symbolic import MAX_NODES, SymbolicError, compare, evaluate, rebuild, wrong_dependence
from autograder.checks.symbolic_worker import judge
from autograder.reports.layout import plain_text
from autograder.sandbox.runtime import wire
from tests.checks.conftest import failed, score

NAMES = ("mu_q", "s_q", "mu_p", "s_p")
SYMBOLS = {n: sympy.Symbol(n, positive=True) for n in NAMES}
mu_q, s_q, mu_p, s_p = SYMBOLS.values()
LEMMA = -sympy.log(2 * sympy.pi * s_p**2) / 2 - s_q**2 / (2 * s_p**2) - (mu_q - mu_p) ** 2 / (2 * s_p**2)
z = sympy.Symbol("z", real=True)
Q = sympy.exp(-(z - mu_q) ** 2 / (2 * s_q**2)) / sympy.sqrt(2 * sympy.pi * s_q**2)
LOG_P = -sympy.log(2 * sympy.pi * s_p**2) / 2 - (z - mu_p) ** 2 / (2 * s_p**2)
SUM = ["Add", ["Symbol", "mu_q"], ["Symbol", "s_q"], ["Symbol", "mu_p"], ["Symbol", "s_p"], ["Integer", "1"]]


def _tree(expr):
    """The tree the student side sends (through a JSON round trip, as on the wire)."""
    return wire.decode(json.loads(json.dumps(wire.encode(expr)))).tree


EXPECTED = _tree(LEMMA)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


ROUND_TRIPS = [
    LEMMA,
    -sympy.log(s_p) - sympy.log(2 * sympy.pi) / 2 - (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2),
    sympy.log(1 / sympy.sqrt(2 * sympy.pi * s_p**2)) - sympy.Rational(1, 2) * ((mu_q - mu_p) ** 2 + s_q**2) / s_p**2,
    sympy.Float(0.25) * sympy.exp(-mu_q) + sympy.Abs(mu_q - s_p) - sympy.E ** 2 + 3 * sympy.pi,
    sympy.Integer(-7),
    s_q ** sympy.Rational(-3, 2),
    # sympy.simplify of the integral writes log(a**b) with a symbolic exponent
    (-mu_p**2 + 2 * mu_p * mu_q - mu_q**2 - s_q**2 - sympy.log((2 * sympy.pi * s_p**2) ** (s_p**2))) / (2 * s_p**2),
    sympy.erfc(sympy.sqrt(2) * mu_q / (2 * s_q)) * sympy.exp(mu_q**2 / s_q**2) + sympy.EulerGamma * sympy.I,
    sympy.Piecewise((LEMMA, sympy.exp(mu_q) > mu_q), (0, True)),
    sympy.Integral(Q * LOG_P, (z, -sympy.oo, sympy.oo)),
    sympy.hyper([1, 2], [3], s_q) + sympy.Min(mu_q, mu_p) + sympy.gamma(s_p) + sympy.atan2(mu_q, s_q),
]


@pytest.mark.parametrize("expr", ROUND_TRIPS, ids=range(len(ROUND_TRIPS)))
def test_rebuild_returns_the_expression_sent(expr):
    assert rebuild(_tree(expr), SYMBOLS) == expr


REJECTED = [
    (["Integral", ["Symbol", "mu_q"]], "needs a body and limits"),
    (["Integral", ["Symbol", "z"], ["Tuple", ["Symbol", "z"]]], "indefinite integral"),
    (["Integral", ["Symbol", "mu_q"], ["Tuple", ["Symbol", "mu_q"], ["Integer", "0"], ["Integer", "1"]]],
     "runs over 'mu_q', one of the arguments"),
    (["Piecewise", ["Symbol", "mu_q"]], "(expression, condition) pairs"),
    (["Symbol", "z"], "the symbol 'z', which is not one of the arguments"),
    (["Symbol", "\x1b[2J"], "malformed"),
    (["Constant", "oo"], "the expression is infinite"),
    (["Constant", "__import__"], "the constant '__import__', which is not accepted"),
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
    (["exp", ["Symbol", "mu_q"], ["Integer", "2"]], "sympy cannot build exp of these arguments"),
    (["Mul"], "empty Mul"),
    (["Add", "mu_q"], "malformed"),
    ("mu_q", "malformed"),
    ([], "malformed"),
    (["Add", ["Symbol", "mu_q"], 3], "malformed"),
    (["Equality", ["Symbol", "mu_q"], ["Integer", "1"]], "the result is a Equality, not an expression"),
    (["Pow", ["Integer", "0"], ["Integer", "-1"]], "division by zero"),
    (["Oversized"], "too large to be sent"),
    # nothing that names code runs: only the table's classes are built
    (["Lambda", ["Tuple", ["Symbol", "mu_q"]], ["Symbol", "mu_q"]], "'Lambda', which is not accepted"),
    (["Function", ["Symbol", "mu_q"]], "'Function', which is not accepted"),
    (["eval", ["Symbol", "mu_q"]], "'eval', which is not accepted"),
    (["f", ["Symbol", "mu_q"]], "'f', which is not accepted"),
    (["Subs", ["Symbol", "mu_q"], ["Symbol", "mu_q"], ["Integer", "1"]], "'Subs', which is not accepted"),
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
    wide = ["Add", *[["Integer", str(i)] for i in range(MAX_NODES + 1)]]
    with pytest.raises(SymbolicError, match=f"more than {MAX_NODES} nodes"):
        rebuild(wide, SYMBOLS)
    start = time.monotonic()  # the grader refuses it before anything crosses to the worker
    assert f"more than {MAX_NODES} nodes" in judge(wide, EXPECTED, NAMES).refused
    assert time.monotonic() - start < 1.0


def test_the_student_side_sends_oversized_expressions_as_a_marker():
    assert _tree(sympy.Add(*[sympy.Symbol(f"x{i}") for i in range(wire.SYMPY_MAX_NODES + 1)])) == ["Oversized"]
    assert _tree(mu_q + sympy.Integer(10) ** 2000) == ["Oversized"]
    assert _tree(sympy.oo + sympy.I) == ["Add", ["Constant", "oo"], ["Constant", "I"]]


@pytest.mark.parametrize("tree", [
    ["Pow", ["Add", ["Pow", SUM, ["Integer", "16"]], ["Integer", "1"]], ["Integer", "16"]],
    ["Add", ["Pow", SUM, ["Rational", "127", "2"]], ["Integer", "1"]],  # expands as SUM**63 · sqrt(SUM)
], ids=["nested integer powers", "half-integer power"])
def test_hostile_powers_are_compared_numerically_and_quickly(tree):
    """Trees built to make expand explode are decided at points instead."""
    start = time.monotonic()
    result = compare(rebuild(tree, SYMBOLS), LEMMA, SYMBOLS)
    assert not result.equal and result.how == "numerically"
    assert time.monotonic() - start < 2.0


def test_huge_exponentials_are_compared_quickly():
    """Symbolic exponents are evaluated in floating point: no exact powers of huge integers."""
    big = sympy.Mul(s_p**63, mu_q**63, s_q**63, mu_p**63)
    expr = sympy.Add(*[(s_p + i) ** (big * (mu_q + i)) for i in range(40)])
    start = time.monotonic()
    result = compare(rebuild(_tree(expr), SYMBOLS), LEMMA, SYMBOLS)
    assert not result.equal and time.monotonic() - start < 2.0


@pytest.mark.parametrize("expr", [ROUND_TRIPS[i] for i in (1, 2, 6)], ids=["split log", "reciprocal sqrt", "simplified"])
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
WRONG_IDS = ["no 2π", "no ½ on s_q", "no ½ on the mean", "std as variance"]


@pytest.mark.parametrize("expr, wrong", WRONG, ids=WRONG_IDS)
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


# -- through the bounded worker --------------------------------------------------------------------


@pytest.fixture(scope="module")
def integrate_answer():
    """C3 the natural way, as a student writes it: the densities of sympy.stats, expanded, integrated."""
    t = sympy.Symbol("z")
    q = density(Normal("Z", mu_q, s_q))(t)
    log_p = sympy.log(density(Normal("P", mu_p, s_p))(t))
    return sympy.integrate(sympy.expand(q * log_p), (t, -sympy.oo, sympy.oo))


def test_the_integrate_answer_is_equal(integrate_answer):
    assert integrate_answer.has(sympy.erfc)  # what the grader used to refuse
    verdict = judge(_tree(integrate_answer), EXPECTED, NAMES)
    assert verdict.equal and not verdict.refused and not verdict.limit, verdict


EQUAL_FORMS = {
    "sqrt, Abs and the log of a product": -sympy.log(sympy.sqrt(2 * sympy.pi) * sympy.Abs(s_p))
                                          - (s_q**2 + sympy.Abs(mu_q - mu_p) ** 2) / (2 * s_p**2),
    "erf + erfc = 1": LEMMA + sympy.erf(mu_q / s_q) + sympy.erfc(mu_q / s_q) - 1,
    "Piecewise true for positives": sympy.Piecewise((LEMMA, sympy.exp(mu_q) > mu_q), (0, True)),
    "an Integral that evaluates": sympy.Integral(Q * LOG_P, (z, -sympy.oo, sympy.oo)),
    "trig, hyperbolic, Min/Max, gamma": LEMMA + sympy.sin(mu_q) ** 2 + sympy.cos(mu_q) ** 2 - 1
                                        + sympy.cosh(s_q) ** 2 - sympy.sinh(s_q) ** 2 - 1
                                        + sympy.Min(mu_q, mu_p) + sympy.Max(mu_q, mu_p) - mu_q - mu_p
                                        + sympy.log(s_q) + sympy.loggamma(s_q) - sympy.log(sympy.gamma(s_q + 1)),
}


@pytest.mark.parametrize("expr", EQUAL_FORMS.values(), ids=EQUAL_FORMS.keys())
def test_equal_forms_with_any_function_are_equal(expr):
    verdict = judge(_tree(expr), EXPECTED, NAMES)
    assert verdict.equal and not verdict.refused and not verdict.limit, verdict


@pytest.mark.parametrize("expr, wrong", [WRONG[1], WRONG[3]], ids=[WRONG_IDS[1], WRONG_IDS[3]])
def test_unequal_forms_say_where_and_on_what(expr, wrong):
    verdict = judge(_tree(expr), EXPECTED, NAMES, seed=3)
    assert not verdict.equal and verdict.how == "numerically" and not verdict.refused and not verdict.limit
    assert list(verdict.wrong) == wrong and set(verdict.point) == set(NAMES)
    assert abs(verdict.got - verdict.expected) > 1e-6


@pytest.mark.parametrize("tree, says", [
    (["Lambda", ["Tuple", ["Symbol", "mu_q"]], ["Symbol", "mu_q"]], "'Lambda', which is not accepted"),
    (["Integral", ["Symbol", "z"], ["Tuple", ["Symbol", "z"], ["Integer", "0"], ["Constant", "oo"]]], "infinite"),
    (["Integral", ["sin", ["sin", ["Symbol", "z"]]], ["Tuple", ["Symbol", "z"], ["Integer", "0"], ["Integer", "1"]]],
     "sympy could not evaluate the integral"),
], ids=["Lambda", "divergent integral", "integral without closed form"])
def test_refusals_come_back_from_the_worker(tree, says):
    verdict = judge(tree, EXPECTED, NAMES)
    assert says in verdict.refused and not verdict.equal, verdict


_KINDS = ["Add", "Mul", "Pow", "log", "exp", "erfc", "gamma", "Piecewise", "ExprCondPair", "Integral", "Tuple",
          "StrictLessThan", "And", "Max", "hyper", "besselj", "Lambda", "Oversized"]
_LEAVES = st.one_of(
    st.tuples(st.just("Symbol"), st.sampled_from([*NAMES, "z", "x"])).map(list),
    st.tuples(st.just("Integer"), st.integers(-50, 50).map(str)).map(list),
    st.tuples(st.just("Rational"), st.integers(-9, 9).map(str), st.integers(-2, 9).map(str)).map(list),
    st.tuples(st.just("Float"), st.sampled_from(["0.5", "-2.25", "inf", "1e29"])).map(list),
    st.tuples(st.just("Constant"), st.sampled_from(["pi", "E", "I", "oo", "-oo", "zoo", "nan", "True"])).map(list),
    st.text(max_size=3),
)
TREES = st.recursive(_LEAVES, lambda kids: st.tuples(st.sampled_from(_KINDS), st.lists(kids, max_size=3)).map(
    lambda t: [t[0], *t[1]]), max_leaves=12)


@settings(max_examples=25, deadline=None)
@given(TREES)
def test_any_tree_gets_a_verdict(tree):
    """Whatever the tree, the grader gets a verdict: a refusal, a limit or a comparison, never an exception."""
    verdict = judge(tree, EXPECTED, NAMES, cpu_seconds=2)
    assert isinstance(verdict, symbolic_worker.Verdict)
    assert verdict.refused or verdict.limit or verdict.how


def _still_serves() -> None:
    """The next comparison (the next student's) is unaffected."""
    assert judge(EXPECTED, EXPECTED, NAMES).equal


def test_an_expansion_bomb_costs_its_comparison_only():
    """A few nodes whose integral expands a 6-variable polynomial of degree 64: stopped at the memory limit."""
    bomb = ["Integral", ["Pow", ["Add", ["Symbol", "z"], *SUM[1:]], ["Integer", "64"]],
            ["Tuple", ["Symbol", "z"], ["Integer", "0"], ["Integer", "1"]]]
    before = _peak_rss_mib()
    verdict = judge(bomb, EXPECTED, NAMES, cpu_seconds=30, memory_bytes=64 * 2**20)
    assert "needed more than 64 MiB of memory" in verdict.limit and not verdict.equal, verdict
    assert _peak_rss_mib() - before < 200  # the grader's own memory
    _still_serves()


def test_a_slow_expression_costs_its_comparison_only():
    """sympy evaluates harmonic(10**6) exactly when it is built: stopped at the CPU limit."""
    before = _peak_rss_mib()
    verdict = judge(["harmonic", ["Integer", "1000000"]], EXPECTED, NAMES, cpu_seconds=1)
    assert verdict.limit.startswith("the expression took more than 1 s to compare") and not verdict.equal, verdict
    assert _peak_rss_mib() - before < 200
    _still_serves()


def test_the_grader_kills_a_worker_past_its_backstop(monkeypatch):
    _still_serves()
    worker = symbolic_worker._WORKER.running()
    monkeypatch.setattr(symbolic_worker, "WALL_FACTOR", 0)
    monkeypatch.setattr(symbolic_worker, "WALL_SLACK", 0.5)
    monkeypatch.setattr(symbolic_worker, "STARTUP_SECONDS", 0.0)
    start = time.monotonic()
    verdict = judge(["harmonic", ["Integer", "1000000"]], EXPECTED, NAMES, cpu_seconds=30)
    assert "took more than 30 s" in verdict.limit and time.monotonic() - start < 10
    assert worker.poll() is not None  # killed; the next comparison starts a new one
    monkeypatch.undo()
    _still_serves()


def test_a_worker_that_died_is_restarted():
    _still_serves()
    symbolic_worker._WORKER.running().kill()
    symbolic_worker._WORKER.running().wait()
    _still_serves()


# -- C3 end to end (student process → wire → grader → worker) ---------------------------------------------


def test_c3_gives_full_marks_to_a_form_with_special_functions(grade):
    results = grade('''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    lemma = -sympy.log(sympy.sqrt(2 * sympy.pi) * s_p) - (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2)
    return sympy.Piecewise((lemma + sympy.erf(mu_q / s_q) + sympy.erfc(mu_q / s_q) - 1, s_q > 0), (0, True))
''', "C3")
    assert score(results) == 3, [plain_text(r) for r in results]


def test_c3_refuses_code_with_the_reason(grade):
    results = grade('''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    return sympy.Lambda(mu_q, mu_q)(s_p) + sympy.Function("f")(mu_q)
''', "C3")
    assert score(results) == 0
    message = next(plain_text(r) for r in results if r.check == "symbolically equal to the lemma")
    assert "cannot be graded" in message and "'f', which is not accepted" in message, message


@pytest.mark.slow
def test_c3_gives_full_marks_to_the_integrate_answer(grade):
    results = grade('''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    from sympy.stats import Normal, density
    z = sympy.Symbol("z")
    q = density(Normal("Z", mu_q, s_q))(z)
    log_p = sympy.log(density(Normal("P", mu_p, s_p))(z))
    return sympy.integrate(sympy.expand(q * log_p), (z, -sympy.oo, sympy.oo))
''', "C3")
    assert score(results) == 3, [plain_text(r) for r in results]


@pytest.mark.slow
def test_c3_bomb_with_the_default_budget_costs_c3_only(grade):
    before = _peak_rss_mib()
    results = grade('''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    z = sympy.Symbol("z", real=True)
    return sympy.Integral((z + mu_q + s_q + mu_p + s_p + 1) ** 64, (z, 0, 1))
''', "C3")
    assert failed(results) == {"symbolically equal to the lemma", "built from the symbols it is given"}
    assert all("within the grader's limits" in plain_text(r) for r in results), [plain_text(r) for r in results]
    assert _peak_rss_mib() - before < 200


def test_a_verdict_is_kept_per_request_and_one_at_a_limit_is_not(monkeypatch):
    """C3's verdicts are reused only for the very same request; a verdict that hit a budget is asked again."""
    from autograder.checks import gmvae, symbolic_worker

    asked = []

    def judge(tree, expected, names, seed):
        asked.append((tree, seed))
        return symbolic_worker.Verdict(limit="too slow") if tree == ["slow"] else symbolic_worker.Verdict(equal=True)

    monkeypatch.setattr(symbolic_worker, "judge", judge)
    monkeypatch.setattr(gmvae, "_VERDICTS", {})
    names = ("x",)
    assert gmvae._judged(["a"], ["e"], names, 0).equal and gmvae._judged(["a"], ["e"], names, 0).equal
    gmvae._judged(["a"], ["e"], names, 1)  # another seed: another request
    gmvae._judged(["b"], ["e"], names, 0)  # another tree
    gmvae._judged(["slow"], ["e"], names, 0)
    gmvae._judged(["slow"], ["e"], names, 0)
    assert asked == [(["a"], 0), (["a"], 1), (["b"], 0), (["slow"], 0), (["slow"], 0)]
