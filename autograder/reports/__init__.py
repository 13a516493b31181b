"""Report writers: per student ``results.json`` and ``feedback.md``, per class ``gradebook.csv``."""

from autograder.reports.atomic import write_atomic
from autograder.reports.feedback import render_feedback
from autograder.reports.gradebook import GradebookRow, render_gradebook
from autograder.reports.results_json import render_results, read_summary

__all__ = ["GradebookRow", "read_summary", "render_feedback", "render_gradebook", "render_results", "write_atomic"]
