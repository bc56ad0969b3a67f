"""What an API dialect supplies to the journey: `Surface`.

A surface parses a request in its dialect, names the primary target, builds each target's call, and
renders the answer, the stream events and errors in its dialect. It never owns a fallback loop, a stream
pump or an error skeleton: those live once in ``bifrost_asgi.pipeline``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from bifrost_asgi.errors import MALFORMED, BifrostError, unreadable
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.io import JSON_HEADERS, SSE_HEADERS
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.pipeline.streaming import StreamEncoder
from bifrost_asgi.providers.base import GATEWAY_FIELDS, Call, Chunk, Op
from bifrost_asgi.providers.http import loads_object
from bifrost_asgi.providers.openai import check_response
from bifrost_asgi.routing import Target
from bifrost_asgi.types import Headers, Scope

__all__ = [
    "Surface",
    "dialect_primary",
    "first_of_kind",
    "json_request",
    "make_call",
    "render_answer",
    "standard_headers",
    "translate_event",
]


class Surface(Protocol):
    """One API dialect (OpenAI Responses, chat, text; token counting; Anthropic Messages; ...).

    ``request_type`` is Bifrost's non-streaming request type, used for errors that happen before the
    body is parsed.
    """

    request_type: str

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        """Validate the body (400 on anything the dialect requires) and build the request; the fallbacks
        are parsed here, the primary target after authorization."""
        ...

    def primary(self, gw: Gateway, req: Request) -> Target:
        """The primary (provider, model), once ``req.vk`` is known."""
        ...

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        """The call ``provider`` takes for this request (a BifrostError when it cannot take it)."""
        ...

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        """The non-streamed answer's body (the usage is already priced into ``served``)."""
        ...

    def encoder(self, gw: Gateway, req: Request, served: Served) -> StreamEncoder: ...

    def headers(self, req: Request, served: Served) -> Headers:
        """The successful answer's content headers: `standard_headers` (JSON, or SSE for a stream) for
        most dialects; audio for speech, plain text for a transcript asked for as text."""
        ...

    def error_body(self, err: BifrostError) -> bytes: ...


def standard_headers(served: Served) -> Headers:
    """JSON for an answer, SSE (no caching, no proxy buffering) for a stream."""
    return SSE_HEADERS if served.chunks is not None else JSON_HEADERS


def json_request(
    gw: Gateway,
    op: Op,
    body: dict[str, Any],
    raw: bytes,
    stream: bool,
    model: str,
    request_type: str,
    started: float,
    *,
    metered: bool = True,
) -> Request:
    """A request parsed from a JSON body, with the ``fallbacks`` it names resolved."""
    req = Request(op, body, raw, stream, model, request_type, started, metered=metered)
    req.fallbacks = gw.resolver.fallbacks(body.get("fallbacks"))
    return req


def make_call(
    gw: Gateway,
    req: Request,
    provider: str,
    model: str,
    *,
    op: Op | None = None,
    body: dict[str, Any] | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Call:
    """A call carrying the request's body (or a surface's rewrite of it) to ``provider``.

    The client's bytes may be forwarded untouched (``passthrough``) only when the body already names the
    upstream model and carries no gateway-only fields.
    """
    body = req.body if body is None else body
    passthrough = model == body.get("model") and not any(f in body for f in GATEWAY_FIELDS)
    timeout = gw.config.providers[provider].network_config.default_request_timeout_in_seconds
    return Call(
        req.op if op is None else op,
        body,
        req.raw if raw is None else raw,
        model,
        req.stream,
        passthrough,
        req.forward_headers if headers is None else headers,
        timeout,
        max_answer_bytes=gw.max_answer,
        max_event_bytes=gw.max_event,
    )


def dialect_primary(gw: Gateway, model: str, kind: str, *, own_prefix: bool) -> Target:
    """The primary target of a provider dialect (Anthropic Messages, Gemini): a bare model goes to the
    first configured provider of the dialect's ``kind``, whatever a key's provider weights say. Under a
    framework prefix (``own_prefix`` false: ``/litellm``, ...) the catalog decides first, that provider
    winning among its candidates, as Bifrost's resolver does there."""
    if gw.resolver.split(model)[0] is None:
        if not own_prefix and gw.resolver.candidates(model):
            return gw.resolver.resolve(model, kind)
        name = first_of_kind(gw, kind)
        if name is not None:
            return name, model
    return gw.resolver.resolve(model)


def first_of_kind(gw: Gateway, kind: str) -> str | None:
    """The provider a dialect's own requests go to: the one named like its ``kind``, else the first (by
    name) configured with that kind; None when there is none."""
    names = [n for n in gw.config.providers if gw.config.provider_kind(n) == kind]
    return min(names, key=lambda n: (n != kind, n)) if names else None


def translate_event(
    chunk: Chunk, source: str, feed: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """A bridged Responses stream event, checked, through a dialect's converter; an event of the wrong
    shape is the upstream's fault (a 502), not a bug of ours."""
    try:
        data = chunk.data or b""
        event = chunk.obj if chunk.obj is not None else loads_object(data, source, "an event")
        return feed(check_response(event, f"provider {source}'s stream event"))
    except MALFORMED as exc:
        raise unreadable(source, exc) from None


def render_answer(served: Served, native: Op, translate: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    """A provider dialect's JSON answer: its own provider's as sent (the client's format already),
    any other provider's Responses answer checked and translated."""
    assert served.reply is not None
    body = served.reply.body
    if served.op is native:
        return orjson.dumps(body)
    check_response(body, f"provider {served.provider}'s answer")
    return orjson.dumps(translate(body))
