"""A stream event survives being kept: its bytes or object, and where its usage is."""

from __future__ import annotations

from bifrost_asgi.cache.entries import freeze_chunk, replay
from bifrost_asgi.providers.base import Chunk


async def _round_trip(chunk: Chunk) -> Chunk:
    [[back]] = [batch async for batch in replay([[freeze_chunk(chunk)]])]
    return back


async def test_an_event_passed_through_keeps_its_bytes_and_usage() -> None:
    usage = {"prompt_tokens": 3}
    back = await _round_trip(Chunk(None, data=b'{"id":"c","usage":{"prompt_tokens":3}}', usage=usage))
    assert (back.data, back.obj, back.usage) == (b'{"id":"c","usage":{"prompt_tokens":3}}', None, usage)


async def test_an_event_built_keeps_its_usage_inside_it() -> None:
    usage = {"input_tokens": 3}
    obj = {"type": "response.completed", "response": {"id": "r", "usage": usage}}
    back = await _round_trip(Chunk("response.completed", obj=obj, usage=usage))
    assert back.obj == obj and back.event == "response.completed"
    assert back.obj is not None and back.usage is back.obj["response"]["usage"]  # the encoder prices it there


async def test_usage_reported_beside_the_event_is_kept_beside_it() -> None:
    back = await _round_trip(Chunk(None, obj={"id": "c"}, usage={"total_tokens": 5}))
    assert (back.obj, back.usage) == ({"id": "c"}, {"total_tokens": 5})
