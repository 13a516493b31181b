"""Running a course around the grades: similarity of the students' code, LMS export, what changed between runs.

Each module reads what a grading run wrote and adds one thing; none of them
grades or runs student code.
"""
