"""The Anthropic Messages dialect: ``POST /anthropic/v1/messages`` and ``.../messages/count_tokens``.

The anthropic SDK works unmodified against ``{gateway}/anthropic``. A bare model goes to the anthropic
provider and its body passes through natively (``Op.MESSAGES``: model rewritten, gateway fields
stripped); ``provider/model`` goes to that provider through the reverse translation (Messages →
Responses, and the answer back as a Message or Messages SSE). Each target of the fallback chain gets the
body its provider speaks (`call_for`); the journey is the one every route shares.

On this prefix everything on the wire is Anthropic's: answers, SSE framing (``event: <type>`` +
``data: <json>``, no ``[DONE]``) and errors (``{"type": "error", "error": {"type", "message"}}`` with
the status Anthropic would use). Cost is reported in ``x-bifrost-cost-usd``; bodies stay exactly the
shapes the SDK knows.
"""

from __future__ import annotations

from typing import Any

import orjson

from bifrost_asgi.errors import MALFORMED, BifrostError, unreadable
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.request import Request, Served, parse_body, require_model, require_stream_flag
from bifrost_asgi.providers.base import Call, Chunk, Op
from bifrost_asgi.providers.http import loads_object
from bifrost_asgi.providers.openai import check_response
from bifrost_asgi.routing import Target
from bifrost_asgi.sse import frame
from bifrost_asgi.surfaces.base import make_call, standard_headers
from bifrost_asgi.translate import (
    ResponsesToMessagesStream,
    anthropic_error_type,
    messages_to_responses_request,
    responses_to_message,
)
from bifrost_asgi.types import Headers, Scope

__all__ = ["MessagesCountSurface", "MessagesSurface"]

# Client headers that shape an Anthropic request and so travel with a native body (beta features).
_NATIVE_HEADERS = (b"anthropic-beta",)
# Anthropic's own error types; any other BifrostError type is mapped from its status.
_ANTHROPIC_ERROR_TYPES = frozenset(
    {"invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
     "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error"}
)  # fmt: skip


class _MessagesDialect:
    """What Messages and its token count share: parsing, the primary, per-target bodies, errors."""

    native_op: Op
    bridged_op: Op
    request_type: str

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = require_model(body)
        stream = require_stream_flag(body) if self.native_op is Op.MESSAGES else False
        counting = self.native_op is Op.MESSAGES_COUNT_TOKENS
        request_type = self.request_type if counting else Op.RESPONSES.request_type(stream)
        req = Request(self.native_op, body, raw, stream, model, request_type, started, metered=not counting)
        req.fallbacks = gw.resolver.fallbacks(body.get("fallbacks"))
        req.state["native_headers"] = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _NATIVE_HEADERS
        }
        return req

    def primary(self, gw: Gateway, req: Request) -> Target:
        """A bare model means the anthropic provider (the first configured one of that kind), whatever
        the key's provider weights say."""
        if gw.resolver.split(req.model)[0] is None:
            names = [n for n in gw.config.providers if gw.config.provider_kind(n) == "anthropic"]
            if names:
                return min(names, key=lambda n: (n != "anthropic", n)), req.model
        return gw.resolver.resolve(req.model)

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        if gw.config.provider_kind(provider) == "anthropic":
            headers = {**req.forward_headers, **req.state["native_headers"]}
            return make_call(gw, req, provider, model, headers=headers)
        body, raw = self._bridged(req)
        return make_call(gw, req, provider, model, op=self.bridged_op, body=body, raw=raw)

    def _bridged(self, req: Request) -> tuple[dict[str, Any], bytes]:
        """The request as any other provider takes it: a Responses body, built once per request (a
        translation error counts only for the targets that need the translation)."""
        cached = req.state.get("bridged")
        if cached is None:
            try:
                body = messages_to_responses_request(req.body, stream=req.stream)
            except BifrostError as err:
                cached = err
            else:
                if self.bridged_op is Op.COUNT_TOKENS:
                    body.pop("stream", None)
                    body["return_tokens"] = False  # only input_tokens is answered on this route
                cached = (body, orjson.dumps(body))
            req.state["bridged"] = cached
        if isinstance(cached, BifrostError):
            raise cached
        result: tuple[dict[str, Any], bytes] = cached
        return result

    def headers(self, req: Request, served: Served) -> Headers:
        return standard_headers(served)

    def error_body(self, err: BifrostError) -> bytes:
        """An error in Anthropic's shape (the status stays the one Anthropic would use)."""
        kind = (
            err.error_type
            if err.error_type in _ANTHROPIC_ERROR_TYPES
            else anthropic_error_type(err.status_code)
        )
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": err.message}})


class MessagesSurface(_MessagesDialect):
    """``POST /anthropic/v1/messages``: a Message, or Messages SSE."""

    native_op = Op.MESSAGES
    bridged_op = Op.RESPONSES
    request_type = Op.RESPONSES.value

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        assert served.reply is not None
        body = served.reply.body
        if served.op is Op.MESSAGES:
            return orjson.dumps(body)  # the client's own format, as the provider sent it
        check_response(body, f"provider {served.provider}'s answer")
        return orjson.dumps(responses_to_message(body, model=req.model))

    def encoder(self, gw: Gateway, req: Request, served: Served) -> MessagesStreamEncoder:
        return MessagesStreamEncoder(req, served, self)


class MessagesCountSurface(_MessagesDialect):
    """``POST /anthropic/v1/messages/count_tokens``: ``{"input_tokens": N}``."""

    native_op = Op.MESSAGES_COUNT_TOKENS
    bridged_op = Op.COUNT_TOKENS
    request_type = Op.COUNT_TOKENS.value

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        assert served.reply is not None
        return orjson.dumps({"input_tokens": served.reply.body.get("input_tokens")})

    def encoder(self, gw: Gateway, req: Request, served: Served) -> MessagesStreamEncoder:
        raise AssertionError("token counts are never streamed")  # parse sets stream=False


class MessagesStreamEncoder:
    """Anthropic SSE: native events pass through as bytes; Responses events are translated."""

    def __init__(self, req: Request, served: Served, dialect: _MessagesDialect) -> None:
        self.native = served.op is Op.MESSAGES
        self.source = served.provider
        self.convert = ResponsesToMessagesStream(model=req.model)
        self.dialect = dialect

    def encode(self, chunk: Chunk) -> bytes:
        if self.native:
            return frame(
                chunk.event or "message", chunk.data if chunk.data is not None else orjson.dumps(chunk.obj)
            )
        try:
            data = chunk.data or b""
            event = chunk.obj if chunk.obj is not None else loads_object(data, self.source, "an event")
            check_response(event, f"provider {self.source}'s stream event")
            return b"".join(frame(e["type"], orjson.dumps(e)) for e in self.convert.feed(event))
        except MALFORMED as exc:  # an upstream event of the wrong shape: its fault, not a bug of ours
            raise unreadable(self.source, exc) from None

    def error(self, err: BifrostError) -> bytes:
        return frame("error", self.dialect.error_body(err))

    def end(self) -> bytes:
        return b""
