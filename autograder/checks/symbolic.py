"""Student sympy expressions: rebuilt from a whitelist, compared with the reference.

A student's sympy expression crosses the sandbox boundary as a plain tree
(``wire.SympyTree``: ``[class name, *children]``, numbers as strings). The
grader never parses student text (no ``sympify``, ``parse_expr``, ``eval``,
``lambdify``): ``rebuild`` walks the tree and builds the expression from a
fixed set of node classes, within limits on size, depth, number sizes and
powers, so that neither the rebuild nor the comparison that follows can be
made to run for long or to exhaust memory.

``compare`` decides equivalence: a cheap symbolic canonical form first
(``expand_log`` then ``expand`` of the difference, valid because the symbols
are positive; it decides the usual forms in milliseconds, where
``sympy.simplify`` takes ~0.1 s), and when that is inconclusive or the
expression is too large to expand safely, a numeric test at 20 positive
rational points with 30-digit arithmetic (equal to 1e-9 relative).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import sympy

__all__ = ["SymbolicError", "Comparison", "rebuild", "compare", "wrong_dependence", "evaluate"]

MAX_NODES = 1000
MAX_DEPTH = 64
MAX_DIGITS = 30  # of an Integer / a Rational's numerator or denominator in the tree
MAX_NUMBER_DIGITS = 1000  # of any number sympy forms while rebuilding
MAX_EXPONENT = 64  # |numeric exponent| of any power
MAX_EXPONENT_PRODUCT = 256  # product of |integer exponents| along a root-to-leaf path
MAX_EXPANDED_TERMS = 5000  # above this bound the symbolic step is skipped
POINTS = 20
RTOL = 1e-9

_INT = re.compile(r"-?\d{1,%d}" % MAX_DIGITS)
_CONSTANTS = {"pi": sympy.pi, "E": sympy.E}
_FUNCTIONS = {"log": sympy.log, "exp": sympy.exp, "Abs": sympy.Abs}
_HINTS = {
    "Integral": "sympy.integrate left the integral unevaluated; derive the closed form and return it",
    "Piecewise": "sympy.integrate returned a Piecewise (convergence conditions); return the closed form only",
    "oo": "the expression is infinite; derive the closed form instead of integrating symbolically",
    "-oo": "the expression is infinite; derive the closed form instead of integrating symbolically",
    "zoo": "the expression is undefined (a division by zero?)",
    "nan": "the expression is undefined (nan)",
}


class SymbolicError(ValueError):
    """A tree that is not an accepted expression; the message says why, for the student."""


def rebuild(tree: Any, symbols: dict[str, sympy.Symbol]) -> sympy.Expr:
    """The sympy expression described by ``tree``, built only from whitelisted nodes.

    Nodes: ``Add``, ``Mul``, ``Pow``, ``log``, ``exp``, ``Abs``; leaves
    ``["Symbol", name]`` (``name`` a key of ``symbols``), ``["Integer", "3"]``,
    ``["Rational", "1", "2"]``, ``["Float", "0.5"]``, ``["Constant", "pi" | "E"]``.
    Numeric exponents are bounded; exponentials (``exp`` or a power with a
    symbolic exponent, as ``simplify`` writes ``log(a**b)``) may not nest.
    Raises ``SymbolicError`` on anything else or beyond the limits.
    """
    state = {"nodes": 0}
    expr = _build(tree, symbols, state, depth=0, exp_depth=0, power=1)
    if not isinstance(expr, sympy.Expr):
        raise SymbolicError(f"the result is a {type(expr).__name__}, not an expression")
    return expr


def _build(tree: Any, symbols: dict[str, sympy.Symbol], state: dict[str, int], depth: int, exp_depth: int,
           power: int) -> sympy.Expr:
    if depth > MAX_DEPTH:
        raise SymbolicError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    state["nodes"] += 1
    if state["nodes"] > MAX_NODES:
        raise SymbolicError(f"the expression has more than {MAX_NODES} nodes")
    if not (isinstance(tree, list) and tree and isinstance(tree[0], str)):
        raise SymbolicError("malformed expression tree")
    kind, args = tree[0], tree[1:]
    if kind in ("Symbol", "Integer", "Float", "Constant", "Rational"):
        return _leaf(kind, args, symbols)
    if not all(isinstance(a, list) for a in args):
        raise SymbolicError(f"malformed {kind[:40]} node")
    if kind in ("Add", "Mul"):
        if not args:
            raise SymbolicError(f"an empty {kind} node")
        children = [_build(a, symbols, state, depth + 1, exp_depth, power) for a in args]
        return _checked(sympy.Add(*children) if kind == "Add" else sympy.Mul(*children))
    if kind == "Pow":
        if len(args) != 2:
            raise SymbolicError("a Pow node needs a base and an exponent")
        exponent = _build(args[1], symbols, state, depth + 1, exp_depth + 1, 1)
        if exponent.is_Number:
            _check_exponent(exponent)
            scale = max(abs(int(exponent)), 1) if exponent.is_Integer else 1
            if power * scale > MAX_EXPONENT_PRODUCT:
                raise SymbolicError("nested powers multiply to an exponent that is too large")
            base = _build(args[0], symbols, state, depth + 1, exp_depth, power * scale)
        else:  # a symbolic exponent is an exponential: none may sit inside another
            if exp_depth >= 1:
                raise SymbolicError(f"the power with exponent {_short(exponent)} sits inside another exponential "
                                    "(exp or a power with a symbolic exponent), which is not accepted")
            base = _build(args[0], symbols, state, depth + 1, exp_depth + 1, power)
        return _checked(sympy.Pow(base, exponent))
    if kind in _FUNCTIONS:
        if len(args) != 1:
            raise SymbolicError(f"{kind} takes one argument")
        if kind == "exp" and exp_depth >= 1:
            raise SymbolicError("exp inside another exponential (exp or a power with a symbolic exponent) "
                                "is not accepted")
        inner = _build(args[0], symbols, state, depth + 1, exp_depth + (kind == "exp"), power)
        return _checked(_FUNCTIONS[kind](inner))
    hint = _HINTS.get(kind, "use only +, −, ×, /, powers, sympy.log, sympy.exp, sympy.pi and the four arguments")
    raise SymbolicError(f"the expression contains {kind[:40]!r}, which is not accepted: {hint}")


def _leaf(kind: str, args: list[Any], symbols: dict[str, sympy.Symbol]) -> sympy.Expr:
    if not all(isinstance(a, str) for a in args):
        raise SymbolicError(f"malformed {kind} leaf")
    if kind == "Symbol" and len(args) == 1:
        if args[0] not in symbols:
            raise SymbolicError(f"the expression contains the symbol {args[0][:40]!r}, which is not one of the "
                                f"arguments {', '.join(symbols)}: build the result from the symbols you are given")
        return symbols[args[0]]
    if kind == "Integer" and len(args) == 1:
        return sympy.Integer(_integer(args[0]))
    if kind == "Rational" and len(args) == 2:
        p, q = _integer(args[0]), _integer(args[1])
        if q <= 0:
            raise SymbolicError("a Rational with a non-positive denominator")
        return sympy.Rational(p, q)
    if kind == "Float" and len(args) == 1 and len(args[0]) <= 40:
        try:
            value = float(args[0])
        except ValueError:
            raise SymbolicError("malformed Float leaf") from None
        if value != value or value in (float("inf"), float("-inf")) or abs(value) > 1e30:
            raise SymbolicError(f"the expression contains the number {args[0]}, which is not a finite number "
                                "of a reasonable size")
        return sympy.Float(value)
    if kind == "Constant" and len(args) == 1:
        if args[0] in _CONSTANTS:
            return _CONSTANTS[args[0]]
        hint = _HINTS.get(args[0], "only pi and E are accepted")
        raise SymbolicError(f"the expression contains the constant {args[0][:40]!r}: {hint}")
    raise SymbolicError(f"malformed {kind} leaf")


def _integer(text: str) -> int:
    if not _INT.fullmatch(text):
        raise SymbolicError(f"an integer with more than {MAX_DIGITS} digits, or malformed")
    return int(text)


def _check_exponent(exponent: sympy.Expr) -> None:
    if exponent.is_Rational:
        if abs(exponent.p) > MAX_EXPONENT * exponent.q or exponent.q > MAX_EXPONENT:
            raise SymbolicError(f"the exponent {exponent} is too large (at most {MAX_EXPONENT} is accepted)")
    elif abs(float(exponent)) > MAX_EXPONENT:
        raise SymbolicError(f"the exponent {_short(exponent)} is too large (at most {MAX_EXPONENT} is accepted)")


def _checked(expr: sympy.Expr) -> sympy.Expr:
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
        if node in (sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
            raise SymbolicError(f"the expression evaluates to {node}: {_HINTS.get(str(node), '')}")
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
    difference: sympy.Expr | None = None  # the canonical form of got − expected, when small enough


def compare(got: sympy.Expr, expected: sympy.Expr, symbols: dict[str, sympy.Symbol], seed: int = 0) -> Comparison:
    """Equivalence of ``got`` and ``expected`` as functions of the (positive) ``symbols``."""
    difference = None
    if _expanded_terms(got) + _expanded_terms(expected) <= MAX_EXPANDED_TERMS:
        difference = sympy.expand(sympy.expand_log(got - expected))
        if difference == 0:
            return Comparison(True, "symbolically (expand_log, expand)")
    rng = random.Random(seed)
    for point in _points(symbols, rng):
        g, e = evaluate(got, point), evaluate(expected, point)
        if e is None:  # the reference is finite at positive points; keep the test honest anyway
            continue
        if not _close(g, e):
            shown = {str(k): str(v) for k, v in point.items()}
            return Comparison(False, "numerically", shown, g, e, difference)
    return Comparison(True, f"numerically at {POINTS} points", difference=difference)


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
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
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
    if expr.is_Pow and expr.exp.is_Integer:
        return _product([_expanded_terms(expr.base)] * min(abs(int(expr.exp)), MAX_EXPONENT))
    # a product of sums multiplies out; so may log(a**b) → b·log(a) and exp(a + b) → exp(a)·exp(b)
    return _product([_expanded_terms(a) for a in expr.args]) + (0 if expr.is_Mul else 1)


def _product(counts: list[int]) -> int:
    total = 1
    for n in counts:
        total *= n
        if total > MAX_EXPANDED_TERMS:
            return MAX_EXPANDED_TERMS + 1
    return total
