"""The graded output folder the merge tests start from."""

import pytest

from tests.written.helpers import graded_out


@pytest.fixture
def graded(tmp_path):
    """``(submissions, out)`` of three graded students and their codes (see ``helpers.graded_out``)."""
    return graded_out(tmp_path)
