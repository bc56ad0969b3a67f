"""Server-sent events: decoding upstream streams into events (and the batches each read completes), and
framing ours.

Every streamed token passes through this decoder, and upstreams differ in line endings, spacing, comments
and where their reads split an event; each case below is one a real upstream produces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bifrost_asgi.sse import DONE, aiter_sse, aiter_sse_batches, frame


async def _reads(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _batches(*parts: bytes) -> list[list[tuple[str | None, bytes]]]:
    return [[(e.event, e.data) for e in batch] async for batch in aiter_sse_batches(_reads(*parts))]


async def _events(*parts: bytes) -> list[tuple[str | None, bytes]]:
    return [(e.event, e.data) async for e in aiter_sse(_reads(*parts))]


async def test_events_are_batched_by_the_read_that_completed_them() -> None:
    batches = await _batches(b"data: 1\n\ndata: 2\n\nda", b"ta: 3\n\n", b": keep-alive\n\n", b"data: 4")
    assert batches == [[(None, b"1"), (None, b"2")], [(None, b"3")], [(None, b"4")]]


async def test_sse_decoding_handles_names_crlf_and_multiline_data() -> None:
    raw = b"event: response.created\r\ndata: {}\r\n\r\ndata: a\ndata: b\n\ndata:no-space\n\n"
    assert await _events(raw[:7], raw[7:]) == [
        ("response.created", b"{}"),
        (None, b"a\nb"),
        (None, b"no-space"),
    ]


async def test_an_empty_stream_has_no_events() -> None:
    assert await _batches() == []
    assert await _events() == []
    assert await _batches(b"", b"", b"") == []  # reads that carry nothing


async def test_a_stream_of_blank_lines_and_comments_has_no_events() -> None:
    assert await _batches(b"\n\n", b"\n", b": ping\n\n", b"\r\n\r\n", b"  \n") == []
    assert await _events(b"event: ping\n\n") == []  # a name with no data is not an event


async def test_a_buffer_that_starts_with_a_blank_line() -> None:
    assert await _batches(b"\n\ndata: 1\n\n") == [[(None, b"1")]]
    assert await _batches(b"\ndata: 1\n\n") == [[(None, b"1")]]
    assert await _batches(b"\n", b"\ndata: 1\n\n", b"\n\ndata: 2\n\n") == [[(None, b"1")], [(None, b"2")]]


async def test_an_event_split_at_every_byte_is_decoded_once() -> None:
    raw = b"event: e\r\ndata: x\r\n\r\ndata: y\n\n"
    assert await _batches(*(raw[i : i + 1] for i in range(len(raw)))) == [[("e", b"x")], [(None, b"y")]]


async def test_an_empty_read_inside_a_terminator_does_not_hold_the_event_back() -> None:
    assert await _batches(b"data: 1\n", b"", b"\ndata: 2\n\n") == [[(None, b"1"), (None, b"2")]]
    assert await _batches(b"data: 1\n", b"", b"\n", b"data: 2\n\n") == [[(None, b"1")], [(None, b"2")]]
    assert await _batches(b"data: 1\r\n\r", b"\n", b"data: 2\n\n") == [[(None, b"1")], [(None, b"2")]]


async def test_a_crlf_terminator_split_between_reads() -> None:
    assert await _batches(b"data: 1\r", b"\n\r\n", b"data: 2\r\n\r\n") == [[(None, b"1")], [(None, b"2")]]
    # The first event's terminator ends in the third read: both events complete there.
    assert await _batches(b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n") == [[(None, b"1"), (None, b"2")]]


async def test_the_last_event_needs_no_terminator_but_blank_tail_is_not_an_event() -> None:
    assert await _batches(b"data: 1\n\nevent: done\ndata: 2") == [[(None, b"1")], [("done", b"2")]]
    assert await _batches(b"data: 1\n\n\n") == [[(None, b"1")]]
    assert await _batches(b"data: 1\n\n: bye") == [[(None, b"1")]]


async def test_field_spacing_follows_the_sse_rules() -> None:
    raw = b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\n\nevent:e\ndata: 1\n\nevent:  spaced  \ndata: 2\n\n"
    assert await _events(raw) == [
        (None, b"x"),
        (None, b"x"),
        (None, b" x"),  # only the one space after the colon is dropped
        (None, b""),
        ("e", b"1"),
        ("spaced", b"2"),
    ]


async def test_multiline_data_joins_with_newlines_and_other_fields_are_ignored() -> None:
    raw = b"id: 7\nevent: a\nretry: 10\ndata: 1\n: note\ndata:2\ndata: 3\n\n"
    assert await _events(raw) == [("a", b"1\n2\n3")]
    assert await _events(b"event: a\nevent: b\ndata: x\n\n") == [("b", b"x")]  # the last name wins


def test_framing() -> None:
    assert frame(None, b'{"a":1}') == b'data: {"a":1}\n\n'
    assert frame("response.created", b"{}") == b"event: response.created\ndata: {}\n\n"
    assert DONE == b"data: [DONE]\n\n"
