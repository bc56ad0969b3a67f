"""Server-sent events: decoding upstream streams and framing ours, in one place.

Framing follows Bifrost (spec §2.1/§2.2): Responses streams are ``event: <type>`` + ``data: <json>``
with no terminator; chat and text streams are bare ``data:`` lines ending in ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

__all__ = ["DONE", "SSEEvent", "aiter_sse", "aiter_sse_batches", "frame"]

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes


def frame(event: str | None, data: bytes) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def aiter_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncGenerator[list[SSEEvent], None]:
    """Decode an SSE byte stream into the batches of complete events each read made available;
    comments and keep-alives are skipped, and a read that completes no event yields nothing.

    Splitting on blank lines directly (rather than line by line) keeps the per-event cost to a few
    bytes operations, which matters because every streamed token passes through here.
    """
    buf = b""
    async for chunk in chunks:
        buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        batch: list[SSEEvent] = []
        start = 0
        while (end := buf.find(b"\n\n", start)) >= 0:
            event = _parse_block(buf[start:end])
            if event is not None:
                batch.append(event)
            start = end + 2
        if start:
            buf = buf[start:]
        if batch:
            yield batch
    if buf.strip():
        event = _parse_block(buf)
        if event is not None:
            yield [event]


async def aiter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Decode an SSE byte stream into events, one at a time."""
    batches = aiter_sse_batches(chunks)
    try:
        async for batch in batches:
            for event in batch:
                yield event
    finally:
        await batches.aclose()


def _parse_block(block: bytes) -> SSEEvent | None:
    if block[:6] == b"data: " and b"\n" not in block:  # the common shape: one data line, no name
        return SSEEvent(None, block[6:])
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
