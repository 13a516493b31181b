"""Anonymous student codes, and the key from codes to students, kept apart from what graders see.

The key lives in ``OUT/review-key/``, not in ``OUT/review/`` (the folder
handed to the graders): ``key.csv`` (header ``student_code,student``, a row
per student ever given a code) and ``salt.txt`` (the secret the codes of new
students are derived from; with it, anyone holding a roster could tell who a
code is). Codes are stable: a student keeps the code ``key.csv`` gives it.
"""

from __future__ import annotations

import csv
import hashlib
import secrets
from pathlib import Path

from autograder.escape import csv_text, csv_value
from autograder.out_files import REVIEW_KEY as KEY_DIR
from autograder.reports.atomic import write_atomic

KEY_HEADER = ("student_code", "student")
CODE_DIGITS = 6


def key_dir(out: Path) -> Path:
    """The folder of the key to the codes (give it to no grader)."""
    return out / KEY_DIR


def student_code(salt: str, student: str, digits: int = CODE_DIGITS) -> str:
    """A stable anonymous code for ``student``."""
    return "S-" + hashlib.sha256(f"{salt}:{student}".encode()).hexdigest()[:digits].upper()


def assign_codes(salt: str, students: list[str], known: dict[str, str]) -> dict[str, str]:
    """A distinct code per student: its code in ``known`` (student → code), else a new one.

    A new code is :func:`student_code`, lengthened one digit at a time while it
    collides with a code already given (24 bits collide within a few thousand students).
    """
    codes = {s: known[s] for s in students if s in known}
    taken = set(codes.values()) | set(known.values())
    for student in sorted(s for s in students if s not in codes):
        digits = CODE_DIGITS
        while (code := student_code(salt, student, digits)) in taken:
            digits += 1
        codes[student] = code
        taken.add(code)
    return codes


def read_key(out: Path) -> tuple[str, dict[str, str]]:
    """``(salt, code → student)`` of ``out``'s key; a new salt and no codes when there is none yet.

    Raises ``ValueError`` naming the file when ``key.csv`` is not a key this module wrote.
    """
    folder = key_dir(out)
    salt_file, path = folder / "salt.txt", folder / "key.csv"
    salt = salt_file.read_text(encoding="utf-8").strip() if salt_file.is_file() else ""
    if not path.is_file():
        return salt or secrets.token_hex(8), {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [[csv_value(cell) for cell in row] for row in csv.reader(f) if row]
    if not rows or tuple(rows[0]) != KEY_HEADER or any(len(r) != 2 for r in rows[1:]) \
            or len({code for code, _ in rows[1:]}) != len(rows) - 1:
        raise ValueError(f"{path} is not a key written by `python -m autograder review`")
    return salt or secrets.token_hex(8), {code: student for code, student in rows[1:]}


def write_key(out: Path, salt: str, key: dict[str, str]) -> Path:
    """Write ``key.csv`` (code → student) and ``salt.txt``; returns the key's folder."""
    folder = key_dir(out)
    write_atomic(folder / "salt.txt", salt + "\n")
    write_atomic(folder / "key.csv", csv_text([KEY_HEADER, *sorted(key.items())]))
    return folder
