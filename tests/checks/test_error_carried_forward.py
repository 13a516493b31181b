"""Error carried forward: a caller that leans on a wrong graded function of the student's is graded as if
that dependency were right (issue 12).

Fast tests run the runtime's observer and the grader's oracle in this process, linked by a JSON round trip
(the same plain data the sandbox's channel carries); the end-to-end ones run a sandboxed student process.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
import torch
from torch import distributions as D

import reference
from autograder.checks import QUESTIONS
from autograder.checks.carried import MAX_ASKS, Oracle
from autograder.checks.live import FUNCTIONS
from autograder.checks.framework import Check, CheckResult, Context
from autograder.contract import BY_ID, QUESTION_IDS
from autograder.grading import _carry_forward, _grade_question, carried_note
from autograder.sandbox.runtime import carry, wire
from autograder.sandbox.runtime.wire import Leaf
from autograder.sandbox.runtime.child import Responder
from autograder.sandbox.asked import used_names
from autograder.sandbox.calls import Session

PRELUDE = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import distributions as D\n"
C2_WRONG = '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    # q's spread entered as a standard deviation instead of a variance
    var_p = logvar_p.exp()
    per_dim = math.log(2 * math.pi) + logvar_p + (torch.exp(0.5 * logvar_q) + (mu_q - mu_p) ** 2) / var_p
    return -0.5 * per_dim.sum(-1)
'''
C2_RIGHT = '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    per_dim = math.log(2 * math.pi) + logvar_p + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp()
    return -0.5 * per_dim.sum(-1)
'''
_C4 = '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    rec = -F.binary_cross_entropy_with_logits(x_logits, x.expand_as(x_logits), reduction="none").sum(-1).mean(0)
    elp = {elp}
    ent = 0.5 * (1 + logvar_z + {entropy_2pi}).sum(-1)
    cat = (gamma * log_pi - torch.xlogy(gamma, gamma)).sum(-1)
    return rec + (gamma * elp).sum(-1) + cat + ent
'''
_LEMMA_CALL = "expected_log_gaussian(mu_z.unsqueeze(-2), logvar_z.unsqueeze(-2), mu_c, logvar_c)"
_LEMMA_INLINE = ("-0.5 * (math.log(2 * math.pi) + logvar_c + (logvar_z.unsqueeze(-2).exp() + (mu_z.unsqueeze(-2) "
                 "- mu_c) ** 2) / logvar_c.exp()).sum(-1)")
C4_CALLER = _C4.format(elp=_LEMMA_CALL, entropy_2pi="math.log(2 * math.pi)")
C4_INLINE = _C4.format(elp=_LEMMA_INLINE, entropy_2pi="math.log(2 * math.pi)")
# wrong by itself, in value and gradient: the entropy with log σ̃² twice
C4_CALLER_WRONG = _C4.format(elp=_LEMMA_CALL, entropy_2pi="logvar_z + math.log(2 * math.pi)")
A3_NO_ENTROPY = '''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    x = q.rsample((n_samples,))
    return -torch.mean(log_p_tilde(x))
'''
A5_DESCENT = '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    loc = torch.tensor(float(init_loc), dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(math.log(init_scale), dtype=torch.float64, requires_grad=True)
    data = p.sample((4000,)) if direction == "forward" else None
    for step in range({steps}):
        q = D.Normal(loc, log_scale.exp())
        loss = forward_kl_loss(q, data) if direction == "forward" else reverse_kl_loss(q, p.log_prob, 1000)
        g_loc, g_log_scale = torch.autograd.grad(loss, [loc, log_scale])
        with torch.no_grad():
            loc -= 0.2 * g_loc
            log_scale -= 0.2 * g_log_scale
    return loc.item(), log_scale.exp().item()
'''
GRADED = tuple(BY_ID[q].name for q in QUESTION_IDS if q != "A1")


def _plain(value: Any) -> Any:
    """A JSON round trip: what crosses the channel."""
    return json.loads(json.dumps(value))


class InProcess(Session):
    """A session over a namespace of this process whose calls can ask the grader mid-call, as on the wire."""

    def __init__(self, *sources: str) -> None:
        self.responder = Responder(observe=True)
        for i, source in enumerate((PRELUDE, *sources)):
            assert self.responder.handle({"op": "run_cell", "index": i, "source": source, "seed": 0})["ok"]
        self.graded = GRADED
        self.answer: Any = None
        self.responder.link_to = lambda request_id: self._link

    def _link(self, message: dict[str, Any], call_back: Any) -> Any:
        if self.answer is None:
            raise carry.OracleError("no grader answers in this call")
        return _plain(self.answer(_plain(message["ask"]), lambda m: _plain(call_back(_plain(m)))["back"]))

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        return self._ask_request(request, seconds, what, None)

    def _ask_request(self, request: dict[str, Any], seconds: float, what: str, answer: Any) -> dict[str, Any]:
        self.answer = answer
        try:
            return _plain(self.responder.handle(_plain(request)))
        finally:
            self.answer = None


def _points(results: Any) -> float:
    return round(sum(r.points for r in results), 2)


# -- the runtime's record of what a call used ---------------------------------------------------------------


def _observed(source: str, name: str, **kwargs: Any) -> list[str]:
    responder = Responder(observe=True)
    responder.handle({"op": "run_cell", "index": 0, "source": PRELUDE + source, "seed": 0})
    reply = responder.handle(_plain({"op": "call", "name": name, "args": [], "seed": 0, "graded": list(GRADED),
                                     "kwargs": {k: wire.encode(v) for k, v in kwargs.items()}}))
    return reply["used"]


def _c2_args(batch: int = 2, j: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    names = ("mu_q", "logvar_q", "mu_p", "logvar_p")
    return {k: torch.randn(batch, j, generator=g, dtype=torch.float64) for k in names}


def test_a_call_records_the_graded_functions_it_used() -> None:
    caller = ("def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):\n"
              "    return expected_log_gaussian(z, z, mu_c, logvar_c)\n")
    args = {"z": torch.zeros(1, 2), "log_pi": torch.zeros(1), "mu_c": torch.zeros(1, 2), "logvar_c": torch.zeros(1, 2)}
    assert _observed(C2_RIGHT + caller, "gmvae_responsibilities", **args) == ["expected_log_gaussian"]
    assert _observed(C2_RIGHT, "expected_log_gaussian", **_c2_args()) == []  # a call of itself is no dependency


def test_a_caller_that_inlines_the_formula_uses_nothing() -> None:
    session = InProcess(C2_WRONG, C4_INLINE)
    assert session.call("gmvae_elbo", (), _example(), seed=0).used == ()


def test_a_forged_record_is_bounded_and_plain() -> None:
    assert used_names(["b", "a", 3, None, "a" * 500] + ["x"] * 1000) == ("a", "a" * 100, "b", "x")
    assert used_names("expected_log_gaussian") == () and used_names({"a": 1}) == ()


# -- the grader's oracle ------------------------------------------------------------------------------------


def _ask(oracle: Oracle, ask: Any, call_back: Any = None) -> dict[str, Any]:
    def no_call_back(message: Any) -> Any:
        raise AssertionError("no call-back expected")

    return _plain(oracle(_plain(ask), call_back or no_call_back))


def test_the_oracle_answers_with_the_reference_and_its_gradients() -> None:
    args = _c2_args()
    oracle = Oracle(("expected_log_gaussian",), 3, FUNCTIONS)
    answer = _ask(oracle, {"op": "oracle", "name": "expected_log_gaussian", "args": [],
                           "kwargs": {k: wire.tensor_to_wire(v, k) for k, v in args.items()}})
    assert answer["ok"] is True
    assert torch.equal(wire.decode(answer["value"]), reference.expected_log_gaussian(**args))
    cot = torch.tensor([1.0, -2.0], dtype=torch.float64)
    back = _ask(oracle, {"op": "backward", "handle": answer["handle"], "cotangent": wire.tensor_to_wire(cot)})
    leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    expected = torch.autograd.grad(reference.expected_log_gaussian(**leaves), list(leaves.values()), cot)
    grads = wire.decode(back["grads"])
    for name, e in zip(leaves, expected):
        assert torch.allclose(grads[name], e)


@pytest.mark.parametrize("ask", [
    {"op": "oracle", "name": "gmvae_elbo", "args": [], "kwargs": {}},  # not a dependency of this call
    {"op": "oracle", "name": "expected_log_gaussian", "args": "nope", "kwargs": {}},
    {"op": "oracle", "name": "expected_log_gaussian", "args": [{"$t": "float32", "s": [2], "d": "!!"}], "kwargs": {}},
    {"op": "oracle", "name": "expected_log_gaussian", "args": [{"$fn": "os.system", "p": {"cmd": "true"}}],
     "kwargs": {}},
    {"op": "oracle", "name": "expected_log_gaussian", "args": [], "kwargs": {}},  # the reference raises
    {"op": "oracle", "name": "expected_log_gaussian", "args": [{"$dict": [["a", 1]]}] * 4, "kwargs": {}},
    {"op": "oracle", "name": "expected_log_gaussian", "kwargs": {},
     "args": [wire.tensor_to_wire(torch.zeros((1,) * k + (2**8,) + (1,) * (3 - k))) for k in range(4)]},  # 2**32
    {"op": "backward", "handle": 0, "cotangent": None},
    {"op": "backward", "handle": "0"},
    {"op": "rm -rf"},
    {},
])
def test_the_oracle_refuses_garbage_with_a_reason(ask: dict[str, Any]) -> None:
    answer = _ask(Oracle(("expected_log_gaussian",), 0, FUNCTIONS), ask)
    assert answer["ok"] is False and isinstance(answer["error"], str) and answer["error"]


def test_the_oracle_is_bounded_in_questions() -> None:
    oracle = Oracle(("expected_log_gaussian",), 0, FUNCTIONS)
    oracle.asks = MAX_ASKS
    answer = _ask(oracle, {"op": "oracle", "name": "expected_log_gaussian", "args": [],
                           "kwargs": {k: wire.tensor_to_wire(v) for k, v in _c2_args().items()}})
    assert answer["ok"] is False and "questions" in answer["error"]


def test_a_callable_is_evaluated_in_the_student_process_with_its_gradient() -> None:
    f64 = torch.float64
    mix = D.MixtureSameFamily(D.Categorical(probs=torch.tensor([0.5, 0.5], dtype=f64)),
                              D.Normal(torch.tensor([-3.0, 3.0], dtype=f64), torch.ones(2, dtype=f64)))
    observer = carry.Observer()
    oracle = Oracle(("reverse_kl_loss",), 5, FUNCTIONS)
    observer.begin("fit_gaussian_to_mixture", ["reverse_kl_loss"],
                   lambda message, call_back: _plain(oracle(_plain(message["ask"]),
                                                            lambda m: _plain(call_back(_plain(m)))["back"])))
    namespace = {"reverse_kl_loss": lambda q, log_p_tilde, n: torch.zeros(())}  # wrong, and never run
    observer.wrap(namespace, ["reverse_kl_loss"])
    wrapped = namespace["reverse_kl_loss"]
    loc = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    loss = wrapped(D.Normal(loc, scale), mix.log_prob, 4000)
    loss.backward()
    assert observer.end() == ["reverse_kl_loss"]
    # The reference's own loss and gradient on the same draw (the oracle seeds its first question so).
    loc2, scale2 = loc.detach().clone().requires_grad_(), scale.detach().clone().requires_grad_()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed((5 * 1_000_003 + 1) % 2**63)
        expected = reference.reverse_kl_loss(D.Normal(loc2, scale2), mix.log_prob, 4000)
    expected.backward()
    assert torch.allclose(loss.detach(), expected.detach())
    assert torch.allclose(loc.grad, loc2.grad)
    assert torch.allclose(scale.grad, scale2.grad)


# -- regrading: the points a right dependency would have earned ---------------------------------------------


def _example() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    b, d, j, k = 2, 3, 2, 3
    x = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    return {"x": (x(b, d) > 0).double(), "x_logits": x(1, b, d), "mu_z": x(b, j), "logvar_z": x(b, j) / 2,
            "gamma": torch.softmax(x(b, k), -1), "log_pi": torch.log_softmax(x(k), -1), "mu_c": x(k, j),
            "logvar_c": x(k, j) / 2}


def _value_check(ctx: Context) -> None:
    example = _example()
    args = {k: example[k] for k in BY_ID[ctx.check.qid].params} if ctx.check.qid == "C4" else _c2_args()
    expected = getattr(reference, ctx.name)(**args)
    got = ctx.call(**args)
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(got, expected)):
        ctx.fail("differs from the reference", expected=expected, got=got)


def _gradient_check(ctx: Context) -> None:
    args = _example()
    reply = ctx.reply(grad=[{"output": None, "cotangent": torch.tensor([1.0, -0.5], dtype=torch.float64)}],
                      **{k: Leaf(v, k) if k in ("mu_z", "logvar_z") else v for k, v in args.items()})
    leaves = {k: v.clone().requires_grad_(k in ("mu_z", "logvar_z")) for k, v in args.items()}
    expected = torch.autograd.grad(reference.gmvae_elbo(**leaves), [leaves["mu_z"], leaves["logvar_z"]],
                                   torch.tensor([1.0, -0.5], dtype=torch.float64))
    for name, e in zip(("mu_z", "logvar_z"), expected):
        g = reply.grads[0].get(name)
        if not (isinstance(g, torch.Tensor) and torch.allclose(g, e)):
            ctx.fail(f"the gradient w.r.t. {name} differs", expected=e, got=g)


#: One value check of C2, a value and a gradient check of C4: the mechanism, in milliseconds (the real
#: questions run in the slow tests below).
SMALL = {"C2": (Check("C2", "value", 5, "public", "", _value_check),),
         "C4": (Check("C4", "value", 6, "public", "", _value_check),
                Check("C4", "gradient", 5, "public", "", _gradient_check))}


def _carried(session: Session, questions: dict[str, tuple[Check, ...]] = SMALL
             ) -> tuple[dict[str, tuple[CheckResult, ...]], tuple[tuple[str, str], ...]]:
    used: dict[str, set[str]] = {q: set() for q in questions}
    errors: list[str] = []
    by_qid = {q: _grade_question(session, questions[q], 0, errors, used=used[q]) for q in questions}
    carried = _carry_forward(session, questions, by_qid, used, 0, errors)
    assert errors == []
    return by_qid, carried


def test_c4_on_a_wrong_c2_keeps_its_points() -> None:
    by_qid, carried = _carried(InProcess(C2_WRONG, C4_CALLER))
    assert _points(by_qid["C2"]) == 0 and _points(by_qid["C4"]) == 11
    assert carried == (("C4", "C2"),)
    assert carried_note("C4", "C2") == "C4 gmvae_elbo: graded with C2 taken as correct; C2 loses its own points"


def test_a_right_dependency_grades_normally() -> None:
    by_qid, carried = _carried(InProcess(C2_RIGHT, C4_CALLER))
    assert (_points(by_qid["C2"]), _points(by_qid["C4"]), carried) == (5, 11, ())


def test_a_caller_that_inlines_the_formula_grades_normally() -> None:
    by_qid, carried = _carried(InProcess(C2_WRONG, C4_INLINE))
    assert (_points(by_qid["C2"]), _points(by_qid["C4"]), carried) == (0, 11, ())


def test_a_wrong_caller_stays_wrong_with_a_right_dependency() -> None:
    by_qid, carried = _carried(InProcess(C2_WRONG, C4_CALLER_WRONG))
    assert (_points(by_qid["C4"]), carried) == (0, ())


HOSTILE_C4 = C4_CALLER_WRONG + '''
def _fake():
    # reach the runtime's observer through the wrapper, claim dependencies, ask garbage
    cells = expected_log_gaussian.__closure__
    observer = next(c.cell_contents for c in cells if type(c.cell_contents).__name__ == "Observer")
    observer.used.update({"expected_log_gaussian", "gmvae_responsibilities", "nonsense"})
    for ask in ({"op": "oracle", "name": "gmvae_elbo", "args": [], "kwargs": {}}, {"op": "backward", "handle": 99},
                {"op": "oracle", "name": "expected_log_gaussian", "args": [[[[[]]]]], "kwargs": {}}):
        try:
            observer._exchange(ask)
        except Exception:
            pass
_real = gmvae_elbo
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    _fake()
    return _real(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c)
'''


def test_a_forged_dependency_and_garbage_questions_gain_nothing() -> None:
    session = InProcess(C2_WRONG, HOSTILE_C4)
    session.call("expected_log_gaussian", (), _c2_args(), seed=0)  # the wrapper the hostile code looks for
    by_qid, carried = _carried(session)
    assert (_points(by_qid["C4"]), carried) == (0, ())


@pytest.mark.slow
def test_the_full_c4_on_a_wrong_c2_keeps_every_point() -> None:
    by_qid, carried = _carried(InProcess(C2_WRONG, C4_CALLER), {q: QUESTIONS[q] for q in ("C2", "C4")})
    assert _points(by_qid["C2"]) < BY_ID["C2"].points
    assert _points(by_qid["C4"]) == BY_ID["C4"].points and carried == (("C4", "C2"),)


@pytest.mark.slow
def test_a5_descending_on_a_wrong_a3_keeps_its_points() -> None:
    session = InProcess(A3_NO_ENTROPY, reference_a2(), A5_DESCENT.format(steps=300))
    by_qid, carried = _carried(session, {q: QUESTIONS[q] for q in ("A3", "A5")})
    assert _points(by_qid["A3"]) < BY_ID["A3"].points
    assert _points(by_qid["A5"]) == BY_ID["A5"].points and carried == (("A5", "A3"),)


def reference_a2() -> str:
    return "def forward_kl_loss(q, x_p):\n    return -q.log_prob(x_p).mean()\n"


def test_reverse_descent_through_the_oracle_finds_the_mode() -> None:
    """The student's optimiser descends on the grader's A3 (values and gradients through ``_Carried``)."""
    session = InProcess(A3_NO_ENTROPY, reference_a2(), A5_DESCENT.format(steps=50))
    mixture = {"logits": torch.zeros(2, dtype=torch.float64), "locs": torch.tensor([-3.0, 3.0], dtype=torch.float64),
               "scales": torch.ones(2, dtype=torch.float64)}
    kwargs = {"p": wire.Fn("normal_mixture_1d", mixture), "direction": "reverse", "init_loc": 1.5, "init_scale": 1.0}
    without = session.call("fit_gaussian_to_mixture", (), kwargs, seed=1)
    oracle = ("reverse_kl_loss",)
    carried = session.call("fit_gaussian_to_mixture", (), kwargs, seed=1,
                           oracle=(oracle, Oracle(oracle, 1, FUNCTIONS)))
    assert without.used == carried.used == ("reverse_kl_loss",)
    loc, scale = carried.value
    assert abs(loc - 2.984) < 0.2 and abs(scale - 1.023) < 0.2, carried.value
    assert without.value[1] < 0.5  # without the entropy term the student's own fit collapses onto the mode


@pytest.mark.slow
def test_the_sandbox_carries_c4_on_a_wrong_c2(tmp_path: Any) -> None:
    from autograder.grading import grade_notebook
    from autograder.sandbox.process import Sandbox

    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": s}
             for s in (PRELUDE, C2_WRONG, C4_CALLER)]
    data = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()
    with Sandbox() as sandbox:
        graded = grade_notebook(data, sandbox=sandbox, qids=("C2", "C4"))
    assert graded.scores["C4"] == BY_ID["C4"].points and graded.scores["C2"] < BY_ID["C2"].points
    assert graded.carried == (("C4", "C2"),) and graded.gradable
    assert math.isfinite(graded.total)


@pytest.mark.parametrize("back", [
    {"ok": False, "error": "ZeroDivisionError: boom"},
    {"ok": True, "value": wire.tensor_to_wire(torch.zeros(3, 2)), "grad": None},  # not one value per point
    {"ok": True, "value": wire.tensor_to_wire(torch.zeros(4)), "grad": wire.tensor_to_wire(torch.zeros(2))},
    {"ok": True, "value": {"$obj": "Evil"}, "grad": None},
    {"ok": True, "value": {"$t": "float64", "s": [4], "d": "AAAA"}},
])
def test_a_callable_that_answers_garbage_gets_a_refusal(back: dict[str, Any]) -> None:
    q = {"$fn": "normal", "p": {"loc": wire.tensor_to_wire(torch.tensor(0.5, dtype=torch.float64), "t0"),
                                "scale": wire.tensor_to_wire(torch.tensor(1.0, dtype=torch.float64), "t1")}}
    ask = {"op": "oracle", "name": "reverse_kl_loss", "args": [q, {"$fn": "callback", "p": {"id": 0}}, 4],
           "kwargs": {}}
    answer = _ask(Oracle(("reverse_kl_loss",), 0, FUNCTIONS), ask, lambda message: _plain(back))
    assert answer["ok"] is False and answer["error"]


@pytest.mark.slow
def test_the_grader_time_answering_is_not_the_students() -> None:
    from autograder.notebook import CodeCell
    from autograder.sandbox.process import Sandbox
    from autograder.sandbox.session import StudentSession

    names = ("expected_log_gaussian",)
    oracle = Oracle(names, 0, FUNCTIONS)

    def slow(ask: dict[str, Any], call_back: Any) -> dict[str, Any]:
        time.sleep(1.5)
        return oracle(ask, call_back)

    cells = (CodeCell(0, PRELUDE), CodeCell(1, C2_WRONG), CodeCell(2, C4_CALLER))
    with Sandbox() as sandbox, StudentSession(sandbox, cells) as session:
        session.graded = GRADED
        before, start = session.wall_spent, time.monotonic()
        reply = session.call("gmvae_elbo", (), _example(), seed=0, oracle=(names, slow))
        elapsed, charged = time.monotonic() - start, session.wall_spent - before
    assert torch.allclose(reply.value, reference.gmvae_elbo(**_example()))
    assert reply.used == names and elapsed > 1.5 and charged < elapsed - 1.4


def test_the_feedback_and_the_record_keep_the_note() -> None:
    from autograder.grading import Graded
    from autograder.reports.feedback import render_feedback
    from autograder.reports.graded_record import read_graded, render_graded

    graded = Graded("k", "ok", {"C2": 0.0, "C4": 11.0}, (), (), True, carried=(("C4", "C2"),))
    assert "C4 gmvae\\_elbo: graded with C2 taken as correct; C2 loses its own points" in render_feedback("s", graded)
    assert read_graded(render_graded(graded)) == graded
    assert read_graded(render_graded(graded).replace('"C2"]]', '"Z9"]]')) is None  # not a question id


def test_results_json_says_which_question_was_carried_and_keeps_it_as_data() -> None:
    import json

    from autograder.grading import Graded
    from autograder.reports.results_json import render_results

    doc = json.loads(render_results(Graded("k", "ok", {"C2": 0.0, "C4": 11.0}, (), (), True, carried=(("C4", "C2"),))))
    assert "graded with C2 taken as correct; C2 loses its own points" in doc["output"]
    assert doc["extra_data"]["carried"] == [{"question": "C4", "dependency": "C2"}]
    plain = json.loads(render_results(Graded("k", "ok", {"C2": 5.0, "C4": 11.0}, (), (), True)))
    assert "carried" not in plain["extra_data"] and "taken as correct" not in plain["output"]
