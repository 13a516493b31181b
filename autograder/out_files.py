"""The names that a run, and the commands on its output, write next to the students' folders in ``OUT``.

Held in one place below every module that writes them, so that discovery can
keep any student's folder from taking one (``discovery.class_level_names``).
"""

OVERRIDES = "overrides.csv"  # course.overrides
LATENESS = "lateness.json"  # course.amend
REVIEW_KEY = "review-key"  # written.codes
LMS = ("canvas", "moodle")  # course.lms: OUT/<lms>.csv
OTHERS = ("gradebook.csv", "report.html", "timing.csv", "similarity.csv", "changes.csv", "review")
