"""One class: honest notebooks next to one attack of every kind, then TA commands on the same output folder.

Issue 11 (grade stopped with exit 3 on a class of one notebook of each kind) and 14. The honest
students' ``results.json`` and ``feedback.md`` must be byte-identical to a clean run of the honest
notebooks alone; every offender gets a gradebook row with a clear status; nothing the students or
the TAs wrote reaches a gradebook, report, review sheet or the terminal as a raw control character,
a formula or live HTML. The attacks are written here, not taken from ``corpus.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.escape import csv_value

pytestmark = pytest.mark.slow  # three runs of ``grade`` on a class of ~35 notebooks

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "submissions"
HONEST = ("solution", "log_sigmoid", "argmax_sampler")
SECRET = "shm-secret-7d1f"  # what the SysV writer leaves; the reader must never see it
REFERENCE_LINE = "def _log_det_scale_tril"  # a line of reference/gaussian.py no student may read
SHM = '''
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_id = _libc.shmget(0x5eed, 4096, {flags})
_addr = _libc.shmat(_id, None, 0) if _id >= 0 else None
'''
SHM_WRITE = SHM.format(flags="0o1666") + f'''
if _addr not in (None, ctypes.c_void_p(-1).value):
    ctypes.memmove(_addr, {SECRET.encode()!r}, {len(SECRET)})
'''
SHM_READ = SHM.format(flags="0") + '''
SEEN = ctypes.string_at(_addr, 64) if _addr not in (None, ctypes.c_void_p(-1).value) else b"nothing"
def covariance_from_scale_tril(L):
    raise ValueError(f"shm held {SEEN!r}")
'''
#: Mid-call questions to the error-carried-forward oracle that no honest runtime asks, from the link
#: of the running call (found the way a student who read the runtime would).
ORACLE_GARBAGE = '''
import sys, torch
def _link():
    f = sys._getframe()
    while f is not None:
        if "link" in f.f_locals and "request" in f.f_locals:  # only mid-call in oracle mode: else a broken reply
            return f.f_locals["link"] if f.f_locals["request"].get("oracle") else None
        f = f.f_back
ANSWERS = []
def _garbage():
    link = _link()
    if link is None:
        return
    for ask in ({"op": "oracle", "name": ["x"], "args": [], "kwargs": {}},
                {"op": "oracle", "name": "gmvae_responsibilities", "args": "no", "kwargs": 5},
                {"op": "oracle", "name": "gmvae_responsibilities", "args": [{"$fn": "callback", "p": {"id": 10**30}}] * 4,
                 "kwargs": {}},
                {"op": "oracle", "name": "expected_log_gaussian", "args": [{"$tensor": "\\ud800"}] * 4, "kwargs": {}},
                {"op": "backward", "handle": 10**40, "cotangent": None},
                {"op": "backward", "handle": -1, "cotangent": {"$fn": "normal", "p": {}}},
                {"op": {"nested": [1]}}, "not a dict", None, [1, 2]):
        try:
            ANSWERS.append(link({"ask": ask}, lambda m: {"back": {"ok": False, "error": "no"}}))
        except BaseException as exc:
            ANSWERS.append(repr(exc)[:100])
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    return torch.zeros(z.shape[0], log_pi.shape[0])
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    _garbage()
    return mu_q.sum(-1) * 0
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    _garbage()
    gmvae_responsibilities(mu_z, log_pi, mu_c, logvar_c)
    expected_log_gaussian(mu_z, logvar_z, mu_c[0], logvar_c[0])
    return x.sum(-1) * 0
'''
STUDENT_TEXT = '<script>alert(1)</script> **bold** [x](javascript:alert(1)) =cmd|"/C calc"!A0 \x1b[2J\x07 \u202e'


def _cell(source: str, kind: str = "code", tags: tuple[str, ...] = ()) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": list(tags)} if tags else {}, "source": source}
    return {**cell, "execution_count": None, "outputs": []} if kind == "code" else cell


def _nb(*sources: str, **extra: object) -> bytes:
    doc = {"cells": [_cell(s) for s in sources], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, **extra}
    return json.dumps(doc).encode()


def _hostile() -> dict[str, bytes]:
    """File name (str, or bytes for one that is not UTF-8) → the notebook's bytes."""
    tiny = _nb("KL_SCENARIOS = {1: 'C', 2: 'B', 3: 'C'}")
    return {
        "surrogates": _nb('def covariance_from_scale_tril(L):\n    raise ValueError("lone \\ud800 and \\udfff")\n',
                          'def scale_tril_from_raw(raw):\n    return "\\udc80" * 10\n',
                          'KL_SCENARIOS = {1: "\\ud800", 2: "B", 3: "C"}'),
        "wrong_types": json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": 7}, "source": 5},
                                             {"cell_type": None, "metadata": [], "source": ["x = 1"]},
                                             {"cell_type": "markdown", "metadata": {"tags": [None, {}]},
                                              "source": {"a": 1}}],
                                   "metadata": {"kernelspec": 5, "language_info": [1]},
                                   "nbformat": "4", "nbformat_minor": None}).encode(),
        "digits": b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": ' + b"7" * 5000 + b"}",
        "big_int": _nb("class Big(int):\n    pass\nKL_SCENARIOS = {1: Big(10**400), 2: 'B', 3: 'C'}\n"
                       "def covariance_from_scale_tril(L):\n    return Big(10**400)\n"),
        "c3_explodes": _nb("import sympy\ndef expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):\n"
                           "    e = mu_q + s_q + mu_p + s_p\n    for _ in range(12):\n        e = (e + 1) ** e\n"
                           "    return e\n"),
        "a" * 249: tiny,
        b"not-utf8-\xff\xfe": tiny,
        "new\nline": tiny,
        "\x1b[31mred\x1b[0m\x1b]8;;x\x07": tiny,
        '=HYPERLINK("x.example","click")': tiny,
        "<img src=x onerror=alert(1)>": tiny,
        "gradebook.csv": tiny,
        "review": tiny,
        "shm_1_writer": _nb(SHM_WRITE),
        "shm_2_reader": _nb(SHM_READ),
        "scratch_filler": _nb("import os, tempfile\nfor d in ('.', tempfile.gettempdir(), os.path.expanduser('~')):\n"
                              "    try:\n        with open(os.path.join(d, 'fill'), 'wb') as f:\n"
                              "            for _ in range(2048):\n                f.write(b'x' * 2**20)\n"
                              "    except OSError:\n        pass\n"),
        "markup": _nb(f"def covariance_from_scale_tril(L):\n    raise ValueError({STUDENT_TEXT!r})\n",
                      f"def scale_tril_from_raw(raw):\n    return {STUDENT_TEXT!r}\n"),
        "two_mib": _nb("def covariance_from_scale_tril(L):\n    return 'x' * 2**21\n",
                       "def scale_tril_from_raw(raw):\n    raise ValueError('y' * 2**21)\n"),
        "tiny_cells": _nb(*(["x = 1"] * 20_000)),
        "slow_and_exits": _nb("while True:\n    pass", "import os\nos._exit(3)", "import sys\nsys.exit(0)",
                              "raise SystemExit(7)", "KL_SCENARIOS = {1: 'C', 2: 'B', 3: 'C'}"),
        "reads_grader": _nb(f"import glob\nFOUND = []\nfor p in glob.glob({str(REPO)!r} + '/reference/*.py'):\n"
                            "    try:\n        FOUND.append(open(p).read())\n    except OSError:\n        pass\n"
                            "def covariance_from_scale_tril(L):\n    raise ValueError(' '.join(FOUND)[:5000] or 'none')\n"),
        "not_json": b"{ this is not json",
        "zero_bytes": b"",
        "deep": b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        "oracle_garbage": _nb(ORACLE_GARBAGE),
        "written_markup": json.dumps({"cells": [_cell(f"**Answer W004-2** {STUDENT_TEXT}\n<iframe src=x>", "markdown",
                                                      ("answer:W004-2",))],
                                      "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
    }


def _write_class(subs: Path, hostile: bool) -> None:
    subs.mkdir()
    for student in HONEST:
        shutil.copy(EXAMPLES / f"{student}.ipynb", subs / f"{student}.ipynb")
    if not hostile:
        return
    for name, data in _hostile().items():
        path = os.path.join(os.fsencode(subs), name + b".ipynb") if isinstance(name, bytes) else subs / f"{name}.ipynb"
        with open(path, "wb") as f:
            f.write(data)
    outside = subs.parent / "outside"
    outside.mkdir()
    shutil.copy(EXAMPLES / "solution.ipynb", outside / "solution.ipynb")
    (subs / "linked_file.ipynb").symlink_to(outside / "solution.ipynb")
    (subs / "linked_folder").symlink_to(outside)
    (subs / "two_notebooks").mkdir()
    for n in ("a", "b"):
        (subs / "two_notebooks" / f"{n}.ipynb").write_bytes(_nb("x = 1"))
    (subs / "empty_folder").mkdir()
    (subs / "caf\u00e9.ipynb").write_bytes(_nb("x = 1"))  # NFC and NFD: one student id, two files
    (subs / "cafe\u0301.ipynb").write_bytes(_nb("x = 2"))


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env.update(DGM_AUTOGRADER_CACHE=str(cwd.parent / "cache"), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, errors="surrogateescape", timeout=3000)


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime) for p in root.rglob("*")}


def _students_files(out: Path, student: str) -> dict[str, bytes]:
    """The student's results.json and feedback.md, the grader's version and the key that hashes it left out
    (the version hashes the grader's source, which may change between two runs while it is worked on)."""
    files = {n: (out / student / n).read_bytes() for n in ("results.json", "feedback.md")}
    extra = json.loads(files["results.json"])["extra_data"]
    for field in ("grader_version", "key"):
        files = {n: data.replace(extra[field].encode(), f"<{field}>".encode()) for n, data in files.items()}
    return files


def _gradebook(out: Path) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8"), newline="")))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The clean run, the mixed run, then review, hostile TA inputs and a rerun on the mixed output."""
    root = tmp_path_factory.mktemp("mixed")
    cwd = root / "cwd"
    cwd.mkdir()
    _write_class(root / "clean_subs", hostile=False)
    clean = _run("grade", str(root / "clean_subs"), "--out", str(root / "clean"), cwd=cwd)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    _write_class(root / "subs", hostile=True)
    before = _snapshot(root / "subs") | _snapshot(root / "outside") | _snapshot(REPO / "reference") | _snapshot(EXAMPLES)
    out = root / "out"
    done = {"grade": _run("grade", str(root / "subs"), "--out", str(out), cwd=cwd)}
    first = {s: _students_files(out, s) for s in HONEST}, _gradebook(out)
    done["review"] = _run("review", str(root / "subs"), "--out", str(out), cwd=cwd)
    (root / "bad_overrides.csv").write_text(
        "student,question,score,reason,by\n=HYPERLINK(\"x\"),C4,1e999,<b>x</b>,@SUM(A1)\n"
        f"solution,C4,nan,r,b\nnobody,Z9,{'9' * 400},\x1b[2J,\nsolution,C4.99,-1,,\n", encoding="utf-8")
    done["override_bad"] = _run("override", str(out), "--scores", str(root / "bad_overrides.csv"), cwd=cwd)
    (root / "overrides.csv").write_text(
        f"student,question,score,reason,by\nlog_sigmoid,C4,11,\"{STUDENT_TEXT.replace(chr(34), chr(39))}\","
        "=cmd|' /C calc'!A0\n", encoding="utf-8")
    done["override"] = _run("override", str(out), "--scores", str(root / "overrides.csv"), cwd=cwd)
    (out / "argmax_sampler" / "graded.json").write_text('{"scores": {"A1": 1e999}, "checks": [', encoding="utf-8")
    (root / "regrade.csv").write_text("student,question,score,reason,by\nargmax_sampler,E1,5,regrade,TA\n")
    done["override_corrupt"] = _run("override", str(out), "--scores", str(root / "regrade.csv"), cwd=cwd)
    (root / "bad_policy.toml").write_text("deadline = 9999-12-31T23:00:00Z\ncap = inf\ngrace_minutes = 10080\n"
                                          '[penalty]\n"\u00b2" = 0.1\n1 = nan\n[extensions]\n"=cmd" = "soon"\n'
                                          '"<b>x</b>" = 400\n', encoding="utf-8")
    done["policy_bad"] = _run("grade", str(root / "subs"), "--out", str(out), "--policy", str(root / "bad_policy.toml"),
                              cwd=cwd)
    (root / "policy.toml").write_text("deadline = 2026-12-01T23:59:00+01:00\npenalty = 0.1\n[extensions]\n"
                                      "'<b>ghost</b>' = 2\n", encoding="utf-8")
    (root / "times.csv").write_text(
        "student,timestamp\nsolution,2026-12-01T20:00:00+00:00\nlog_sigmoid,2026-12-04T20:00:00+00:00\n"
        f"argmax_sampler,=NOW()\nmarkup,{'9' * 5000}\nnobody,2026-12-01T20:00:00+00:00\nsurrogates,nan\n"
        "two_mib,2026-12-01T20:00:00\n", encoding="utf-8")
    done["rerun"] = _run("grade", str(root / "subs"), "--out", str(out), "--policy", str(root / "policy.toml"),
                         "--submitted-at", str(root / "times.csv"), cwd=cwd)
    done["override_regraded"] = _run("override", str(out), "--scores", str(root / "regrade.csv"), cwd=cwd)
    after = _snapshot(root / "subs") | _snapshot(root / "outside") | _snapshot(REPO / "reference") | _snapshot(EXAMPLES)
    return {"root": root, "clean": root / "clean", "out": out, "done": done, "first": first, "before": before, "after": after}


def test_the_class_is_graded_with_exit_1_and_a_row_for_every_submission(runs):
    done = runs["done"]
    assert done["grade"].returncode == 1, done["grade"].stdout[-3000:] + done["grade"].stderr[-3000:]
    rows = _gradebook(runs["out"])
    students = {csv_value(r["student"]) for r in rows}
    assert set(HONEST) <= students
    assert len(rows) >= len(_hostile()) + len(HONEST) + 4  # links, folders and the NFC/NFD pair each have a row
    for r in rows:
        status = csv_value(r["status"])
        assert status and "\n" not in status and len(status) < 400, r


def test_honest_students_are_byte_identical_to_a_clean_run(runs):
    files, gradebook = runs["first"]  # as the mixed run left them, before the TA commands
    for student in HONEST:
        assert files[student] == _students_files(runs["clean"], student), student
    clean = {r["student"]: r for r in _gradebook(runs["clean"])}
    mixed = {r["student"]: r for r in gradebook}
    for student in HONEST:
        assert mixed[student] == clean[student]


def test_the_ta_commands_fail_alone_or_succeed(runs):
    done = runs["done"]
    assert done["review"].returncode == 0, done["review"].stderr[-2000:]
    for bad in ("override_bad", "override_corrupt", "policy_bad"):
        assert done[bad].returncode == 2, done[bad].stdout[-2000:] + done[bad].stderr[-2000:]
    for good in ("override", "override_regraded"):
        assert done[good].returncode == 0, done[good].stdout[-2000:] + done[good].stderr[-2000:]
    assert "cannot be read" in done["override_corrupt"].stdout + done["override_corrupt"].stderr
    assert done["rerun"].returncode == 1, done["rerun"].stdout[-2000:] + done["rerun"].stderr[-2000:]
    rows = {csv_value(r["student"]): r for r in _gradebook(runs["out"])}
    assert rows["log_sigmoid"]["C4"] == "11" and rows["argmax_sampler"]["E1"] == "5"  # regraded, override kept
    assert float(rows["log_sigmoid"]["final"]) < float(rows["log_sigmoid"]["total"])  # three days late


def test_no_output_file_of_a_student_is_over_a_mebibyte(runs):
    for path in runs["out"].rglob("*"):
        if path.is_file() and path.parent != runs["out"]:
            assert path.stat().st_size <= 2**20, path


def test_nothing_outside_out_is_written(runs):
    assert runs["before"] == runs["after"]
    assert sorted(p.name for p in (runs["root"] / "cwd").iterdir()) == []


#: The tags of the students' and TAs' texts above, unescaped (outside a fenced code block in Markdown).
_RAW_HTML = re.compile(r"(?<!\\)<(script>|img src=x|iframe src=x|b>)", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202e]")
_FENCED = re.compile(r"^(`{3,})[^\n]*\n.*?^\1\n", re.M | re.S)


def _outputs(runs) -> dict[str, str]:
    texts = {f"terminal:{k}": v.stdout + v.stderr for k, v in runs["done"].items()}
    for path in runs["out"].rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".md", ".html"):
            texts[str(path)] = path.read_text(encoding="utf-8")
    return texts


def _formulas(text: str) -> list[str]:
    cells = [c for row in csv.reader(io.StringIO(text, newline="")) for c in row]
    return [c for c in cells if c[:1] and c[0] in "=+-@\t\r" and not re.fullmatch(r"-?[\d.e+-]+", c)]


def test_no_student_or_ta_text_lands_raw(runs):
    for where, text in _outputs(runs).items():
        assert not _CONTROL.search(text), (where, _CONTROL.search(text))
        shown = _FENCED.sub("", text) if where.endswith(".md") else text
        if where.startswith("terminal:"):
            continue  # tags are inert text in a terminal
        if not where.endswith(".csv"):
            assert not _RAW_HTML.search(shown), (where, _RAW_HTML.search(shown))
        else:
            assert not _formulas(text), (where, _formulas(text)[:3])


def test_offenders_do_not_reach_each_other_or_the_grader(runs):
    out = runs["out"]
    rows = {csv_value(r["student"]): r for r in _gradebook(out)}
    folders = {p.name: p for p in out.iterdir() if p.is_dir()}
    reader = next(f for n, f in folders.items() if n.startswith("shm_2_reader"))
    assert SECRET not in (reader / "feedback.md").read_text(encoding="utf-8")
    grader = next(f for n, f in folders.items() if n.startswith("reads_grader"))
    assert REFERENCE_LINE not in (grader / "feedback.md").read_text(encoding="utf-8")
    assert rows["linked_file"]["total"] == "0" and "symbolic link" in rows["linked_file"]["status"]
    assert rows["linked_folder"]["total"] == "0"
