"""What each property check's examples catch: a power study over one-bug mutants.

    python bench/check_power.py [-q D1 D2 ...] [--seeds 10] [--budget QID/NAME-PREFIX=N ...]

For every property check (a ``for_all`` body) of the chosen questions and
every mutant of its question (the ``MUTANTS`` of tests/checks/test_*.py and
the held-out ones below), the check is run under seeds 0..S-1 in a real
sandbox, and the 1-based index of the first example hypothesis handed to the
body that failed is kept ("never" when the check passed). The table gives,
per check: the budget now, the mutants it catches, the worst first-failing
index over them and the seeds, and the budget the rule of docs/check_power.md
proposes. ``--budget`` runs the study with another budget for a check (its
qid and the start of its name), to see what the proposed budget catches.

The kept runs of ``checks.drawn`` are forgotten before every check, so every
example goes through hypothesis and is counted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "student_template"))

from autograder.checks import QUESTIONS, Check, run_check  # noqa: E402
from autograder.checks import drawn  # noqa: E402
from autograder.checks.framework import QUESTION_SECONDS  # noqa: E402
from autograder.notebook import CodeCell  # noqa: E402
from autograder.sandbox.process import Sandbox  # noqa: E402
from autograder.sandbox.session import StudentSession  # noqa: E402
from tests.checks.conftest import PRELUDE, mutated, reference_source  # noqa: E402

FLOOR = 8  # hypothesis needs a few examples beyond the simplest
WORTH = 5  # student calls a check must save for its budget to change
TEST_FILES = ("kl", "gaussian", "gmvae", "vae", "vq")

#: Held-out mutants: one plausible mistake each, for the questions whose property checks cost the most calls.
HELD_OUT: list[tuple[str, str, Callable[[], str]]] = [
    ("A2", "first sample only", lambda: "def forward_kl_loss(q, x_p):\n    return -q.log_prob(x_p[0]).mean()\n"),
    ("A2", "divided by n - 1", lambda: mutated(reference_source("forward_kl_loss"), "-q.log_prob(x).mean()",
                                               "-q.log_prob(x).sum() / (x_p.shape[0] - 1)")),
    ("A2", "x_p cast to float32", lambda: mutated(reference_source("forward_kl_loss"), "q.log_prob(x)",
                                                  "q.log_prob(x.float())")),
    ("A2", "diagonal Normal from q's mean and stddev", lambda: mutated(
        reference_source("forward_kl_loss"), "-q.log_prob(x).mean()",
        "-(D.Independent(D.Normal(q.mean, q.stddev), 1) if q.event_shape else q).log_prob(x).mean()")),
    ("B4", "log det from the diagonal of Σ", lambda: mutated(
        reference_source("full_gaussian_log_prob"), "- _log_det_scale_tril(L)",
        "- 0.5 * (L @ L.mT).diagonal(dim1=-2, dim2=-1).log().sum(-1)")),
    ("B4", "whitened in float32", lambda: mutated(
        reference_source("full_gaussian_log_prob"), "eps = _whiten(z - mu, L)",
        "eps = _whiten((z - mu).float(), L.float()).to(z.dtype)")),
    ("D1", "indices as int32", lambda: mutated(reference_source("quantize"), ".argmin(-1)  #", ".argmin(-1).int()  #")),
    ("D1", "expanded distance ‖z‖² − 2 z·e + ‖e‖²", lambda: mutated(
        reference_source("quantize"), "_squared_distances(z_e, codebook)",
        "(z_e.square().sum(-1, keepdim=True) - 2 * z_e @ codebook.T + codebook.square().sum(-1))")),
    ("D1", "argmin over the flattened batch", lambda: mutated(
        reference_source("quantize"), "_squared_distances(z_e, codebook).argmin(-1)",
        "_squared_distances(z_e, codebook).reshape(-1, codebook.shape[0]).argmin(-1)")),
    ("D2", "β on the codebook loss", lambda: mutated(
        reference_source("vq_losses"), "return codebook_loss, commitment_loss",
        "return beta * codebook_loss, commitment_loss / beta")),
    ("D2", "β fixed at 0.25", lambda: mutated(
        reference_source("vq_losses"), "commitment_loss = beta *", "commitment_loss = 0.25 *")),
    ("D2", "mean over the batch, sum over D", lambda: mutated(
        reference_source("vq_losses"), "codebook_loss = (z_e.detach() - e).square().mean()",
        "codebook_loss = (z_e.detach() - e).square().sum(-1).mean()")),
    ("D3", "decay on the new statistics", lambda: mutated(
        reference_source("ema_codebook_update"), "new_size = decay * cluster_size + (1 - decay) * counts",
        "new_size = (1 - decay) * cluster_size + decay * counts")),
    ("D3", "smoothed count not rescaled by Σ N", lambda: mutated(
        reference_source("ema_codebook_update"), "cluster_size.shape[0] * eps) * total",
        "cluster_size.shape[0] * eps)")),
    ("D3", "bincount without minlength", lambda: mutated(
        reference_source("ema_codebook_update"),
        "counts = torch.zeros(k, dtype=dtype, device=z_e.device).index_add(0, flat_idx, torch.ones_like(flat_z[:, 0]))",
        "counts = torch.bincount(flat_idx).to(dtype)")),
    ("D3", "indices not flattened", lambda: mutated(
        reference_source("ema_codebook_update"), "flat_idx = indices.reshape(-1)", "flat_idx = indices")),
]


@dataclass
class Mutant:
    qid: str
    bug: str
    source: str


@dataclass
class Power:
    """One property check's first-failing indices: ``firsts[mutant][seed]`` (None: never failed)."""

    check: Check
    budget: int
    firsts: dict[str, list[int | None]] = field(default_factory=dict)

    def caught(self) -> list[str]:
        return [bug for bug, seeds in self.firsts.items() if any(i is not None for i in seeds)]

    def worst(self) -> int | None:
        found = [i for seeds in self.firsts.values() for i in seeds if i is not None]
        return max(found) if found else None

    def proposed(self) -> int:
        """max(FLOOR, 2 × worst), never above the budget now; the budget now with no evidence."""
        worst = self.worst()
        return self.budget if worst is None else min(self.budget, max(FLOOR, 2 * worst))


def budget_cell(check: Check) -> Any | None:
    """The closure cell holding a ``for_all`` body's ``max_examples`` (None: not a property check)."""
    names = check.body.__code__.co_freevars
    return check.body.__closure__[names.index("max_examples")] if "max_examples" in names else None


def mutants(qids: set[str]) -> list[Mutant]:
    """The MUTANTS of the check tests and the held-out ones, of the questions ``qids``."""
    found = []
    for name in TEST_FILES:
        module = importlib.import_module(f"tests.checks.test_{name}")
        found += [Mutant(m[0], m[1], m[2]) for m in module.MUTANTS if m[0] in qids]
    found += [Mutant(qid, bug, make()) for qid, bug, make in HELD_OUT if qid in qids]
    return found


class Counter:
    """Counts the examples hypothesis hands to a body (``drawn.Replay.example``) and the first that failed."""

    def __init__(self) -> None:
        self.calls, self.first = 0, None
        self._original = drawn.Replay.example

    def reset(self) -> None:
        self.calls, self.first = 0, None

    def __enter__(self) -> Counter:
        original, counter = self._original, self

        def example(replay: drawn.Replay, value: Any, run: Callable[[], None]) -> None:
            def counted() -> None:
                counter.calls += 1
                try:
                    run()
                except Exception:
                    counter.first = counter.first or counter.calls
                    raise
            original(replay, value, counted)

        drawn.Replay.example = example  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        drawn.Replay.example = self._original  # type: ignore[method-assign]


def first_failures(sandbox: Sandbox, mutant: Mutant, checks: list[Check], seed: int,
                   counter: Counter) -> Iterator[tuple[Check, int | None]]:
    """Each property check of ``checks`` on ``mutant`` under ``seed``: its first failing example, or None."""
    cells = (CodeCell(0, PRELUDE), CodeCell(1, mutant.source))
    with StudentSession(sandbox, cells) as session:
        assert session.runs[1].status == "ok", (mutant.bug, session.runs[1].error)
        deadline = time.monotonic() + QUESTION_SECONDS
        for check in checks:
            drawn.forget()
            counter.reset()
            result = run_check(session, check, seed, deadline)
            if result.status != "passed" and counter.first is None:
                print(f"  {check.qid} {check.name!r} failed outside its examples on {mutant.bug!r}", file=sys.stderr)
            yield check, (counter.first if result.status != "passed" else None)


def study(qids: list[str], seeds: int, budgets: dict[str, int]) -> list[Power]:
    """The power of every property check of ``qids`` over their mutants and seeds 0..seeds-1."""
    powers: dict[str, Power] = {}
    for qid in qids:
        for check in QUESTIONS[qid]:
            cell = budget_cell(check)
            if cell is None:
                continue
            for key, n in budgets.items():
                if f"{check.qid}/{check.name}".startswith(key):
                    cell.cell_contents = n
            powers[f"{qid}/{check.name}"] = Power(check, cell.cell_contents)
    with Sandbox() as sandbox, Counter() as counter:
        for mutant in mutants(set(qids)):
            checks = [p.check for p in powers.values() if p.check.qid == mutant.qid]
            for seed in range(seeds):
                for check, first in first_failures(sandbox, mutant, checks, seed, counter):
                    powers[f"{check.qid}/{check.name}"].firsts.setdefault(mutant.bug, []).append(first)
            print(f"  done {mutant.qid} {mutant.bug}", file=sys.stderr, flush=True)
    return list(powers.values())


def table(powers: list[Power]) -> str:
    """Check, budget now, mutants caught (of those of its question), worst first-failing index, proposed."""
    head = f"{'check':64} {'budget':>6} {'caught':>7} {'worst':>5} {'proposed':>8}"
    rows = [head, "-" * len(head)]
    for p in powers:
        worst = p.worst()
        rows.append(f"{p.check.qid + ' ' + p.check.name:64.64} {p.budget:6d} {len(p.caught()):3d}/{len(p.firsts):<3d} "
                    f"{'never' if worst is None else worst:>5} {p.proposed():8d}")
        for bug in p.caught():
            seeds = " ".join("-" if i is None else str(i) for i in p.firsts[bug])
            rows.append(f"    {bug[:50]:50} {seeds}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--questions", nargs="+", default=sorted(QUESTIONS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", nargs="*", default=[], help="QID/NAME-PREFIX=N: run with this budget")
    args = parser.parse_args()
    budgets = {k: int(v) for k, v in (b.rsplit("=", 1) for b in args.budget)}
    for qid in args.questions:  # one question at a time: each table as soon as it is known
        print(table(study([qid.upper()], args.seeds, budgets)), flush=True)


if __name__ == "__main__":
    main()
