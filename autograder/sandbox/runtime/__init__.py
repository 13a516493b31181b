"""The code that runs inside the sandbox: stdlib and torch only.

Nothing here may import the grader, the reference or the checks: this folder
is all the student process can see of the project.
"""
