"""What student code did, as bounded plain text: its printed output, its exceptions, the names it defined.

The student process answers with these (``child``); none trusts a student
object: a hostile ``__str__``, ``__class__``, metaclass or signature gives a
fixed description instead of breaking the reply.
"""

from __future__ import annotations

import inspect
import io
import traceback
from typing import Any

_KEEP_CHARS = 4000


class BoundedText(io.TextIOBase):
    """A text sink that keeps the first and last few thousand characters written."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.tail = ""
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        if self.size < _KEEP_CHARS:
            self.head.append(s[: _KEEP_CHARS - self.size])
        self.size += len(s)
        self.tail = (self.tail + s[-_KEEP_CHARS:])[-_KEEP_CHARS:]
        return len(s)

    def take(self) -> str:
        head = "".join(self.head)
        if self.size > len(head):
            omitted = self.size - len(head) - min(len(self.tail), self.size - len(head))
            tail = self.tail[-(self.size - len(head)) :]
            text = head + (f"\n… [{omitted} characters omitted] …\n" if omitted > 0 else "") + tail
        else:
            text = head
        self.head, self.tail, self.size = [], "", 0
        return text


def error(exc: BaseException) -> dict[str, str]:
    """Describe a student exception without trusting its methods."""
    try:
        kind = str(type(exc).__name__)
    except BaseException:  # noqa: BLE001 - nor a hostile metaclass
        kind = "Exception"
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not break the reply
        message = "<the exception's message could not be printed>"
    try:
        extracted = traceback.extract_tb(exc.__traceback__)
        student = [f for f in extracted if f.filename.startswith("<cell")]
        lines = traceback.format_list(student[-3:])
        trace = "".join(lines)[-3000:]
    except BaseException:  # noqa: BLE001
        trace = ""
    return {"type": str(kind)[:100], "message": message, "traceback": trace}


def describe(namespace: dict[str, Any], name: str) -> str:
    """What ``name`` is in ``namespace``: "missing", a type name or a function's signature."""
    if name not in namespace:
        return "missing"
    value = namespace[name]
    try:
        if not inspect.isfunction(value):
            return str(type(value).__name__)
    except BaseException:  # noqa: BLE001 - a hostile __class__ or metaclass must not break the reply
        return "an object that could not be described"
    try:
        return f"function{inspect.signature(value)}"
    except BaseException:  # noqa: BLE001 - nor a hostile __signature__ / __wrapped__
        return "function(...)"
