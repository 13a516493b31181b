"""Where the grader keeps its caches: never in the folder it was started from.

``DGM_AUTOGRADER_CACHE`` if set, else ``$XDG_CACHE_HOME/dgm-autograder``
(``~/.cache/dgm-autograder``). Hypothesis's own files (the constants it
collects from source modules) go to its ``hypothesis/`` subfolder unless
``HYPOTHESIS_STORAGE_DIRECTORY`` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The grader's cache folder (not created here)."""
    if where := os.environ.get("DGM_AUTOGRADER_CACHE"):
        return Path(where)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dgm-autograder"


def use_cache_for_hypothesis() -> None:
    """Point hypothesis's storage at the cache folder, unless the user chose one."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(cache_dir() / "hypothesis")
