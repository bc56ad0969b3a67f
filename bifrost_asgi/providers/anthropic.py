"""Anthropic (``anthropic/<model>``): the Messages API, translated or spoken natively.

Responses, chat completions and text completions requests are translated to ``POST /v1/messages`` and
the answers (JSON or SSE) back (:mod:`bifrost_asgi.translate.anthropic`); token counts come from
``POST /v1/messages/count_tokens``. A request from the ``/anthropic`` integration already is a Messages
body (``Op.MESSAGES`` / ``Op.MESSAGES_COUNT_TOKENS``): it is forwarded with only its model replaced, and
its answer comes back untouched (its usage read on the way, for pricing).

Failures map through :mod:`._http` like every provider's: 529 ``overloaded_error`` and 5xx retry on the
same key, 429 rotates it. An ``error`` event inside a 200 stream becomes the same BifrostError its HTTP
status would have, and a stream that ends without ``message_stop`` is an error too, never a short answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from bifrost_asgi.config import KeyConfig, ProviderConfig
from bifrost_asgi.errors import BifrostError, bad_response, stream_cut, unsupported_operation
from bifrost_asgi.providers.base import (
    MEDIA_OPS,
    OBJECTS,
    Call,
    Chunk,
    ChunkStream,
    Op,
    Reply,
    Shape,
    aclose_stream,
    check_shape,
    client_body,
    converted,
)
from bifrost_asgi.providers.http import (
    TRANSPORT_ERRORS,
    HTTPProvider,
    forwarded_headers,
    loads_object,
    map_transport_error,
    upstream_error,
)
from bifrost_asgi.sse import SSEEvent, aiter_sse
from bifrost_asgi.translate import (
    MessagesToChatStream,
    MessagesToResponsesStream,
    anthropic_error_status,
    chat_to_messages_request,
    count_tokens_request,
    merge_stream_usage,
    messages_to_chat_completion,
    messages_to_responses_response,
    messages_to_text_completion,
    responses_to_messages_request,
    text_to_messages_request,
)

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

# The API version every shape here was written against (docs: "Versions").
ANTHROPIC_VERSION = "2023-06-01"
_NATIVE = frozenset({Op.MESSAGES, Op.MESSAGES_COUNT_TOKENS})
_COUNTS = frozenset({Op.COUNT_TOKENS, Op.MESSAGES_COUNT_TOKENS})
# Upstream response headers worth passing back: rate-limit state. Anthropic's own request id is renamed,
# since x-request-id is the gateway's.
_FORWARD_PREFIXES = ("anthropic-ratelimit-", "retry-after")


class AnthropicProvider(HTTPProvider):
    """The Messages API provider. Holds no per-request state; shares the gateway's transport."""

    def __init__(
        self, name: str, config: ProviderConfig, transport: httpx.AsyncBaseTransport, base_url: str
    ) -> None:
        fixed = {"anthropic-version": ANTHROPIC_VERSION}
        super().__init__(name, config, transport, lambda secret: {"x-api-key": secret}, fixed)
        # Parsed once: the hot path hands these to httpx as they are.
        self._messages_url = httpx.URL(base_url + "/v1/messages")
        self._count_url = httpx.URL(base_url + "/v1/messages/count_tokens")
        self.raw_base = base_url

    # -- requests -------------------------------------------------------------------------------

    def _request(self, call: Call, *, stream: bool) -> tuple[httpx.URL, bytes]:
        """The upstream URL and body for a call."""
        if call.op in MEDIA_OPS:  # Anthropic's API has no embeddings, images or audio
            raise unsupported_operation(call.op.value, self.name)
        body = client_body(call)
        url = self._count_url if call.op in _COUNTS else self._messages_url
        if call.op in _NATIVE:
            body["model"] = call.model
            return url, orjson.dumps(body)
        return url, orjson.dumps(_translated(call.op, body, call.model, stream=stream))

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        if call.raw_route is not None:
            return await self.send_raw(call, key)
        url, content = self._request(call, stream=False)
        resp = await self._post(url, content, call, key)
        answer = _answer(call, loads_object(resp.content, self.name), self.name)
        return Reply(answer, _forwarded(resp.headers), content, resp.content)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        if call.raw_route is not None:
            return await self.open_raw(call, key)
        url, content = self._request(call, stream=True)
        resp = await self._open(url, content, call, key)
        events = self._events(resp, call)
        if call.op is Op.MESSAGES:
            return _native_chunks(events)
        if call.op is Op.RESPONSES:
            responses = MessagesToResponsesStream(request=call.body, model=call.model)
            return converted(events, responses, call.op, _decode, self.name)
        chat = MessagesToChatStream(model=call.model, text=call.op is Op.TEXT)
        return converted(events, chat, call.op, _decode, self.name)

    async def _events(self, resp: httpx.Response, call: Call) -> AsyncIterator[SSEEvent]:
        """The upstream's SSE events (``ping`` included: translators skip it, passthrough keeps the
        connection warm with it); raises on ``error`` events and on truncation."""
        stopped = False
        try:
            async for ev in aiter_sse(resp.aiter_bytes(), call.max_event_bytes, self.name):
                kind = ev.event or _event_type(ev.data)
                if kind == "error":
                    raise self._stream_error(ev.data)
                stopped = stopped or kind == "message_stop"
                ev.event = kind
                yield ev
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, call.timeout) from None
        finally:
            await resp.aclose()
        if not stopped:
            raise stream_cut(self.name, "message_stop")

    def _stream_error(self, data: bytes) -> BifrostError:
        # The event carries Anthropic's error body; its type says which HTTP status it stands for.
        try:
            error = orjson.loads(data).get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        kind = error.get("type") if isinstance(error, dict) else None
        return upstream_error(
            anthropic_error_status(kind if isinstance(kind, str) else None), data, self.name
        )


def _translated(op: Op, body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    if op is Op.RESPONSES:
        return responses_to_messages_request(body, model, stream=stream)
    if op is Op.CHAT:
        return chat_to_messages_request(body, model, stream=stream)
    if op is Op.TEXT:
        return text_to_messages_request(body, model, stream=stream)
    # Count tokens takes the Responses body, or the older chat-style ``messages`` form (seed 003).
    if body.get("input") is None and body.get("messages") is not None:
        return count_tokens_request(chat_to_messages_request(body, model, stream=False))
    return count_tokens_request(responses_to_messages_request(body, model, stream=False))


# The fields the translators read, by answer and by stream event type (see providers.base.check_shape).
_MESSAGE: Shape = {"content": OBJECTS, "usage": dict, "stop_reason": str}
_EVENTS: dict[str, Shape] = {
    "message_start": {"message": dict},
    "content_block_start": {"index": int, "content_block": dict},
    "content_block_delta": {"index": int, "delta": dict},
    "content_block_stop": {"index": int},
    "message_delta": {"delta": dict, "usage": dict},
}


def _answer(call: Call, upstream: dict[str, Any], provider: str) -> dict[str, Any]:
    if call.op is Op.MESSAGES:
        return upstream  # the client's own format: passed on as it came
    if call.op is not Op.COUNT_TOKENS:
        check_shape(upstream, _MESSAGE, f"provider {provider}'s message")
    if call.op is Op.RESPONSES:
        return messages_to_responses_response(upstream, request=call.body, model=call.model)
    if call.op is Op.CHAT:
        return messages_to_chat_completion(upstream, model=call.model)
    if call.op is Op.TEXT:
        return messages_to_text_completion(upstream, model=call.model)
    tokens = upstream.get("input_tokens")
    if not isinstance(tokens, int):
        raise _bad_response(provider, "a count_tokens answer without input_tokens")
    return {"input_tokens": tokens}


async def _native_chunks(events: AsyncIterator[SSEEvent]) -> ChunkStream:
    """The upstream's events as they came. Usage arrives in two halves (input on ``message_start``,
    output on ``message_delta``): the merged usage rides on the ``message_delta`` chunk."""
    usage: dict[str, Any] = {}
    try:
        async for ev in events:
            chunk = Chunk(ev.event, data=ev.data)
            if ev.event in ("message_start", "message_delta") and merge_stream_usage(
                usage, ev.event, _loads_event(ev.data)
            ):
                chunk.usage = dict(usage)
            yield [chunk]
    finally:
        await aclose_stream(events)


def _decode(event: SSEEvent) -> dict[str, Any]:
    """A stream event for a translator, its fields checked."""
    obj = _loads_event(event.data)
    shape = _EVENTS.get(str(obj.get("type")))
    if shape is not None:
        check_shape(obj, shape, f"anthropic stream event {obj.get('type')}")
        if isinstance(obj.get("message"), dict):
            check_shape(obj["message"], _MESSAGE, "anthropic stream event message_start")
    return obj


def _event_type(data: bytes) -> str | None:
    try:
        kind = orjson.loads(data).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def _loads_event(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        raise _bad_response("anthropic", "a stream event that is not a JSON object")
    return obj


def _bad_response(provider: str, what: str) -> BifrostError:
    return bad_response(f"provider {provider} returned {what}")


def _forwarded(headers: httpx.Headers) -> dict[str, str]:
    return forwarded_headers(headers, _FORWARD_PREFIXES, "request-id")
