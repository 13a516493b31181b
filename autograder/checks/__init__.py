"""Every check of every question, keyed by question id.

``QUESTIONS["D1"]`` lists the checks of D1 in the order they run; the bodies
live in one module per part: ``kl`` (A), ``gaussian`` (B), ``gmvae`` (C1–C3),
``gmvae_elbo`` (C4), ``vq`` (D), ``vae`` (E1, E5, E6) and ``vae_estimators`` (E2–E4).
"""

from __future__ import annotations

import importlib

from autograder.cache import use_cache_for_hypothesis

use_cache_for_hypothesis()  # before any check runs: nothing is written where the grader was started

from autograder.checks.framework import Check, CheckResult, run_check, skipped
from autograder.checks.registry import CHECKS
from autograder.contract import QUESTION_IDS

FAMILIES = ("kl", "gaussian", "gmvae", "gmvae_elbo", "vq", "vae", "vae_estimators")

for _family in FAMILIES:
    importlib.import_module(f"autograder.checks.{_family}")

QUESTIONS: dict[str, tuple[Check, ...]] = {qid: tuple(c for c in CHECKS if c.qid == qid) for qid in QUESTION_IDS}

__all__ = ["QUESTIONS", "Check", "CheckResult", "run_check", "skipped"]
