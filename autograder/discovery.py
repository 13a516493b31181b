"""Find the submissions in a folder and read them safely: student ids, output folders, regular files only.

``SUBMISSIONS/<student>.ipynb`` or ``SUBMISSIONS/<student>/<one>.ipynb``; the
student id is the file or folder name (valid Unicode, NFC). A symbolic link
is refused, never followed; a file that is not a notebook (or not a regular
file) is named as such. A student's output folder name is safe, bounded and
unique (``student_dir``); students whose folders would still be one folder
(names equal but for case) are refused before grading (``discover``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import stat
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autograder import out_files
from autograder.escape import clip
from autograder.grading import one_line
from autograder.notebook import MAX_NOTEBOOK_BYTES


@dataclass(frozen=True)
class Submission:
    """A student's notebook (``path``), or why there is no single one (``problem``)."""

    student: str
    path: Path | None
    problem: str | None = None


MAX_FOLDER_BYTES = 100  # of a student's folder name, hash included (a file name may have 255)
DIGEST_HEX = 32  # 128 bits of sha256 in a changed folder name: no two ids can be made to collide on purpose
_LINK = "is a symbolic link; submit the notebook itself"
_SPECIAL = "is not a regular file; submit the notebook itself"


@functools.cache
def class_level_names() -> frozenset[str]:
    """What a run (or a command on its output) writes next to the students' folders, case-folded: never a
    student's folder name. Taken from the constants of the modules that write them."""
    names = {*out_files.OTHERS, out_files.REVIEW_KEY, out_files.OVERRIDES, out_files.LATENESS,
             *(f"{lms}.csv" for lms in out_files.LMS)}
    return frozenset(name.casefold() for name in names)


class SubmissionError(Exception):
    """A submission that cannot be read as one regular notebook file; ``reason`` is its status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _notebooks(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The notebooks directly in ``folder``, the symbolic links named like one and the other files (a FIFO,
    a device, a folder) named like one; the last two are refused."""
    found = sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and not p.name.startswith("."))
    links = [p for p in found if p.is_symlink()]
    notebooks = [p for p in found if p not in links and p.is_file()]
    return notebooks, links, [p for p in found if p not in links and p not in notebooks]


def _student_id(name: str) -> str:
    """A file or folder name as a student id: valid Unicode (undecodable bytes become U+FFFD), NFC."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", text)


def discover(folder: Path, fold_case: bool = True) -> list[Submission]:
    """``folder/<student>.ipynb`` or ``folder/<student>/<one>.ipynb``, sorted by student id.

    A symbolic link (to a notebook or a folder), a special file named like a
    notebook, an unreadable student folder and an output folder shared with
    another student (``folder_clashes``; names equal but for case only when
    ``fold_case``: the output folder's file system folds case) are that
    student's problem.
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
        elif entry.is_dir():
            _folder(entry, folder, found, problems)
        elif entry.suffix == ".ipynb" and not entry.is_file():  # a FIFO, socket or device
            problems.setdefault(_student_id(entry.stem), one_line(f"{entry.name} {_SPECIAL}", 300))
            found.setdefault(_student_id(entry.stem), [])
        elif entry.suffix == ".ipynb":
            found.setdefault(_student_id(entry.stem), []).append(entry)
        else:
            others.setdefault(_student_id(entry.stem), []).append(_student_id(entry.name))
    for student, names in others.items():  # a student whose only file is not a notebook gets a row saying so
        if student not in found:
            found[student] = []
            problems[student] = one_line(f"{', '.join(names)}: not a notebook (submit the .ipynb file)", 300)
    problems |= folder_clashes(found, fold_case)
    return [Submission(s, None, problems[s]) if s in problems else _submission(s, paths, folder)
            for s, paths in sorted(found.items())]


def _folder(entry: Path, folder: Path, found: dict[str, list[Path]], problems: dict[str, str]) -> None:
    """The notebooks of the student folder ``entry``, or its problem (unreadable, a link or special file in it,
    no notebook)."""
    student = _student_id(entry.name)
    try:
        paths, links, special = _notebooks(entry)
    except OSError as exc:
        problems.setdefault(student, one_line(f"the student's folder could not be read ({exc.strerror})"))
        paths, links, special = [], [], []
    if links:
        problems.setdefault(student, one_line(f"{links[0].relative_to(folder)} {_LINK}", 300))
    if special:
        problems.setdefault(student, one_line(f"{special[0].relative_to(folder)} {_SPECIAL}", 300))
    found.setdefault(student, []).extend(paths)
    if not paths and student not in problems:
        problems[student] = _no_notebook(entry)


def folder_clashes(students: Iterable[str], fold_case: bool = True) -> dict[str, str]:
    """The students whose output folders would be one folder — the same name or, with ``fold_case``, names equal
    but for case, which a case-insensitive file system (macOS, Windows, SMB) folds into one — each with the
    problem of the group."""
    groups: dict[str, list[str]] = {}
    for student in students:
        name = student_dir(Path(), student).name
        groups.setdefault(name.casefold() if fold_case else name, []).append(student)
    clashes = {}
    for group in (sorted(g) for g in groups.values() if len(g) > 1):
        names = ", ".join(clip(s, 30) for s in group[:3]) + (", …" if len(group) > 3 else "")
        problem = one_line(f"one output folder for {len(group)} students whose names differ only in case ({names}); "
                           "rename all but one", 300)  # the same for all: a folder they share holds the same record
        clashes |= dict.fromkeys(group, problem)
    return clashes


def folds_case(folder: Path) -> bool:
    """Whether ``folder``'s file system takes names that differ only in case for one name (the folders made
    for the probe are removed again)."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".case-probe-", dir=folder)
    os.close(fd)
    try:
        return os.path.exists(os.path.join(folder, os.path.basename(probe).upper()))
    finally:
        os.unlink(probe)
        for path in made:  # innermost first; one that another process filled meanwhile stays
            with contextlib.suppress(OSError):
                path.rmdir()


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
    try:
        size = paths[0].lstat().st_size
    except OSError:  # e.g. a path past PATH_MAX: read_submission opens it step by step and checks the size
        size = 0
    if size > MAX_NOTEBOOK_BYTES:
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
    class-level name in any case, over ``MAX_FOLDER_BYTES`` of UTF-8) gets a
    ``_`` prefix, its first bytes and a 128-bit hash of the original, so two
    students never share a folder; the original id stays in the gradebook.
    """
    safe = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in student)
    if (safe == student and safe and len(safe.encode()) <= MAX_FOLDER_BYTES and not safe.startswith((".", "_"))
            and safe.casefold() not in class_level_names()):
        return out / safe
    short = safe.encode()[: MAX_FOLDER_BYTES - DIGEST_HEX - 2].decode("utf-8", "ignore")
    return out / f"_{short}-{_digest(student)}"


def _digest(student: str) -> str:
    return hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:DIGEST_HEX]


ASSIGNMENT_NOTEBOOK = "assignment.ipynb"  # the name the distributed notebook has
_SKIPPED_FOLDERS = frozenset({"__MACOSX", ".ipynb_checkpoints", "__pycache__"})
MAX_UPLOAD_ENTRIES = 10_000  # files and folders
MAX_UPLOAD_DEPTH = 16  # folders below the upload
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class JobSubmission:
    """The notebook a one-submission job grades (``submission.path`` relative to ``root``) and, when the upload
    held several, which one was chosen and why (``note``)."""

    submission: Submission
    root: Path
    note: str | None = None


@dataclass
class _Upload:
    """A walk of an upload: the notebooks and the links named like one found so far, and the entries seen."""

    root: Path
    notebooks: list[Path] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)
    seen: int = 0

    def walk(self, fd: int, path: Path, depth: int) -> None:
        """The folder open at ``fd`` (``path``), then its subfolders in name order, each opened relative to
        its parent (so no path length limit applies); ``SubmissionError`` past a limit."""
        entries = []
        with os.scandir(fd) as listing:
            for entry in listing:
                self.seen += 1
                if self.seen > MAX_UPLOAD_ENTRIES:
                    raise SubmissionError(f"the upload holds more than {MAX_UPLOAD_ENTRIES:,} files and folders")
                entries.append(entry)
        folders = []
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                if entry.name.endswith(".ipynb"):
                    self.links.append(path / entry.name)
            elif entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIPPED_FOLDERS:
                    folders.append(entry.name)
            elif entry.name.endswith(".ipynb"):
                self.notebooks.append(path / entry.name)  # read_submission refuses one that is not a regular file
        if folders and depth == MAX_UPLOAD_DEPTH:
            raise SubmissionError(f"the upload is nested deeper than {MAX_UPLOAD_DEPTH} folders; "
                                  "submit the notebook with fewer folders around it")
        for name in folders:
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except OSError as exc:
                where = (path / name).relative_to(self.root)
                raise SubmissionError(one_line(f"{where} could not be read ({exc.strerror})", 300)) from None
            try:
                self.walk(sub, path / name, depth + 1)
            finally:
                os.close(sub)


def _uploaded_notebooks(folder: Path) -> tuple[list[Path], list[Path]]:
    """Every notebook below ``folder`` (subfolders too, never through a link) and the links named like one;
    ``SubmissionError`` past ``MAX_UPLOAD_DEPTH`` folders or ``MAX_UPLOAD_ENTRIES`` entries."""
    upload = _Upload(folder)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SubmissionError(one_line(f"the upload could not be read ({exc.strerror})")) from None
    try:
        upload.walk(fd, folder, 0)
    finally:
        os.close(fd)
    return upload.notebooks, upload.links


def upload_student(upload: Path) -> str:
    """The student id of an upload: its folder's name, or its notebook's."""
    return _student_id(upload.name if upload.is_dir() else upload.stem)


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
    student = upload_student(upload)
    if not upload.is_dir():
        return JobSubmission(_submission(student, [upload], upload.parent), upload.parent)
    try:
        notebooks, links = _uploaded_notebooks(upload)
    except SubmissionError as exc:
        return JobSubmission(Submission(student, None, exc.reason), upload)
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
