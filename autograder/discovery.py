"""Find the submissions in a folder and read them safely: student ids, output folders, regular files only.

``SUBMISSIONS/<student>.ipynb`` or ``SUBMISSIONS/<student>/<one>.ipynb``; the
student id is the file or folder name (valid Unicode, NFC). A symbolic link
is refused, never followed; a file that is not a notebook is named as such.
A student's output folder name is safe, bounded and unique (``student_dir``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from autograder.grading import one_line
from autograder.notebook import MAX_NOTEBOOK_BYTES


@dataclass(frozen=True)
class Submission:
    """A student's notebook (``path``), or why there is no single one (``problem``)."""

    student: str
    path: Path | None
    problem: str | None = None


#: What a run (or a command on its output) writes next to the students' folders: never a student's folder name.
CLASS_LEVEL_NAMES = frozenset({"gradebook.csv", "report.html", "review", "review-key", "timing.csv", "similarity.csv",
                               "changes.csv", "canvas.csv", "moodle.csv"})
MAX_FOLDER_BYTES = 100  # of a student's folder name before its hash (a file name may have 255)
_LINK = "is a symbolic link; submit the notebook itself"


class SubmissionError(Exception):
    """A submission that cannot be read as one regular notebook file; ``reason`` is its status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _notebooks(folder: Path) -> tuple[list[Path], list[Path]]:
    """The notebooks directly in ``folder``, and the symbolic links named like one (refused)."""
    found = sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and not p.name.startswith("."))
    return [p for p in found if not p.is_symlink() and p.is_file()], [p for p in found if p.is_symlink()]


def _student_id(name: str) -> str:
    """A file or folder name as a student id: valid Unicode (undecodable bytes become U+FFFD), NFC."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", text)


def discover(folder: Path) -> list[Submission]:
    """``folder/<student>.ipynb`` or ``folder/<student>/<one>.ipynb``, sorted by student id.

    A symbolic link (to a notebook or a folder) is that student's problem; an
    unreadable student folder too.
    """
    found: dict[str, list[Path]] = {}
    problems: dict[str, str] = {}
    others: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            if entry.suffix == ".ipynb" or entry.is_dir():
                student = _student_id(entry.stem if entry.suffix == ".ipynb" else entry.name)
                problems.setdefault(student, one_line(f"{entry.name} {_LINK}", 300))
                found.setdefault(student, [])
        elif entry.is_file() and entry.suffix == ".ipynb":
            found.setdefault(_student_id(entry.stem), []).append(entry)
        elif entry.is_file():
            others.setdefault(_student_id(entry.stem), []).append(_student_id(entry.name))
        elif entry.is_dir():
            student = _student_id(entry.name)
            try:
                paths, links = _notebooks(entry)
            except OSError as exc:
                problems.setdefault(student, one_line(f"the student's folder could not be read ({exc.strerror})"))
                paths, links = [], []
            if links:
                problems.setdefault(student, one_line(f"{links[0].relative_to(folder)} {_LINK}", 300))
            found.setdefault(student, []).extend(paths)
            if not paths and student not in problems:
                problems[student] = _no_notebook(entry)
    for student, names in others.items():  # a student whose only file is not a notebook gets a row saying so
        if student not in found:
            found[student] = []
            problems[student] = one_line(f"{', '.join(names)}: not a notebook (submit the .ipynb file)", 300)
    return [Submission(s, None, problems[s]) if s in problems else _submission(s, paths, folder)
            for s, paths in sorted(found.items())]


def _no_notebook(folder: Path) -> str:
    """Why a student's folder gives no submission, naming what it holds instead."""
    try:
        names = sorted(_student_id(p.name) for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        names = []
    held = f" (it holds {', '.join(names[:5])}{', …' if len(names) > 5 else ''})" if names else ""
    return one_line(f"no notebook found in the student's folder{held}", 300)


def _submission(student: str, paths: list[Path], folder: Path) -> Submission:
    """``student``'s submission from the notebooks found for it: gradable when there is exactly one."""
    if not paths:
        return Submission(student, None, "no notebook found in the student's folder")
    if len(paths) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in paths)
        return Submission(student, None, one_line(f"{len(paths)} notebooks for one student ({names}); keep one", 300))
    if paths[0].lstat().st_size > MAX_NOTEBOOK_BYTES:
        return Submission(student, None, f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return Submission(student, paths[0])


def read_submission(path: Path, root: Path) -> bytes:
    """The bytes of the regular file ``path`` inside ``root``, opened without following any symbolic link
    below ``root`` (``O_NOFOLLOW`` at every step, so a file swapped for a link after discovery is refused too)."""
    parts = path.relative_to(root).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                parent, fd = fd, os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
                os.close(parent)
            file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        finally:
            os.close(fd)
    except OSError as exc:
        links = [Path(*parts[: i + 1]) for i in range(len(parts)) if root.joinpath(*parts[: i + 1]).is_symlink()]
        if links or exc.errno == errno.ELOOP:
            raise SubmissionError(one_line(f"{links[0] if links else path.relative_to(root)} {_LINK}", 300)) from None
        raise SubmissionError(one_line(f"the notebook could not be read ({exc.strerror})")) from None
    with os.fdopen(file_fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SubmissionError("the notebook is not a regular file")
        data = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return data


def student_dir(out: Path, student: str) -> Path:
    """The output folder of ``student``: never outside ``out``, never a class-level file, one per student.

    A name that had to be changed (a character replaced, a leading dot, a
    class-level name, cut to ``MAX_FOLDER_BYTES`` of UTF-8) gets a ``_`` prefix
    and a hash of the original, so two students never share a folder; the
    original id stays in the gradebook.
    """
    safe = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in student)
    short = safe.encode("utf-8", "replace")[:MAX_FOLDER_BYTES].decode("utf-8", "ignore")
    if short == student and safe and not safe.startswith((".", "_")) and safe.lower() not in CLASS_LEVEL_NAMES:
        return out / safe
    digest = hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return out / f"_{short}-{digest}"


ASSIGNMENT_NOTEBOOK = "assignment.ipynb"  # the name the distributed notebook has
_SKIPPED_FOLDERS = frozenset({"__MACOSX", ".ipynb_checkpoints", "__pycache__"})
MAX_UPLOAD_ENTRIES = 10_000


@dataclass(frozen=True)
class JobSubmission:
    """The notebook a one-submission job grades (``submission.path`` relative to ``root``) and, when the upload
    held several, which one was chosen and why (``note``)."""

    submission: Submission
    root: Path
    note: str | None = None


def _uploaded_notebooks(folder: Path) -> tuple[list[Path], list[Path]]:
    """Every notebook below ``folder`` (subfolders too, never through a link) and the links named like one."""
    notebooks, links, seen = [], [], 0
    for parent, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_FOLDERS
                         and not os.path.islink(os.path.join(parent, d)))
        for name in sorted(files):
            seen += 1
            path = Path(parent, name)
            if seen > MAX_UPLOAD_ENTRIES:
                return notebooks, links
            if name.startswith(".") or not name.endswith(".ipynb"):
                continue
            (links if path.is_symlink() else notebooks).append(path)
    return notebooks, links


def _defines_graded_names(path: Path, root: Path) -> bool:
    from autograder.contract import CONTRACT
    from autograder.notebook import NotebookError, defined_names, read_notebook

    try:
        cells = read_notebook(read_submission(path, root)).code_cells
    except (SubmissionError, NotebookError):
        return False
    names = {e.name for e in CONTRACT}
    return any(names & set(defined_names(c.source)) for c in cells)


def job_submission(upload: Path) -> JobSubmission:
    """The notebook to grade in an upload (a notebook, or a folder searched with its subfolders).

    With several notebooks: the one named ``assignment.ipynb``, else the only
    one that defines graded names; otherwise none, and the problem says why.
    """
    if not upload.is_dir():
        return JobSubmission(_submission(_student_id(upload.stem), [upload], upload.parent), upload.parent)
    student = _student_id(upload.name)
    notebooks, links = _uploaded_notebooks(upload)
    if links and not notebooks:
        return JobSubmission(Submission(student, None, one_line(f"{links[0].relative_to(upload)} {_LINK}", 300)), upload)
    if len(notebooks) <= 1:
        sub = _submission(student, notebooks, upload) if notebooks else Submission(student, None, _no_notebook(upload))
        return JobSubmission(sub, upload)
    names = ", ".join(str(p.relative_to(upload)) for p in notebooks)
    for why, chosen in ((f"the one named {ASSIGNMENT_NOTEBOOK}",
                         [p for p in notebooks if p.name.lower() == ASSIGNMENT_NOTEBOOK]),
                        ("the only one that defines graded functions",
                         [p for p in notebooks if _defines_graded_names(p, upload)])):
        if len(chosen) == 1:
            note = one_line(f"graded {chosen[0].relative_to(upload)}, {why}, of {len(notebooks)} notebooks ({names})",
                            300)
            return JobSubmission(_submission(student, chosen, upload), upload, note)
    problem = one_line(f"{len(notebooks)} notebooks ({names}) and none is named {ASSIGNMENT_NOTEBOOK}: "
                       "keep only the one to grade", 300)
    return JobSubmission(Submission(student, None, problem), upload)
