"""Hostile and broken submissions, each built from a base notebook (the solution, or an empty one).

A ``Case`` is one attack: ``build(base)`` returns the notebook bytes (the base
with one cell added or replaced), ``lost`` the questions of ``QIDS`` the
hostile part may cost, and ``status`` a pattern of the one-line gradebook
status. Built on the solution, a case shows that the honest parts still
earn their points; built on ``EMPTY`` (nothing but the attack), it is a
cheap offender for the class runs that check nobody else is affected.

Most attacks target B2 (``covariance_from_scale_tril``): a hazard at the top
of its cell costs only what that cell defines, a hazard inside its body only
its question.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograder.sandbox.isolation import _python_roots

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "examples" / "submissions" / "solution.ipynb"

QIDS = ("A1", "B2", "D2")  # graded per case: a dict, the target and another function
TARGET = "covariance_from_scale_tril"  # B2
EMPTY: dict = {
    "cells": [],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}

# Code that finds the student process's end of the channel (the ``serve`` frame's ``wfd``) and the
# request being answered, as a student who read the runtime would.
CHANNEL = '''
import json as _json, os as _os, struct as _struct, sys as _sys

def _serve_frame():
    f = _sys._getframe()
    while f is not None and "wfd" not in f.f_locals:
        f = f.f_back
    return f

def _send_raw(body):
    _os.write(_serve_frame().f_locals["wfd"], _struct.pack("!Q", len(body)) + body)

def _send(message):
    _send_raw(_json.dumps(message).encode())

def _request_id():
    return _serve_frame().f_locals["request"]["id"]
'''


def solution() -> dict:
    """The solution without its optional "Try it" cells (they call the graded functions at top level,
    which would turn a hazard inside a function into a hazard of that cell)."""
    nb = json.loads(SOLUTION.read_bytes())
    nb["cells"] = [c for c in nb["cells"] if not (c["cell_type"] == "code" and _source(c).startswith("# Try it"))]
    return nb


def _code(source: str, tags: tuple[str, ...] = ()) -> dict:
    meta = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": source}


def _graded(nb: dict, name: str) -> dict:
    """The cell tagged ``graded:name`` (appended, empty, if the base has none)."""
    for cell in nb["cells"]:
        if f"graded:{name}" in cell.get("metadata", {}).get("tags", []):
            return cell
    cell = _code("", (f"graded:{name}",))
    nb["cells"].append(cell)
    return cell


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def append(code: str) -> Callable[[dict], dict]:
    """A new code cell at the end."""

    def build(nb: dict) -> dict:
        nb["cells"].append(_code(textwrap.dedent(code)))
        return nb

    return build


def prepend(code: str, name: str = TARGET) -> Callable[[dict], dict]:
    """``code`` at the top of the cell that defines ``name`` (a top-level hazard in that cell)."""

    def build(nb: dict) -> dict:
        cell = _graded(nb, name)
        cell["source"] = textwrap.dedent(code) + "\n" + _source(cell)
        return nb

    return build


def body(code: str, name: str = TARGET, args: str = "L") -> Callable[[dict], dict]:
    """``name``'s body replaced by ``code`` (a hazard inside one graded function)."""

    def build(nb: dict) -> dict:
        cell = _graded(nb, name)
        cell["source"] = f"def {name}({args}):\n" + textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n"
        return nb

    return build


def chain(*steps: Callable[[dict], dict]) -> Callable[[dict], dict]:
    def build(nb: dict) -> dict:
        for step in steps:
            nb = step(nb)
        return nb

    return build


def raw(data: bytes) -> Callable[[dict], bytes]:
    return lambda nb: data


def _metadata(**meta: object) -> Callable[[dict], dict]:
    def build(nb: dict) -> dict:
        nb["metadata"] = meta
        return nb

    return build


def _huge_output(megabytes: int) -> Callable[[dict], dict]:
    def build(nb: dict) -> dict:
        cell = _code("x = 1")
        cell["outputs"] = [{"output_type": "display_data", "metadata": {},
                            "data": {"image/png": "A" * (megabytes * 2**20), "text/plain": "<Figure>"}}]
        nb["cells"].append(cell)
        return nb

    return build


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    build: Callable[[dict], dict | bytes]
    lost: frozenset[str]
    status: str  # a regular expression the whole status must match
    slow: bool = False

    def notebook(self, base: dict | None = None) -> bytes:
        """The hostile notebook, built on ``base`` (default: the solution)."""
        nb = self.build(copy.deepcopy(base) if base is not None else solution())
        return nb if isinstance(nb, bytes) else json.dumps(nb, ensure_ascii=False).encode()

    def status_matches(self, status: str) -> bool:
        return re.fullmatch(self.status, status) is not None


ALL = frozenset(QIDS)
B2 = frozenset({"B2"})
NONE: frozenset[str] = frozenset()
CELL = r"code cell \d+"

# Wrong on purpose (Lᵀ L): an attack that manages to read the reference would replace it and earn B2.
WRONG_B2 = body("return L.mT @ L")

READ_ATTEMPTS = f'''
import os, subprocess, sys
REPO = {str(REPO)!r}
PYTHON = {tuple(_python_roots())!r}  # the interpreter and site-packages: meant to be seen, even inside the repo (.venv)
LEAKS = []

def _try(label, fn):
    try:
        if fn():
            LEAKS.append(label)
    except BaseException:
        pass

_try("read the reference by its absolute path", lambda: open(REPO + "/reference/gaussian.py").read())
_try("list the hidden checks", lambda: os.listdir(REPO + "/autograder/checks"))
_try("list the submissions", lambda: os.listdir(REPO + "/examples/submissions"))
_try("cat the reference in a subprocess",
     lambda: subprocess.run(["cat", REPO + "/reference/gaussian.py"], capture_output=True, timeout=5).stdout)
_try("/proc/1/root", lambda: os.listdir("/proc/1/root"))
for _pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    _try(f"/proc/{{_pid}}/cwd", lambda: os.listdir(f"/proc/{{_pid}}/cwd"))
    _try(f"/proc/{{_pid}}/root", lambda: os.listdir(f"/proc/{{_pid}}/root"))
    _try(f"/proc/{{_pid}}/environ", lambda: open(f"/proc/{{_pid}}/environ").read())
for _entry in sys.path:
    for _pkg in ("reference", "autograder/checks", "examples"):
        _try(f"{{_entry}}/{{_pkg}}", lambda: os.listdir(os.path.join(_entry, _pkg)))
try:
    import reference
    LEAKS.append("import reference")
    covariance_from_scale_tril = reference.covariance_from_scale_tril
except BaseException:
    pass
try:
    from autograder.checks import QUESTIONS
    LEAKS.append("import autograder.checks")
except BaseException:
    pass

def leaks():
    """Everything above, and what a walk of / finds (called by the test, not by the grader)."""
    markers = ("solution.ipynb", "assignment.ipynb", "ASSIGNMENT.md", "results.json", "gradebook.csv",
               "kl_optima.py", "rubric.toml", "model_answers.md")
    ours = ("/reference/gaussian.py", "/reference/gmvae.py", "/reference/vq.py", "/autograder/",
            "/examples/submissions/", "/checks/framework.py")
    found = list(LEAKS)
    for root, dirs, files in os.walk("/"):
        if root in ("/proc", "/sys", "/dev"):
            dirs[:] = []
            continue
        for f in files:
            path = os.path.join(root, f)
            inside_python = any(path == r or path.startswith(r.rstrip("/") + "/") for r in PYTHON)
            if f in markers or any(p in path for p in ours) or (path.startswith(REPO + "/") and not inside_python):
                found.append(path)
    return found
'''

NETWORK_ATTEMPTS = '''
import socket, urllib.request
NET = []
for _host, _port in (("127.0.0.1", 22), ("1.1.1.1", 53), ("8.8.8.8", 443)):
    try:
        socket.create_connection((_host, _port), timeout=2).close()
        NET.append(f"{_host}:{_port}")
    except OSError:
        pass
try:
    socket.getaddrinfo("pypi.org", 443)
    NET.append("dns")
except OSError:
    pass
try:
    urllib.request.urlopen("http://example.com", timeout=2)
    NET.append("http")
except Exception:
    pass

def network():
    return NET
'''

TAKEOVER = CHANNEL + '''
# Pretend to be the zygote: say this process exited, then answer every later request
# (the next student's fork included) as an impostor that sabotages everything.
def _read(n):
    fd, buf = _serve_frame().f_locals["rfd"], b""
    while len(buf) < n:
        chunk = _os.read(fd, n - len(buf))
        if not chunk:
            _os._exit(0)
        buf += chunk
    return buf

_send({"event": "exited", "status": "exit code 0"})
while True:
    (_n,) = _struct.unpack("!Q", _read(8))
    _req = _json.loads(_read(_n))
    if _req.get("op") == "fork":
        _send({"event": "started"})
    elif _req.get("op") == "exit":
        _send({"event": "exited", "status": "exit code 0"})
    elif _req.get("op") == "describe":
        _send({"id": _req.get("id"), "names": {}})
    else:
        _send({"id": _req.get("id"), "ok": False, "error": {"type": "Hijacked", "message": "pwned"}, "output": ""})
'''

LINGERING = CHANNEL + '''
# A grandchild that outlives this student and then writes forged frames and garbage to the channel.
import time as _time
if _os.fork() == 0:
    _os.setsid()
    _time.sleep(3)
    for _ in range(50):
        try:
            _send({"event": "started"})
            _send({"id": 1, "ok": True, "names": {}, "value": 0})
            _os.write(_serve_frame().f_locals["wfd"], b"garbage" * 1000)
        except OSError:
            pass
        _time.sleep(0.1)
    _os._exit(0)
'''

CASES: tuple[Case, ...] = (
    Case("invalid_json", "a notebook that is not JSON", raw(b'{"cells": [ this is not json'), ALL,
         r"notebook does not parse \(not valid JSON\)"),
    Case("other_language", "a notebook of another kernel language (R)",
         _metadata(kernelspec={"name": "ir", "language": "R", "display_name": "R"}), ALL,
         r"not a Python notebook \(kernel language: R\)"),
    Case("syntax_error", "a syntax error in one cell", body("return L @ L.mT +"), B2,
         CELL + r" raised SyntaxError: .*"),
    Case("top_level_exception", "an exception at top level", prepend("raise RuntimeError('boom\\nsecond line')"), B2,
         CELL + r" raised RuntimeError: boom second line"),
    Case("sys_exit_top", "sys.exit() at top level", prepend("import sys\nsys.exit(3)"), B2,
         CELL + r" raised SystemExit: 3"),
    Case("os_exit_top", "os._exit(0) at top level", prepend("import os\nos._exit(0)"), B2,
         CELL + r" the process died \(exit code 0\)"),
    Case("sys_exit_in_function", "sys.exit() inside a graded function", body("import sys\nsys.exit(0)"), B2, r"ok"),
    Case("os_exit_in_function", "os._exit(0) inside a graded function", body("import os\nos._exit(0)"), B2,
         r"B2 covariance_from_scale_tril: the process died \(exit code 0\)"),
    Case("infinite_loop_top", "an infinite loop at top level", prepend("while True:\n    pass"), B2,
         CELL + r" timed out after \d+ s"),
    Case("infinite_loop_in_function", "an infinite loop inside one function", body("while True:\n    pass"), B2,
         r"B2 covariance_from_scale_tril: timed out after \d+ s"),
    Case("memory_bomb_top", "a memory bomb at top level", prepend("_hog = bytearray(64 * 2**30)"), B2,
         CELL + r" raised MemoryError:?.*"),
    Case("memory_bomb_in_function", "a memory bomb inside a function (512 MB tensors until refused)",
         body("import torch\nhog = []\nwhile True:\n    hog.append(torch.empty(2**27))"), B2, r"ok"),
    Case("memory_bomb_touched", "a memory bomb that writes every page (256 MB blocks until refused)",
         prepend("_hog = []\ntry:\n    while True:\n        _hog.append(bytearray(2**28))\nexcept MemoryError:\n"
                 "    del _hog\n    raise"), B2, CELL + r" raised MemoryError:?.*|" + CELL + r" timed out after \d+ s",
         slow=True),
    Case("fork_bomb_top", "a fork bomb at top level", prepend("import os\nwhile True:\n    os.fork()"), B2,
         CELL + r" raised BlockingIOError: .*"),
    Case("fork_bomb_in_function", "a fork bomb whose children sleep, inside a function",
         body("import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(600)"), B2, r"ok"),
    Case("print_flood", "1 GB printed at top level (1024 lines of 1 MB)",
         append("for _ in range(1024):\n    print('x' * 2**20)"), NONE, r"ok"),
    Case("fd_flood", "1 GB written with os.write to fds 1 and 2",
         append("import os\nfor _ in range(512):\n    os.write(1, b'x' * 2**20)\n    os.write(2, b'y' * 2**20)"),
         NONE, r"ok"),
    Case("print_flood_lines", "1 GB printed as 10 million short lines", append(
        "for _ in range(10_000_000):\n    print('x' * 99)"), NONE, r"ok|" + CELL + r" timed out after \d+ s",
         slow=True),
    Case("print_in_function", "a graded function that prints 64 MB per call before answering",
         body("for _ in range(64):\n    print('x' * 2**20)\nreturn L @ L.mT"), NONE, r"ok"),
    Case("ignores_signals", "a function that ignores SIGALRM/SIGTERM/SIGINT and swallows BaseException",
         body("import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\n"
              "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"),
         B2, r"B2 covariance_from_scale_tril: timed out after \d+ s"),
    Case("patch_comparisons", "torch/numpy comparisons patched to say 'equal', and a wrong B2",
         chain(WRONG_B2, append('''
             import numpy, torch
             _yes = lambda *a, **k: True
             torch.allclose = torch.equal = numpy.allclose = numpy.array_equal = _yes
             torch.isclose = lambda a, b, *x, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
             torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
             torch.Tensor.allclose = torch.Tensor.equal = _yes
         ''')), B2 | {"D2"}, r"ok"),  # a patched torch.Tensor also voids the gradients measured for D2
    Case("patch_isinstance", "builtins.isinstance patched to always say True, and a wrong B2",
         chain(WRONG_B2, append("import builtins\nbuiltins.isinstance = lambda obj, cls: True")), B2,
         CELL + r" the process died \(exit code 70\)"),
    Case("lying_tensor", "B2 returns a tensor subclass whose ==, allclose and __torch_function__ lie",
         body('''
             import torch
             class Liar(torch.Tensor):
                 def __eq__(self, other):
                     return True
                 def allclose(self, *a, **k):
                     return True
                 @classmethod
                 def __torch_function__(cls, func, types, args=(), kwargs=None):
                     return True
             return torch.zeros(L.shape).as_subclass(Liar)
         '''), B2, r"ok"),
    Case("lying_object", "B2 returns an object that claims to be a tensor equal to anything",
         body('''
             import torch
             class Liar:
                 __class__ = property(lambda self: torch.Tensor)
                 shape = property(lambda self: L.shape)
                 dtype = property(lambda self: L.dtype)
                 def __eq__(self, other):
                     return True
                 def allclose(self, *a, **k):
                     return True
             return Liar()
         '''), B2, r"ok"),
    Case("hostile_signature", "B2 whose signature, when inspected, kills the process",
         chain(body("return L @ L.mT"), append("import os\nclass _Boom:\n    __signature__ = property(lambda self: os._exit(3))\n"
                                                  "covariance_from_scale_tril.__wrapped__ = _Boom()")),
         B2, r"B2 covariance_from_scale_tril could not be inspected: the process died \(exit code 3\)"),
    Case("read_reference", "reads the reference, the checks and the submissions from disk or by import",
         chain(WRONG_B2, append(READ_ATTEMPTS)), B2, r"ok"),
    Case("network", "network access", append(NETWORK_ATTEMPTS), NONE, r"ok"),
    Case("shell_escapes", "!cmd, %%bash, %pip and get_ipython().system",
         chain(prepend("!cat /etc/passwd\n%pip install requests"), append("%%bash\nrm -rf / --no-preserve-root\n"),
               append("get_ipython().system('id')")),
         NONE, CELL + r" raised NameError: name 'get_ipython' is not defined"),
    Case("huge_notebook", "a 100 MB notebook (a huge base64 image output)", _huge_output(100), NONE, r"ok"),
    Case("fd_garbage", "garbage written to every file descriptor", append('''
             import os
             for fd in range(64):
                 try:
                     os.write(fd, b"\\xff\\x00garbage" * 4096)
                 except OSError:
                     pass
         '''), NONE, CELL + r" broken reply \(.*\)"),
    Case("huge_frame_header", "a frame header announcing 2**62 bytes", append(
        CHANNEL + "_os.write(_serve_frame().f_locals['wfd'], _struct.pack('!Q', 2**62))"), NONE,
         CELL + r" broken reply \(a reply of \d+ bytes is over the \d+-byte limit\)"),
    Case("deep_json_frame", "a frame of 100 000 nested lists", append(
        CHANNEL + "_send_raw(b'[' * 100_000 + b']' * 100_000)"), NONE, CELL + r" broken reply \(invalid JSON \(RecursionError\)\)"),
    Case("huge_integer_frame", "a frame with a 10 000-digit integer", append(
        CHANNEL + "_send_raw(b'{\"id\": ' + b'9' * 10_000 + b'}')"), NONE, CELL + r" broken reply \(invalid JSON \(ValueError\)\)"),
    Case("forged_reply", "a forged reply with the right id, an error that is not an object, then the real one",
         append(CHANNEL + "_send({'id': _request_id(), 'ok': False, 'error': 5, 'output': []})"), NONE,
         CELL + r" broken reply \(a reply that answers no request\)"),
    Case("forged_call_reply", "B2 forges its reply: the right id, malformed gradients",
         body(CHANNEL + "_send({'id': _request_id(), 'ok': True, 'value': None, 'grads': [1, 2], 'args_after': 3})\n"
              "return L @ L.mT"), B2, r"B2 covariance_from_scale_tril: broken reply \(.*\)"),
    Case("forged_exit", "a forged 'exited' event from the zygote", append(
        CHANNEL + "_send({'event': 'exited', 'status': 'exit code 0'})"), NONE,
         CELL + r" broken reply \(a reply that answers no request\)"),
    Case("channel_takeover", "impersonates the zygote to answer the next students' requests",
         append(TAKEOVER), NONE, CELL + r" broken reply \(a reply that answers no request\)"),
    Case("lingering_grandchild", "a setsid grandchild that writes forged frames after the student is done",
         append(LINGERING), NONE, r"ok"),
)

BY_NAME = {c.name: c for c in CASES}


def output_folder_attack(out: Path, victim: str, me: str) -> bytes:
    """Tries to overwrite the gradebook, a victim's results and its own (with full marks), and to plant files."""
    code = f'''
import json, os
OUT = {str(out)!r}
WROTE = []
fake = json.dumps({{"score": 100.0, "tests": []}})
for path in (OUT + "/gradebook.csv", OUT + "/{victim}/results.json", OUT + "/{me}/results.json",
             OUT + "/planted.txt", "/proc/1/cwd/planted.txt", "../../planted.txt"):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(fake)
        WROTE.append(path)
    except OSError:
        pass
'''
    return Case("output_folder", "", append(code), NONE, "").notebook(EMPTY)


def partial(names: set[str]) -> bytes:
    """An honest student who answered only ``names`` (the setup cells and those graded cells)."""
    nb = solution()
    graded = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", []) if t.startswith("graded:")]
    assert {f"graded:{n}" for n in names} <= set(graded), names
    nb["cells"] = [c for c in nb["cells"] if c["cell_type"] != "code"
                   or not any(t.startswith("graded:") for t in c.get("metadata", {}).get("tags", []))
                   or any(t == f"graded:{n}" for n in names for t in c["metadata"]["tags"])]
    return json.dumps(nb, ensure_ascii=False).encode()
