"""Length-prefixed JSON frames between the grader and the student process, and the strict parsing of one.

Both sides import them from here (``wire`` encodes the values inside). A frame
is an 8-byte big-endian length and a JSON object. Text is made valid where it
enters (``loads``): a lone surrogate becomes its backslash escape, so every
string the grader holds can be written as UTF-8; a frame of more than
``FRAME_ITEMS`` values is refused before it is parsed.
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Any

MAX_FRAME_BYTES = 256 * 2**20
FRAME_ITEMS = 1_600_000  # JSON separators outside strings in one frame: 16 values' budgets (``wire.MAX_ITEMS``)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_HEADER = struct.Struct("!Q")
_FRAME_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class WireError(ValueError):
    """A frame or value that does not follow the protocol."""


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by its backslash escape (valid UTF-8 from then on)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def valid_strings(obj: Any) -> Any:
    """``valid_text`` applied in place to every string (keys too) of parsed JSON ``obj``; iterative."""
    if isinstance(obj, str):
        return valid_text(obj)
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = valid_text(v)
                elif isinstance(v, (list, dict)):
                    stack.append(v)
        elif isinstance(node, dict):
            items = [(valid_text(k), valid_text(v) if isinstance(v, str) else v) for k, v in node.items()]
            node.clear()
            node.update(items)
            stack.extend(v for _, v in items if isinstance(v, (list, dict)))
    return obj


def loads(body: bytes) -> Any:
    """Parse one JSON frame from an untrusted side, with ``valid_strings`` applied.

    Raises ``ValueError`` (bad UTF-8 or JSON, an integer of more than 4300
    digits) or ``RecursionError`` (deep nesting), as ``json.loads`` does.
    """
    if body.count(b",") > FRAME_ITEMS and _JSON_STRING.sub(b"", body).count(b",") > FRAME_ITEMS:
        raise ValueError(f"a frame of more than {FRAME_ITEMS} values")
    obj = json.loads(body)
    if b"\\ud" in body or b"\\uD" in body or b"\xed" in body:  # only then can a surrogate be in there
        valid_strings(obj)
    return obj


def encode_frame(message: dict[str, Any]) -> bytes:
    """One length-prefixed JSON frame."""
    body = _FRAME_JSON(message).encode()
    return _HEADER.pack(len(body)) + body


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """Write one length-prefixed JSON frame to ``fd``."""
    view = memoryview(encode_frame(message))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exactly(fd: int, n: int) -> bytes:
    """Blocking read of ``n`` bytes; ``EOFError`` when the other side is gone."""
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict[str, Any]:
    """Blocking read of one frame (used on the trusted side of a channel)."""
    (size,) = _HEADER.unpack(read_exactly(fd, _HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise WireError(f"frame of {size} bytes is too large")
    message = loads(read_exactly(fd, size))
    if not isinstance(message, dict):
        raise WireError("a frame must hold a JSON object")
    return message
