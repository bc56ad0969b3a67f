"""How upstream streams reach the client: one write per upstream read, odd chunks (decoding: test_sse.py).

The upstream here is an httpx.MockTransport whose body arrives in the reads the test chooses, and the
gateway is driven at the ASGI level so each message it sends (each socket write, under a server) is seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.pipeline.streaming import stream_until_disconnect

Obj = dict[str, Any]


async def _reads(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _chat_chunk(text: str) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": None}
    ]}  # fmt: skip
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
USAGE_CHUNK = b"data: " + orjson.dumps({"id": "c1", "choices": [], "usage": USAGE}) + b"\n\n"


def _gateway(reads: Sequence[bytes], provider: str = "openai") -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_reads(*reads))

    settings: Obj = {"keys": [{"value": "sk-up", "models": ["*"]}]}
    if provider != "openai":
        settings["network_config"] = {"base_url": "http://up.test"}
    config = {"providers": {provider: settings}}
    return create_app(GatewayConfig.from_dict(config), transport=httpx.MockTransport(handler))


async def _call(app: Any, path: str, body: Obj) -> list[bytes]:
    """The body messages the app sent, in order (the last one is the empty end of the response)."""
    raw = orjson.dumps(body)
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[Obj] = []

    async def receive() -> Obj:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Obj) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"gw")],
        "client": ("127.0.0.1", 1), "server": ("gw", 80),
    }  # fmt: skip
    await app.state.gateway.start()
    try:
        await app(scope, receive, send)
    finally:
        await app.state.gateway.aclose()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200, sent
    return [m["body"] for m in sent[1:]]


def _data_lines(bodies: list[bytes]) -> list[bytes]:
    return [b for body in bodies for b in body.split(b"\n\n") if b]


async def test_events_of_one_upstream_read_leave_in_one_write() -> None:
    reads = [
        _chat_chunk("a") + _chat_chunk("b") + _chat_chunk("c"),
        _chat_chunk("d") + USAGE_CHUNK,
        b"data: [DONE]\n\n",
    ]
    bodies = await _call(_gateway(reads), "/v1/chat/completions", {
        "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True},
    })  # fmt: skip
    # Two upstream reads with events -> two writes, then [DONE], which also ends the body.
    assert [body.count(b"data: ") for body in bodies] == [3, 2, 1]
    assert bodies[-1] == b"data: [DONE]\n\n"
    events = [orjson.loads(line[6:]) for line in _data_lines(bodies)[:-1]]
    assert [e["extra_fields"]["chunk_index"] for e in events] == [0, 1, 2, 3, 4]
    # The usage chunk is still priced: gpt-4o-mini, 5 input and 3 output tokens.
    assert events[-1]["usage"]["cost"]["total_cost"] == pytest.approx(5 * 0.15e-6 + 3 * 0.6e-6)


async def test_translated_stream_keeps_one_write_per_upstream_read() -> None:
    reads = [_chat_chunk("a") + _chat_chunk("b"), USAGE_CHUNK + b"data: [DONE]\n\n"]
    bodies = await _call(_gateway(reads, provider="groq"), "/v1/responses", {
        "model": "groq/llama-3.3-70b-versatile", "input": "hi", "stream": True
    })  # fmt: skip
    events = [line.split(b"\n", 1)[0].removeprefix(b"event: ") for line in _data_lines(bodies)]
    assert events[:2] == [b"response.created", b"response.in_progress"]
    assert events.count(b"response.output_text.delta") == 2
    assert events[-1] == b"response.completed"
    # created/in_progress, the two deltas (with the item and part they open), then the closing events.
    assert len(bodies) == 4 and bodies[-1] == b""
    deltas = [b for b in bodies if b.count(b"event: response.output_text.delta") == 2]
    assert len(deltas) == 1


async def test_a_usage_chunk_that_is_not_json_is_passed_on_not_a_500() -> None:
    reads = [_chat_chunk("a"), b'data: {"usage":{broken\n\n', b"data: [DONE]\n\n"]
    bodies = await _call(_gateway(reads), "/v1/chat/completions", {
        "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True
    })  # fmt: skip
    lines = _data_lines(bodies)
    assert lines[1] == b'data: {"usage":{broken' and lines[-1] == b"data: [DONE]"


@pytest.mark.parametrize("kind", ["httpx", "aiohttp"])
async def test_the_configured_connection_limit_reaches_the_pool(kind: str) -> None:
    config = GatewayConfig.from_dict(
        {"providers": {"mock": {}}, "http_transport": kind, "max_connections": 7}
    )
    app = create_app(config)
    await app.state.gateway.start()
    try:
        pool = app.state.gateway.transport
        if kind == "aiohttp":
            assert pool.limits.max_connections == 7 and pool.limits.keepalive_expiry == 30.0
        else:
            assert pool._pool._max_connections == 7 and pool._pool._keepalive_expiry == 30.0
    finally:
        await app.state.gateway.aclose()


class _Upstream:
    closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_a_disconnect_while_the_upstream_is_idle_cancels_the_pump() -> None:
    disconnect = asyncio.Event()
    started: list[bool] = []
    upstream = _Upstream()

    async def receive() -> Obj:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: Obj) -> None:
        pass

    async def idle_pump() -> None:
        started.append(True)
        disconnect.set()  # the client leaves while the upstream has nothing to say
        await asyncio.sleep(3600)

    await asyncio.wait_for(stream_until_disconnect(send, receive, [], idle_pump, upstream), timeout=5)
    assert started and upstream.closed
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # the cancellation was ours and is spent


async def test_a_cancellation_from_outside_is_not_swallowed() -> None:
    upstream = _Upstream()

    async def receive() -> Obj:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Obj) -> None:
        pass

    async def pump() -> None:
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(stream_until_disconnect(send, receive, [], pump, upstream))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert upstream.closed
