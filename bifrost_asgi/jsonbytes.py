"""Reading and extending a large JSON answer as bytes, without parsing it whole.

An embeddings answer is tens of kilobytes of floats and an image answer megabytes of base64; the
gateway needs only their ``usage`` and adds ``usage.cost`` and ``extra_fields``. Parsing and
re-serialising such a body costs ~250 µs per 1536-dimension vector, more than the rest of the request
(BENCHMARKS.md); finding the usage object and splicing two fields in costs a few µs.

    span = object_span(content, "usage")          # (start, end) of the last "usage": {...}, or None
    usage = orjson.loads(content[span[0]:span[1]])
    body = splice(content, span, {"cost": cost_bytes}, {"extra_fields": extra_bytes})
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["object_span", "splice"]

_AFTER_KEY = re.compile(rb"\s*:\s*\{")
_TOKEN = re.compile(rb'[{}"]')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.S)
_OPEN, _CLOSE, _QUOTE = 0x7B, 0x7D, 0x22
_SPACE = b" \t\r\n"


def object_span(content: bytes, key: str) -> tuple[int, int] | None:
    """The span of the object value of the last ``"key": {...}`` in ``content`` (from its ``{`` to just
    past its ``}``), or None. The last one is the top-level field in the answers this reads, whose
    other strings (base64, vectors, escaped text) cannot contain an unescaped ``"key"``."""
    needle = b'"' + key.encode() + b'"'
    at = content.rfind(needle)
    while at >= 0:
        match = _AFTER_KEY.match(content, at + len(needle))
        if match is not None:
            start = match.end() - 1
            end = _object_end(content, start)
            return None if end is None else (start, end)
        at = content.rfind(needle, 0, at)
    return None


def _object_end(content: bytes, start: int) -> int | None:
    depth = 0
    at = start
    while True:
        token = _TOKEN.search(content, at)
        if token is None:
            return None
        char = content[token.start()]
        if char == _QUOTE:
            rest = _STRING_REST.match(content, token.end())
            if rest is None:
                return None
            at = rest.end()
            continue
        depth += 1 if char == _OPEN else -1
        at = token.end()
        if depth == 0:
            return at


def splice(
    content: bytes,
    inner: tuple[int, int] | None,
    inner_fields: Mapping[str, bytes],
    outer_fields: Mapping[str, bytes],
) -> bytes:
    """``content`` (a JSON object) with ``inner_fields`` added at the end of the object spanning
    ``inner`` and ``outer_fields`` at the end of the whole object; values are serialised JSON."""
    body = content.rstrip(_SPACE)
    if not body.endswith(b"}"):
        raise ValueError("not a JSON object")
    pieces: list[bytes] = []
    at = 0
    if inner is not None and inner_fields:
        close = inner[1] - 1
        pieces += [body[at:close], _fields(body, close, inner_fields)]
        at = close
    close = len(body) - 1
    pieces += [body[at:close], _fields(body, close, outer_fields), b"}"]
    return b"".join(pieces)


def _fields(body: bytes, close: int, fields: Mapping[str, bytes]) -> bytes:
    """The members to insert before the ``}`` at ``close``, with a leading comma unless it is empty."""
    members = b",".join(b'"' + name.encode() + b'":' + value for name, value in fields.items())
    empty = body[:close].rstrip(_SPACE).endswith(b"{")
    return members if empty or not members else b"," + members
