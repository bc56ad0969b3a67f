"""Server-sent events: decoding upstream streams and framing ours, in one place.

Framing follows Bifrost (spec §2.1/§2.2): Responses streams are ``event: <type>`` + ``data: <json>``
with no terminator; chat and text streams are bare ``data:`` lines ending in ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from bifrost_asgi.errors import too_large_answer

__all__ = ["DEFAULT_MAX_EVENT", "DONE", "SSEDecoder", "SSEEvent", "aiter_sse", "aiter_sse_batches", "frame"]

DONE = b"data: [DONE]\n\n"
DEFAULT_MAX_EVENT = 4 * 1024 * 1024  # client.max_stream_event_size_mb's default


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes


def frame(event: str | None, data: bytes) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class SSEDecoder:
    """An SSE byte stream, decoded as it arrives: `feed` each read, get the events it completed;
    comments and keep-alives are skipped.

    Linear in the stream's size however it is split: an incomplete event is kept as a list of reads and
    joined once, when the read that completes it arrives (re-copying and rescanning a growing buffer on
    every read stalled a worker for seconds on one 30 MB event). An event larger than ``max_event``
    bytes is a 502 ``provider_bad_response`` naming ``source``.
    """

    __slots__ = ("_cr", "_pending", "_size", "max_event", "source")

    def __init__(self, max_event: int, source: str) -> None:
        self.max_event = max_event
        self.source = source
        self._pending: list[bytes] = []  # the reads of an incomplete event, none holding a blank line
        self._size = 0
        self._cr = False  # the previous read ended in "\r", which may start a "\r\n"

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events ``chunk`` completed (often none, or all of them at once)."""
        if self._cr:
            chunk = b"\r" + chunk
        self._cr = chunk.endswith(b"\r")
        if self._cr:
            chunk = chunk[:-1]
        if not chunk:  # kept as pending, an empty read would hide the blank line the next one completes
            return []
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        pending = self._pending
        if pending:
            if b"\n\n" not in chunk and not (chunk.startswith(b"\n") and pending[-1].endswith(b"\n")):
                pending.append(chunk)
                self._grow(len(chunk))
                return []
            pending.append(chunk)
            buf = b"".join(pending)
        else:
            buf = chunk
        # Every complete event in this read (the common case: whole events, nothing left over).
        batch: list[SSEEvent] = []
        start = 0
        while (end := buf.find(b"\n\n", start)) >= 0:
            if end - start > self.max_event:
                raise too_large_answer(self.source, "a stream event", self.max_event)
            event = _parse_block(buf[start:end])
            if event is not None:
                batch.append(event)
            start = end + 2
        if start < len(buf):
            self._pending = [buf[start:] if start else buf]
            self._size = 0
            self._grow(len(buf) - start)
        else:
            self._pending = []
        return batch

    def finish(self) -> list[SSEEvent]:
        """The last event, when the stream ended without the blank line that closes it."""
        tail = b"".join(self._pending) + (b"\r" if self._cr else b"")
        self._pending, self._cr = [], False
        event = _parse_block(tail) if tail.strip() else None
        return [event] if event is not None else []

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > self.max_event:
            raise too_large_answer(self.source, "a stream event", self.max_event)


async def aiter_sse_batches(
    chunks: AsyncIterator[bytes], max_event: int, source: str
) -> AsyncGenerator[list[SSEEvent], None]:
    """Decode an SSE byte stream into the batches of complete events each read made available
    (`SSEDecoder`); a read that completes no event yields nothing."""
    decoder = SSEDecoder(max_event, source)
    async for chunk in chunks:
        if batch := decoder.feed(chunk):
            yield batch
    if tail := decoder.finish():
        yield tail


async def aiter_sse(chunks: AsyncIterator[bytes], max_event: int, source: str) -> AsyncIterator[SSEEvent]:
    """Decode an SSE byte stream into events, one at a time."""
    batches = aiter_sse_batches(chunks, max_event, source)
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
