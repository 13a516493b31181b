"""The runs of a property check that hypothesis made in this process, kept to replay for the next submission.

Drawing examples and shrinking failures is most of what a property check
costs the grader. Neither depends on who is graded, only on what the checks'
calls answered: a check's strategy has no oracle and no student input, its
seed is a function of the grader's seed and the check, and hypothesis (no
database, no deadline, one bug reported) decides which example to try next
from the outcomes so far alone — passed, or failed with a given *origin*
(exception type and where it was raised, ``InterestingOrigin``).

So each step of a run (the example hypothesis chose, and its choice
sequence) is kept in a tree keyed by the outcomes that led to it, with where
hypothesis ended the run. A later run walks the tree, calling the check body
on a copy of each step's example: while its outcomes follow known branches,
the steps are hypothesis's own; when the walk reaches the end of a run, that
is the result (passed, or the exception of the last step, as hypothesis
would raise it). At an outcome never seen there, hypothesis runs as usual,
and each step already walked is not run again — it returns, or raises the
same exception, at once — so the student's code sees exactly the calls it
would have seen, and the shrunk input and the message are hypothesis's.

The tree holds only what the strategies drew and the outcome kinds (never a
value a student sent), and a walk follows this student's own outcomes, so no
grade depends on who was graded before. A step whose choice sequence differs
from the tree, or an example that cannot be copied, turns the tree off for
good (every later run is plain hypothesis).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable
from random import Random
from typing import Any

import torch

from autograder.sandbox.runtime.wire import Fn

try:  # hypothesis's internals, as of 6.170: with another hypothesis where they moved, every run is plain
    from hypothesis.control import current_build_context
    from hypothesis.internal.conjecture.choice import choices_key
    from hypothesis.internal.entropy import RANDOMS_TO_MANAGE, _seeded_state, deterministic_PRNG
    from hypothesis.internal.escalation import InterestingOrigin
    AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the installed hypothesis
    AVAILABLE = False

MAX_STEPS = 1000  # of one check's tree (then it stops growing): a few distinct failures shrunk, a few MB
Outcome = Any  # an ``InterestingOrigin``, or None: the example passed


class Step:
    """One call of the check body that hypothesis made: the example (a deep copy) and what came next."""

    __slots__ = ("choices", "example", "plain", "next", "end")

    def __init__(self, choices: tuple[Any, ...], example: Any, plain: bool) -> None:
        self.choices, self.example = choices, example
        self.plain = plain  # the copy is ``_plain_copy``'s: its tensors are leaves of its own, copied fast
        self.next: dict[Outcome, Step] = {}  # the step hypothesis took after each outcome of this one
        self.end: set[Outcome] = set()  # the outcomes after which hypothesis ended the run


class Record:
    """The tree of one check's runs (the same seed, the same strategy)."""

    def __init__(self, usable: bool = True) -> None:
        self.root: Step | None = None
        self.steps = 0
        self.usable = usable


_RECORDS: dict[tuple[Any, ...], Record] = {}


def record(key: tuple[Any, ...]) -> Record:
    """The tree of the check body, check and seed ``key`` (a new one the first time)."""
    return _RECORDS.setdefault(key, Record(usable=AVAILABLE))


def forget() -> None:
    """Drop every tree (the next run of each check is plain hypothesis)."""
    _RECORDS.clear()


def _choices() -> tuple[Any, ...] | None:
    """The choice key of the example hypothesis is running now (None if it cannot be read)."""
    try:
        return choices_key(current_build_context().data.choices)
    except Exception:  # noqa: BLE001 - an internal of hypothesis: unreadable means "do not replay"
        return None


def _outcome(exc: BaseException | None) -> Outcome:
    return None if exc is None else InterestingOrigin.from_exception(exc)


_ATOMS = frozenset({type(None), bool, int, float, str, torch.dtype})  # what deepcopy returns as is


class _NotPlain(Exception):
    """A value ``_copied`` leaves to ``copy.deepcopy``."""


def _copied(example: Any) -> Any:
    """``copy.deepcopy(example)``, in a fraction of its time for what strategies draw: tuples, lists, dicts and
    ``Fn`` of numbers, strings and tensors that are leaves owning their storage alone; anything else is deep-copied."""
    return _kept(example)[0]


def _kept(example: Any) -> tuple[Any, bool]:
    """``_copied(example)``, and whether it is a plain copy (not deep-copied)."""
    try:
        return _plain_copy(example, {}, functools.partial(_tensor_copy, storages=set())), True
    except _NotPlain:
        return copy.deepcopy(example), False


def _fresh(step: Step) -> Any:
    """A copy of ``step``'s example, as ``copy.deepcopy`` makes it."""
    return _plain_copy(step.example, {}, _own_tensor_copy) if step.plain else _copied(step.example)


def _plain_copy(value: Any, memo: dict[int, Any], tensor_copy: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return value
    if id(value) in memo:  # one object twice stays one object, as with deepcopy
        return memo[id(value)]
    new: Any
    if kind is torch.Tensor:
        new = tensor_copy(value)
    elif kind is tuple:
        items = [_plain_copy(v, memo, tensor_copy) for v in value]
        new = value if all(a is b for a, b in zip(items, value)) else tuple(items)  # deepcopy's tuple rule
    elif kind is list:
        new = memo[id(value)] = []
        new.extend(_plain_copy(v, memo, tensor_copy) for v in value)
    elif kind is dict:
        new = memo[id(value)] = {}
        for k, v in value.items():
            new[_plain_copy(k, memo, tensor_copy)] = _plain_copy(v, memo, tensor_copy)
    elif kind is Fn:
        new = Fn(value.kind, _plain_copy(value.params, memo, tensor_copy))
    else:
        raise _NotPlain
    memo[id(value)] = new
    return new


def _own_tensor_copy(t: torch.Tensor) -> torch.Tensor:
    """``_tensor_copy`` of a tensor it made (a plain step's, never handed out): its checks hold by construction."""
    return t.detach().clone().requires_grad_() if t.requires_grad else t.clone()


def _tensor_copy(t: torch.Tensor, storages: set[int]) -> torch.Tensor:
    """``t`` copied as deepcopy copies it, for a plain CPU leaf that alone in the example uses its whole storage
    (deepcopy would keep storage shared between tensors, and copies all of it)."""
    storage = t.untyped_storage()
    if not (t.is_leaf and t.grad is None and t.layout == torch.strided and t.device.type == "cpu"
            and not (t.is_quantized or t.is_conj() or t.is_neg() or t.__dict__)
            and t.storage_offset() == 0 and storage.nbytes() == t.numel() * t.element_size()
            and storage.data_ptr() not in storages):
        raise _NotPlain
    storages.add(storage.data_ptr())
    new = t.detach().clone()
    if new.stride() != t.stride():  # clone keeps the strides of dense tensors only
        raise _NotPlain
    return new.requires_grad_() if t.requires_grad else new


class _Seeding:
    """``deterministic_PRNG()`` around each example of a walk, as hypothesis runs every example, for less: the
    global generators' states are saved before the first example and restored after the last, and in between
    only seeded again. That is the same while the generators hypothesis manages stay the same; when they change,
    a new ``deterministic_PRNG()`` begins (the states it saves are those each restore would have left)."""

    def __init__(self) -> None:
        self._prng = contextlib.ExitStack()
        self._managed: list[int] | None = None

    def __enter__(self) -> _Seeding:
        return self

    def __exit__(self, *exc: object) -> None:
        self._prng.close()

    def example(self) -> None:
        """Seed the generators as ``deterministic_PRNG()`` does before an example."""
        if list(RANDOMS_TO_MANAGE.data) == self._managed:  # its keys as hypothesis reads them (``.data``): cheaper
            _reseed()
            return
        self._prng.close()
        self._prng.enter_context(deterministic_PRNG())
        self._managed = list(RANDOMS_TO_MANAGE.data)


def _reseed() -> None:
    """What entering ``deterministic_PRNG()`` does to the generators it manages, without saving their states."""
    state, _ = _seeded_state(0)
    for ref in list(RANDOMS_TO_MANAGE.data.values()):
        r = ref()
        if r is None:  # collected
            continue
        if type(r) is Random:
            r.setstate(state)
        else:
            r.seed(0)


class Replay:
    """One run of a check's body: a walk of the known steps first, then hypothesis if the walk does not end it."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.path: list[Step] = []  # the steps of this run so far
        self.raised: list[Exception | None] = []  # what each of them raised in this run
        self.walked = 0  # steps run by the walk, before hypothesis
        self.calls = 0  # examples hypothesis has handed to the body
        self.growing = record.usable  # new steps of this run go into the tree

    def walk(self, run: Callable[[Any], None]) -> bool:
        """Run ``run`` on copies of the known steps this run's outcomes lead to; True when the run ended passing.

        Raises the last step's exception when the run ended there failing.
        """
        step = self.record.root if self.record.usable else None
        with _Seeding() as seeding:
            while step is not None:
                try:
                    fresh = _fresh(step)
                except Exception:  # noqa: BLE001 - cannot be copied after all: plain hypothesis from here
                    self._off()
                    return False
                try:
                    seeding.example()  # as hypothesis runs every example
                    run(fresh)
                    exc: Exception | None = None
                except Exception as e:  # noqa: BLE001 - an outcome of the check, judged as hypothesis judges it
                    exc = e
                self.path.append(step)
                self.raised.append(exc)
                self.walked += 1
                outcome = _outcome(exc)
                if outcome in step.end:
                    if exc is not None:
                        raise exc
                    return True
                step = step.next.get(outcome)
        return False

    def example(self, example: Any, run: Callable[[], None]) -> None:
        """Hypothesis hands ``example`` to the body: answer it from the walk, or ``run`` it and keep the step."""
        n, self.calls = self.calls, self.calls + 1
        if n < self.walked:  # run by the walk already: never call the student twice for one step
            if self.path[n].choices == _choices():
                raised = self.raised[n]
                if raised is not None:
                    raise raised
                return
            self._off()  # hypothesis chose another example than the tree says: the tree is wrong
        elif self.growing:
            self._keep(example)
        try:
            run()
        except Exception as exc:
            self._outcome_of_new(exc)
            raise
        self._outcome_of_new(None)

    def ended(self, exc: BaseException | None) -> None:
        """Hypothesis ended the run (passing, or raising ``exc``): mark where, if this run kept its steps."""
        if not self.growing or not self.path or len(self.raised) != len(self.path):
            return
        last = self.raised[-1]
        if exc is None if last is None else exc is last:
            self.path[-1].end.add(_outcome(last))

    def _keep(self, example: Any) -> None:
        """A step hypothesis takes after this run's outcomes so far: added to the tree."""
        if self.record.steps >= MAX_STEPS or len(self.raised) != len(self.path):
            self._off(for_good=False)
            return
        choices = _choices()
        try:
            kept, plain = _kept(example)
        except Exception:  # noqa: BLE001 - an example that cannot be copied: no tree for this check
            choices = None
        if choices is None:
            self._off()
            return
        step = Step(choices, kept, plain)
        if not self.path:
            if self.record.root is not None:
                self._off()
                return
            self.record.root = step
        else:
            after = self.path[-1].next
            outcome = _outcome(self.raised[-1])
            if outcome in after:  # the tree already knew this step: the walk should have taken it
                self._off()
                return
            after[outcome] = step
        self.record.steps += 1
        self.path.append(step)

    def _outcome_of_new(self, exc: Exception | None) -> None:
        if self.growing and len(self.raised) == len(self.path) - 1:
            self.raised.append(exc)

    def _off(self, for_good: bool = True) -> None:
        """Stop growing the tree in this run; ``for_good``: never use it again."""
        self.growing = False
        if for_good:
            self.record.usable = False
