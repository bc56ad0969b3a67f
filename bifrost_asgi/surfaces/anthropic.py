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

from functools import partial
from typing import Any

import orjson

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.request import Request, Served, parse_body, require_model, require_stream_flag
from bifrost_asgi.providers.base import Call, Chunk, Op
from bifrost_asgi.routing import Target
from bifrost_asgi.sse import frame
from bifrost_asgi.surfaces.base import (
    dialect_primary,
    json_request,
    make_call,
    render_answer,
    standard_headers,
    translate_event,
)
from bifrost_asgi.translate import (
    ResponsesToMessagesStream,
    anthropic_error_type,
    messages_to_responses_request,
    responses_to_message,
)
from bifrost_asgi.types import Headers, Scope

__all__ = ["MessagesCountSurface", "MessagesSurface", "anthropic_error_body"]

# Client headers that shape an Anthropic request and so travel with a native body (beta features).
_NATIVE_HEADERS = (b"anthropic-beta",)
# Anthropic's own error types; any other BifrostError type is mapped from its status.
_ANTHROPIC_ERROR_TYPES = frozenset(
    {"invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
     "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error"}
)  # fmt: skip


def anthropic_error_body(err: BifrostError) -> bytes:
    """An error in Anthropic's shape (the status stays the one Anthropic would use)."""
    kind = (
        err.error_type if err.error_type in _ANTHROPIC_ERROR_TYPES else anthropic_error_type(err.status_code)
    )
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": err.message}})


class _MessagesDialect:
    """What Messages and its token count share: parsing, the primary, per-target bodies, errors.

    ``integration`` is the prefix the dialect is served under (``anthropic``, or a framework prefix such
    as ``litellm`` that serves every dialect).
    """

    native_op: Op
    bridged_op: Op
    request_type: str

    def __init__(self, integration: str = "anthropic") -> None:
        self.integration = integration

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = require_model(body)
        stream = require_stream_flag(body) if self.native_op is Op.MESSAGES else False
        counting = self.native_op is Op.MESSAGES_COUNT_TOKENS
        request_type = self.request_type if counting else Op.RESPONSES.request_type(stream)
        req = json_request(
            gw, self.native_op, body, raw, stream, model, request_type, started, metered=not counting
        )
        req.state["native_headers"] = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _NATIVE_HEADERS
        }
        return req

    def primary(self, gw: Gateway, req: Request) -> Target:
        return dialect_primary(gw, req.model, "anthropic", own_prefix=self.integration == "anthropic")

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
        return anthropic_error_body(err)


class MessagesSurface(_MessagesDialect):
    """``POST /anthropic/v1/messages``: a Message, or Messages SSE."""

    native_op = Op.MESSAGES
    bridged_op = Op.RESPONSES
    request_type = Op.RESPONSES.value

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        return render_answer(served, Op.MESSAGES, partial(responses_to_message, model=req.model))

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
        events = translate_event(chunk, self.source, self.convert.feed)
        return b"".join(frame(e["type"], orjson.dumps(e)) for e in events)

    def error(self, err: BifrostError) -> bytes:
        return frame("error", self.dialect.error_body(err))

    def end(self) -> bytes:
        return b""
