"""Student sympy expressions: rebuilt from a whitelist, compared with the reference.

A student's sympy expression crosses the sandbox boundary as a plain tree
(``wire.SympyTree``: ``[class name, *children]``, numbers and names as
strings). The grader never parses student text (no ``sympify``,
``parse_expr``, ``eval``, ``lambdify``): ``rebuild`` walks the tree and builds
the expression from a table of accepted node classes (arithmetic, sympy's
elementary and special functions, ``Piecewise`` with its conditions, definite
``Integral``), within limits on size, depth, number sizes and powers that
give a clear reason for the usual excesses. What those limits cannot bound
(sympy's automatic evaluation, ``doit``, ``expand``, ``evalf`` can run long
on a small tree) is bounded by where this runs: ``symbolic_worker``'s
process, with a CPU-time, memory and wall-clock limit.
This module imports nothing of the grader (the worker runs without torch).

``compare`` decides equivalence: a cheap symbolic canonical form first
(``expand_log`` then ``expand`` of the difference, valid because the symbols
are positive; it decides the usual forms in milliseconds), and when that is
inconclusive (special functions, floats) or the expression is too large to
expand, a numeric test at 20 positive rational points with 30-digit
arithmetic (equal to 1e-9 relative).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import sympy

__all__ = ["SymbolicError", "Comparison", "check_tree", "rebuild", "compare", "wrong_dependence", "evaluate",
           "finite", "UNEVALUATED"]

MAX_NODES = 5000
MAX_DEPTH = 64
MAX_TEXT = 64  # characters of a class name, symbol name or number in the tree
MAX_DIGITS = 30  # of an Integer / a Rational's numerator or denominator in the tree
MAX_NUMBER_DIGITS = 1000  # of any number sympy forms while rebuilding
MAX_EXPONENT = 64  # |numeric exponent| of any power
MAX_EXPONENT_PRODUCT = 256  # product of |integer exponents| along a root-to-leaf path
MAX_EXPANDED_TERMS = 5000  # above this bound the symbolic step is skipped
POINTS = 20
RTOL = 1e-9

_INT = re.compile(r"-?\d{1,%d}" % MAX_DIGITS)
_FUNCTIONS = {name: getattr(sympy, name) for name in (
    # elementary
    "exp", "log", "Abs", "sign", "re", "im", "arg", "conjugate", "floor", "ceiling", "frac", "Min", "Max",
    "Heaviside", "DiracDelta", "LambertW", "exp_polar", "polar_lift", "periodic_argument", "principal_branch",
    "sin", "cos", "tan", "cot", "sec", "csc", "sinc", "asin", "acos", "atan", "acot", "asec", "acsc", "atan2",
    "sinh", "cosh", "tanh", "coth", "sech", "csch", "asinh", "acosh", "atanh", "acoth", "asech", "acsch",
    # special
    "erf", "erfc", "erfi", "erf2", "erfinv", "erfcinv", "erf2inv", "Ei", "expint", "li", "Li", "Si", "Ci", "Shi",
    "Chi", "fresnels", "fresnelc", "gamma", "loggamma", "lowergamma", "uppergamma", "polygamma", "digamma",
    "trigamma", "beta", "factorial", "factorial2", "binomial", "RisingFactorial", "FallingFactorial", "harmonic",
    "zeta", "dirichlet_eta", "polylog", "lerchphi", "besselj", "bessely", "besseli", "besselk", "hankel1", "hankel2",
    "airyai", "airybi", "airyaiprime", "airybiprime", "hyper", "meijerg", "elliptic_k", "elliptic_e", "elliptic_f",
    "elliptic_pi", "legendre", "hermite", "laguerre", "chebyshevt", "chebyshevu",
)}
_LOGIC = {"And": sympy.And, "Or": sympy.Or, "Not": sympy.Not, "Xor": sympy.Xor, "Equality": sympy.Eq,
          "Unequality": sympy.Ne, "StrictLessThan": sympy.Lt, "StrictGreaterThan": sympy.Gt, "LessThan": sympy.Le,
          "GreaterThan": sympy.Ge, "Tuple": sympy.Tuple, "TupleArg": sympy.Tuple}
_CONSTRUCTORS = {"Add": sympy.Add, "Mul": sympy.Mul, **_FUNCTIONS, **_LOGIC}
_CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "EulerGamma": sympy.EulerGamma, "Catalan": sympy.Catalan,
              "GoldenRatio": sympy.GoldenRatio, "TribonacciConstant": sympy.TribonacciConstant, "I": sympy.I,
              "oo": sympy.oo, "-oo": -sympy.oo, "zoo": sympy.zoo, "nan": sympy.nan, "True": sympy.true,
              "False": sympy.false}
_INFINITE = {sympy.oo: "infinite", -sympy.oo: "infinite", sympy.zoo: "undefined (a division by zero?)",
             sympy.nan: "undefined (nan)"}
ACCEPTED = ("+, −, ×, /, powers, sympy's elementary and special functions (log, exp, sqrt, Abs, erf, gamma, …), "
            "Piecewise and definite integrals of the arguments")
UNEVALUATED = ("sympy could not evaluate the integral (it diverges, or sympy finds no closed form): "
               "derive the closed form and return it")


class SymbolicError(ValueError):
    """A tree that is not an accepted expression; the message says why, for the student."""


def check_tree(tree: Any) -> None:
    """Raise ``SymbolicError`` unless ``tree`` is a plain tree within the size limits.

    Cheap and iterative: the grader runs it before sending the tree to the
    worker, so nothing large or malformed crosses.
    """
    stack, nodes = [(tree, 0)], 0
    while stack:
        node, depth = stack.pop()
        if not (type(node) is list and node and type(node[0]) is str):
            raise SymbolicError("malformed expression tree")
        nodes += 1
        if nodes > MAX_NODES:
            raise SymbolicError(f"the expression has more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise SymbolicError(f"the expression is nested more than {MAX_DEPTH} levels deep")
        for child in node:
            if type(child) is list:
                stack.append((child, depth + 1))
            elif type(child) is not str or len(child) > MAX_TEXT or not child.isprintable():
                raise SymbolicError("malformed expression tree")


def rebuild(tree: Any, symbols: dict[str, sympy.Symbol]) -> sympy.Expr:
    """The sympy expression described by ``tree``, built only from whitelisted nodes.

    Leaves: ``["Symbol", name]`` (``name`` a key of ``symbols``, or the
    variable of an enclosing ``Integral``), ``["Integer", "3"]``,
    ``["Rational", "1", "2"]``, ``["Float", "0.5"]``, ``["Constant", "pi"]``.
    Nodes: ``Add``, ``Mul``, ``Pow``, the functions of ``_FUNCTIONS``, the
    logic of ``_LOGIC``, ``Piecewise`` of ``ExprCondPair``s and ``Integral``
    with ``(variable, lower, upper)`` limits. Numeric exponents are bounded;
    exponentials (``exp`` or a power with a symbolic exponent) may not nest.
    Raises ``SymbolicError`` on anything else or beyond the limits.
    """
    check_tree(tree)
    expr = _Builder(tuple(symbols)).build(tree, symbols, exp_depth=0, power=1)
    if not isinstance(expr, sympy.Expr):
        raise SymbolicError(f"the result is a {type(expr).__name__}, not an expression")
    finite(expr)
    return expr


def finite(expr: sympy.Expr) -> None:
    """Raise ``SymbolicError`` if ``expr`` is infinite or undefined as a whole."""
    if expr in _INFINITE:
        raise SymbolicError(f"the expression is {_INFINITE[expr]}: return a finite closed form")


class _Builder:
    """One rebuild (``check_tree`` bounded its size and depth); knows the argument names."""

    def __init__(self, arguments: tuple[str, ...]) -> None:
        self.arguments = arguments

    def build(self, tree: Any, scope: dict[str, sympy.Symbol], exp_depth: int, power: int) -> Any:
        if type(tree) is not list:
            raise SymbolicError("malformed expression tree")
        kind, args = tree[0], tree[1:]
        if kind in ("Symbol", "Integer", "Float", "Constant", "Rational"):
            return self._leaf(kind, args, scope)
        if not all(type(a) is list for a in args):
            raise SymbolicError(f"malformed {kind} node")
        if kind == "Pow":
            return self._pow(args, scope, exp_depth, power)
        if kind == "Integral":
            return self._integral(args, scope, exp_depth, power)
        if kind == "exp" and exp_depth >= 1:
            raise SymbolicError("exp inside another exponential (exp or a power with a symbolic exponent) "
                                "is not accepted")
        if kind == "Piecewise":
            if not args or any(a[0] != "ExprCondPair" or len(a) != 3 for a in args):
                raise SymbolicError("a Piecewise needs (expression, condition) pairs")
            pairs = [tuple(self.build(x, scope, exp_depth, power) for x in a[1:]) for a in args]
            return _apply(kind, sympy.Piecewise, pairs)
        constructor = _CONSTRUCTORS.get(kind)
        if constructor is None:
            raise SymbolicError(f"the expression contains {kind!r}, which is not accepted: use {ACCEPTED}"
                                if kind != "Oversized" else "the expression is too large to be sent to the grader")
        if not args and kind in ("Add", "Mul"):
            raise SymbolicError(f"an empty {kind} node")
        children = [self.build(a, scope, exp_depth + (kind == "exp"), power) for a in args]
        return _apply(kind, constructor, children)

    def _pow(self, args: list, scope: dict[str, sympy.Symbol], exp_depth: int, power: int) -> Any:
        if len(args) != 2:
            raise SymbolicError("a Pow node needs a base and an exponent")
        exponent = self.build(args[1], scope, exp_depth + 1, 1)
        if exponent.is_Number:
            _check_exponent(exponent)
            scale = max(abs(int(exponent)), 1) if exponent.is_Rational else 1
            if power * scale > MAX_EXPONENT_PRODUCT:
                raise SymbolicError("nested powers multiply to an exponent that is too large")
            base = self.build(args[0], scope, exp_depth, power * scale)
        else:  # a symbolic exponent is an exponential: none may sit inside another
            if exp_depth >= 1:
                raise SymbolicError(f"the power with exponent {_short(exponent)} sits inside another exponential "
                                    "(exp or a power with a symbolic exponent), which is not accepted")
            base = self.build(args[0], scope, exp_depth + 1, power)
        return _apply("Pow", sympy.Pow, [base, exponent])

    def _integral(self, args: list, scope: dict[str, sympy.Symbol], exp_depth: int, power: int) -> Any:
        """A definite integral; its variables are real symbols bound in its body only."""
        if len(args) < 2:
            raise SymbolicError("an Integral needs a body and limits")
        inner, limits = dict(scope), []
        for limit in args[1:]:
            variable = limit[1] if len(limit) == 4 and limit[0] == "Tuple" else None
            if not (type(variable) is list and len(variable) == 2 and variable[0] == "Symbol"
                    and type(variable[1]) is str):
                raise SymbolicError("an indefinite integral or malformed limits: an Integral must run over a "
                                    "variable between two bounds")
            name = variable[1]
            if name in self.arguments:
                raise SymbolicError(f"the integral runs over {name!r}, one of the arguments")
            bounds = [self.build(b, inner, exp_depth, power) for b in limit[2:]]
            inner[name] = sympy.Symbol(name, real=True)
            limits.append((inner[name], *bounds))
        body = self.build(args[0], inner, exp_depth, power)
        return _apply("Integral", sympy.Integral, [body, *limits])

    def _leaf(self, kind: str, args: list[Any], scope: dict[str, sympy.Symbol]) -> sympy.Basic:
        if not all(type(a) is str for a in args):
            raise SymbolicError(f"malformed {kind} leaf")
        if kind == "Symbol" and len(args) == 1:
            if args[0] not in scope:
                raise SymbolicError(f"the expression contains the symbol {args[0]!r}, which is not one of the "
                                    f"arguments {', '.join(self.arguments)}: build the result from the symbols "
                                    "you are given")
            return scope[args[0]]
        if kind == "Integer" and len(args) == 1:
            return sympy.Integer(_integer(args[0]))
        if kind == "Rational" and len(args) == 2:
            p, q = _integer(args[0]), _integer(args[1])
            if q <= 0:
                raise SymbolicError("a Rational with a non-positive denominator")
            return sympy.Rational(p, q)
        if kind == "Float" and len(args) == 1:
            try:
                value = float(args[0])
            except ValueError:
                raise SymbolicError("malformed Float leaf") from None
            if value != value or abs(value) > 1e30:
                raise SymbolicError(f"the expression contains the number {args[0]}, which is not a finite number "
                                    "of a reasonable size")
            return sympy.Float(value)
        if kind == "Constant" and len(args) == 1:
            if args[0] not in _CONSTANTS:
                raise SymbolicError(f"the expression contains the constant {args[0]!r}, which is not accepted")
            return _CONSTANTS[args[0]]
        raise SymbolicError(f"malformed {kind} leaf")


def _apply(kind: str, constructor: Any, children: list[Any]) -> Any:
    """``constructor(*children)``, its failures as ``SymbolicError``, its numbers and powers checked."""
    try:
        expr = constructor(*children)
    except MemoryError:
        raise
    except Exception as exc:  # sympy refuses these arguments (arity, types)
        raise SymbolicError(f"sympy cannot build {kind} of these arguments ({type(exc).__name__})") from None
    return _checked(expr)


def _integer(text: str) -> int:
    if not _INT.fullmatch(text):
        raise SymbolicError(f"an integer with more than {MAX_DIGITS} digits, or malformed")
    return int(text)


def _check_exponent(exponent: sympy.Expr) -> None:
    if exponent.is_Rational:
        if abs(exponent.p) > MAX_EXPONENT * exponent.q or exponent.q > MAX_EXPONENT:
            raise SymbolicError(f"the exponent {exponent} is too large (at most {MAX_EXPONENT} is accepted)")
    elif not abs(float(exponent)) <= MAX_EXPONENT:  # nan and infinities too
        raise SymbolicError(f"the exponent {_short(exponent)} is too large (at most {MAX_EXPONENT} is accepted)")


def _checked(expr: Any) -> Any:
    """``expr`` if the numbers and powers sympy formed while evaluating it stay within the limits.

    The children were checked when they were built; what sympy's automatic
    evaluation can form (a product of numbers, combined powers) appears at
    the top of ``expr`` or among its arguments.
    """
    for node in (expr, *expr.args, *(a for arg in expr.args for a in arg.args)):
        if node.is_Rational and max(len(str(abs(node.p))), len(str(node.q))) > MAX_NUMBER_DIGITS:
            raise SymbolicError("a number in the expression grows too large")
        if node.is_Pow and node.exp.is_Number:
            _check_exponent(node.exp)
    return expr


def _short(expr: Any) -> str:
    text = str(expr)
    return text if len(text) <= 60 else text[:57] + "..."


# -- equivalence ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Whether two expressions are equal, how it was decided, and a witness point when they differ."""

    equal: bool
    how: str
    point: dict[str, str] | None = None
    got: float | complex | None = None
    expected: float | None = None


def compare(got: sympy.Expr, expected: sympy.Expr, symbols: dict[str, sympy.Symbol], seed: int = 0) -> Comparison:
    """Equivalence of ``got`` and ``expected`` as functions of the (positive) ``symbols``."""
    if _expanded_terms(got) + _expanded_terms(expected) <= MAX_EXPANDED_TERMS:
        if sympy.expand(sympy.expand_log(got - expected)) == 0:
            return Comparison(True, "symbolically (expand_log, expand)")
    rng = random.Random(seed)
    for point in _points(symbols, rng):
        g, e = evaluate(got, point), evaluate(expected, point)
        if e is None:  # the reference is finite at positive points; keep the test honest anyway
            continue
        if not _close(g, e):
            return Comparison(False, "numerically", {str(k): str(v) for k, v in point.items()}, g, e)
    return Comparison(True, f"numerically at {POINTS} points")


def wrong_dependence(got: sympy.Expr, expected: sympy.Expr, symbols: dict[str, sympy.Symbol],
                     seed: int = 0) -> list[str]:
    """Names of the symbols on which ``got`` depends differently from ``expected``.

    Compares the partial derivatives at 3 positive rational points; an empty
    list means the two differ by a constant.
    """
    points = _points(symbols, random.Random(seed))[:3]
    wrong = []
    for name, symbol in symbols.items():
        d_got, d_expected = sympy.diff(got, symbol), sympy.diff(expected, symbol)
        for point in points:
            e = evaluate(d_expected, point)
            if e is not None and not _close(evaluate(d_got, point), e):
                wrong.append(name)
                break
    return wrong


def evaluate(expr: sympy.Expr, point: dict[sympy.Symbol, sympy.Rational]) -> float | complex | None:
    """``expr`` at ``point`` with 30-digit arithmetic: a float, a complex, or None when undefined."""
    try:
        if any(p.is_Pow and not p.exp.is_Number for p in sympy.preorder_traversal(expr)):
            value = complex(expr.evalf(30, subs=point))  # floating point: no exact powers of huge integers
        else:  # exact substitution first (rebuild bounds every exponent): exact zeros stay exact
            value = complex(expr.xreplace(point).evalf(30))
    except MemoryError:
        raise
    except Exception:  # not a number there (a symbol left over, an unevaluable function, a division by zero)
        return None
    if value != value or abs(value) == float("inf"):
        return None
    return value.real if value.imag == 0 else value


def _close(got: float | complex | None, expected: float | complex) -> bool:
    if got is None:
        return False
    return abs(got - expected) <= RTOL * max(1.0, abs(expected))


def _points(symbols: dict[str, sympy.Symbol], rng: random.Random) -> list[dict[sympy.Symbol, sympy.Rational]]:
    """Positive rational points with small numerators and denominators (values from 1/8 to 48)."""
    return [{s: sympy.Rational(rng.randint(1, 48), rng.choice([1, 2, 3, 4, 8])) for s in symbols.values()}
            for _ in range(POINTS)]


def _expanded_terms(expr: sympy.Expr) -> int:
    """An upper bound on the number of terms ``expand(expand_log(expr))`` can produce."""
    if expr.is_Atom:
        return 1
    if expr.is_Add:
        return sum(_expanded_terms(a) for a in expr.args)
    if expr.is_Pow and expr.exp.is_Rational:  # (a + b)**(7/2) expands as (a + b)**3 · sqrt(a + b)
        factors = min(abs(int(expr.exp)), MAX_EXPONENT) + (not expr.exp.is_Integer)
        return _product([_expanded_terms(expr.base)] * factors)
    # a product of sums multiplies out; so may log(a**b) → b·log(a) and exp(a + b) → exp(a)·exp(b)
    return _product([_expanded_terms(a) for a in expr.args]) + (0 if expr.is_Mul else 1)


def _product(counts: list[int]) -> int:
    total = 1
    for n in counts:
        total *= n
        if total > MAX_EXPANDED_TERMS:
            return MAX_EXPANDED_TERMS + 1
    return total
