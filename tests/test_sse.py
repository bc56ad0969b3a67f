"""Server-sent events: decoding upstream streams into events (and the batches each read completes), and
framing ours.

Every streamed token passes through this decoder, and upstreams differ in line endings, spacing, comments
and where their reads split an event; each case below is one a real upstream produces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.sse import DEFAULT_MAX_EVENT, DONE, aiter_sse, aiter_sse_batches, frame


async def _reads(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _batches(*parts: bytes, limit: int = DEFAULT_MAX_EVENT) -> list[list[tuple[str | None, bytes]]]:
    batches = aiter_sse_batches(_reads(*parts), limit, "openai")
    return [[(e.event, e.data) for e in batch] async for batch in batches]


async def _events(*parts: bytes, limit: int = DEFAULT_MAX_EVENT) -> list[tuple[str | None, bytes]]:
    return [(e.event, e.data) async for e in aiter_sse(_reads(*parts), limit, "anthropic")]


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


async def test_a_lone_cr_is_data_even_at_the_very_end_of_the_stream() -> None:
    # A "\r" ending a read is held back in case the next read starts with "\n"; when the stream ends
    # there, it is data like a lone "\r" anywhere else, not dropped.
    assert await _batches(b"data: a\rb\r") == [[(None, b"a\rb\r")]]
    assert await _batches(b"data: a", b"\r") == [[(None, b"a\r")]]


async def test_an_unterminated_last_event_split_across_reads_is_joined_whole() -> None:
    assert await _batches(b"data: 1\n\nevent: e\n", b"data: 2", b"3") == [[(None, b"1")], [("e", b"23")]]


# The size limit (client.max_stream_event_size_mb) holds at each place an event can grow: whole in one read,
# left over at the end of a read, and added to read by read. "data: 1234" is 10 bytes.


async def test_an_event_of_exactly_the_size_limit_passes_however_it_arrives() -> None:
    # Whole, after another event in the same read.
    assert await _batches(b"data: 1\n\ndata: 1234\n\n", limit=10) == [[(None, b"1"), (None, b"1234")]]
    # Left over after another event, then completed by the next read, or by the stream's end.
    assert await _batches(b"data: 1\n\ndata: 1234", b"\n\n", limit=10) == [[(None, b"1")], [(None, b"1234")]]
    assert await _batches(b"data: 1\n\ndata: 1234", limit=10) == [[(None, b"1")], [(None, b"1234")]]
    # Grown read by read up to the limit, then completed.
    assert await _batches(b"data: 1", b"23", b"4", b"\n\n", limit=10) == [[(None, b"1234")]]
    assert await _events(b"data: 1", b"23", b"4", limit=10) == [(None, b"1234")]


@pytest.mark.parametrize(
    "parts",
    [
        (b"data: 1\n\ndata: 12345\n\n",),  # whole in one read
        (b"data: 1\n\ndata: 12345",),  # left over at the end of a read (and of the stream)
        (b"data: 12", b"34", b"5"),  # grown read by read, never completed
    ],
    ids=["whole", "left-over", "grown"],
)
async def test_an_event_one_byte_over_the_size_limit_is_a_502_naming_the_provider(
    parts: tuple[bytes, ...],
) -> None:
    for decode, provider in ((_batches, "openai"), (_events, "anthropic")):
        with pytest.raises(BifrostError) as caught:
            await decode(*parts, limit=10)
        error = caught.value
        assert (error.status_code, error.error_type) == (502, "provider_bad_response")
        assert error.message == f"provider {provider} sent a stream event larger than 10 bytes"
