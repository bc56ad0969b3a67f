"""Server-sent events: decoding upstream streams and framing ours, in one place.

Framing follows Bifrost (spec §2.1/§2.2): Responses streams are ``event: <type>`` + ``data: <json>``
with no terminator; chat and text streams are bare ``data:`` lines ending in ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["DONE", "SSEEvent", "aiter_sse", "frame"]

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes


def frame(event: str | None, data: bytes) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def aiter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Decode an SSE byte stream into events; comments and keep-alives are skipped.

    Splitting on blank lines directly (rather than line by line) keeps the per-event cost to a few
    bytes operations, which matters because every streamed token passes through here.
    """
    buf = b""
    async for chunk in chunks:
        buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            block, buf = buf[:end], buf[end + 2 :]
            event = _parse_block(block)
            if event is not None:
                yield event
    if buf.strip():
        event = _parse_block(buf)
        if event is not None:
            yield event


def _parse_block(block: bytes) -> SSEEvent | None:
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode()
    if not data:
        return None
    return SSEEvent(name, data[0] if len(data) == 1 else b"\n".join(data))
