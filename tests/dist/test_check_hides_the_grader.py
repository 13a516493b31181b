"""The student bundle's ``check`` runs student code in the same sandbox: the probe of
tests/hostile/routes.py finds no grader file (the bundle's engine and tape, this repository, the editable
finder in the site folder ``clean_python`` reuses) and no host folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.sandbox.isolation import detect
from tests.dist.helpers import ROOT, run
from tests.hostile import routes


@pytest.mark.slow
@pytest.mark.skipif(detect().level != "namespaces", reason="the fallback (no bubblewrap) cannot hide files")
def test_check_in_the_bundle_hides_the_grader_and_the_host(clean_python, bundle, tmp_path):
    sites = [Path(s) for s in (*routes.site_dirs(str(clean_python)), *routes.site_dirs(routes.THIS_PYTHON))]
    targets = [*routes.grader_places(str(clean_python), bundle, routes.CLEAN_ENV), *routes.package_files(bundle),
               *routes.package_files(ROOT), *(c for s in sites for c in routes.copies(s)),
               str(bundle / "assignment.ipynb"), routes.sentinel(tmp_path)]
    probe = tmp_path / "probe.ipynb"
    probe.write_bytes(routes.notebook(targets))
    done = run(clean_python, "-m", "autograder", "check", str(probe), "-q", "B2", cwd=bundle)
    assert done.returncode == 1, done.stdout + done.stderr
    assert routes.verdict(done.stdout) == routes.CLEAN
