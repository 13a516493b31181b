"""Running a course around the grades: overrides, lateness, LMS export, what changed between runs, similarity.

Each module reads what a grading run wrote and adds one thing; none of them
grades or runs student code.
"""
