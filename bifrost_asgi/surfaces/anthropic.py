"""The ``/anthropic`` integration: ``POST /anthropic/v1/messages`` and ``.../messages/count_tokens``.

The anthropic SDK works unmodified against ``{gateway}/anthropic``. A bare model goes to the anthropic
provider and its body passes through (model rewritten, gateway fields stripped); ``provider/model`` goes
to that provider through the reverse translation (Messages → Responses, and the answer back as a Message
or Messages SSE). Each target of the fallback chain gets the body its provider speaks, and each attempt
runs through the pipeline's ``attempt_target``, so retries, key rotation and pricing are shared.

On this prefix everything on the wire is Anthropic's: answers, SSE framing (``event: <type>`` +
``data: <json>``, no ``[DONE]``) and errors (``{"type": "error", "error": {"type", "message"}}`` with
the status Anthropic would use). Cost is reported in ``x-bifrost-cost-usd``; bodies stay exactly the
shapes the SDK knows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import orjson
from starlette.routing import BaseRoute, Route

from bifrost_asgi.errors import BifrostError, internal_error, invalid_request, not_configured
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.accounting import authorize, finish
from bifrost_asgi.pipeline.io import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientDisconnected,
    read_body,
    send_bytes,
    stream_until_disconnect,
)
from bifrost_asgi.pipeline.journey import (
    Request,
    Served,
    attempt_target,
    parse_body,
    price,
    read_headers,
    response_headers,
)
from bifrost_asgi.providers.anthropic import NATIVE_MESSAGES
from bifrost_asgi.providers.base import Chunk, ChunkStream, Op, Reply
from bifrost_asgi.routing import Target
from bifrost_asgi.sse import frame
from bifrost_asgi.surfaces.count_tokens import _count
from bifrost_asgi.translate import (
    ResponsesToMessagesStream,
    anthropic_error_type,
    messages_to_responses_request,
    messages_usage_to_responses,
    responses_to_message,
)
from bifrost_asgi.types import Scope

__all__ = ["anthropic_routes"]

log = logging.getLogger("bifrost_asgi")

PREFIX = "/anthropic"
# Client headers that shape an Anthropic request and so travel with a native body (beta features).
_NATIVE_HEADERS = (b"anthropic-beta",)
# Anthropic's own error types; any other BifrostError type is mapped from its status.
_ANTHROPIC_ERROR_TYPES = frozenset(
    {"invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
     "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error"}
)  # fmt: skip


def anthropic_routes(gw: Gateway) -> list[BaseRoute]:
    return [
        Route(PREFIX + "/v1/messages", _Endpoint(gw, Op.RESPONSES), methods=["POST"]),
        Route(PREFIX + "/v1/messages/count_tokens", _Endpoint(gw, Op.COUNT_TOKENS), methods=["POST"]),
    ]


class _Endpoint:
    """A plain ASGI endpoint, like the pipeline's: no Request/Response objects on the hot path."""

    __slots__ = ("gw", "op")

    def __init__(self, gw: Gateway, op: Op) -> None:
        self.gw = gw
        self.op = op

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.op is Op.COUNT_TOKENS:
            await handle_count_tokens(self.gw, scope, receive, send)
        else:
            await handle_messages(self.gw, scope, receive, send)


# -- parsing and targets ----------------------------------------------------------------------------


def _parse(gw: Gateway, op: Op, raw: bytes, scope: Scope, started: float) -> Request:
    body = parse_body(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model is required", param="model")
    stream = body.get("stream", False) if op is Op.RESPONSES else False
    if not isinstance(stream, bool):
        raise invalid_request("stream must be a boolean", param="stream")
    targets = [_primary(gw, model), *gw.resolver.fallbacks(body.get("fallbacks"))]
    req = Request(op, body, raw, stream, model, targets, op.request_type(stream), "", started)
    read_headers(req, scope)
    return req


def _primary(gw: Gateway, model: str) -> Target:
    """A bare model means the anthropic provider (the first configured one of that kind)."""
    if gw.resolver.split(model)[0] is None:
        anthropic = _anthropic_providers(gw)
        if anthropic:
            return anthropic[0], model
    return gw.resolver.resolve(model)


def _anthropic_providers(gw: Gateway) -> list[str]:
    names = [n for n in gw.config.providers if gw.config.provider_kind(n) == "anthropic"]
    return sorted(names, key=lambda n: (n != "anthropic", n))


def _is_anthropic(gw: Gateway, provider: str) -> bool:
    return gw.config.provider_kind(provider) == "anthropic"


def _native(req: Request, scope: Scope) -> Request:
    """The request as an anthropic provider takes it: the client's body, marked to pass through."""
    headers = dict(req.forward_headers)
    for name, value in scope["headers"]:
        if name in _NATIVE_HEADERS:
            headers[name.decode("latin-1")] = value.decode("latin-1")
    return replace(req, body={**req.body, NATIVE_MESSAGES: True}, forward_headers=headers)


def _bridged(req: Request) -> Request:
    """The request as any other provider takes it: translated to a Responses body."""
    body = messages_to_responses_request(req.body, stream=req.stream)
    if req.op is Op.COUNT_TOKENS:
        body.pop("stream", None)
    return replace(req, body=body, raw=orjson.dumps(body))


class _Variants:
    """The per-target requests, each built on first use (a translation error only counts for the
    targets that need the translation)."""

    def __init__(self, req: Request, scope: Scope) -> None:
        self.base = req
        self._scope = scope
        self._native: Request | None = None
        self._bridged: Request | BifrostError | None = None

    def native(self) -> Request:
        if self._native is None:
            self._native = _native(self.base, self._scope)
        return self._native

    def bridged(self) -> Request:
        if self._bridged is None:
            try:
                self._bridged = _bridged(self.base)
            except BifrostError as err:
                self._bridged = err
        if isinstance(self._bridged, BifrostError):
            raise self._bridged
        return self._bridged


async def _attempts(gw: Gateway, variants: _Variants) -> tuple[Request, Served]:
    """The pipeline's fallback walk (spec §3), with each target's own body: the first success wins; when
    all fail the primary's error is returned, unless a target's error forbids falling back."""
    primary_error: BifrostError | None = None
    for index, (provider, model) in enumerate(variants.base.targets):
        if provider not in gw.providers:
            if index == 0:
                raise not_configured(provider)
            continue
        try:
            req = variants.native() if _is_anthropic(gw, provider) else variants.bridged()
        except BifrostError:
            if index == 0:
                raise
            continue  # this fallback cannot take the request; the primary's error stays the answer
        try:
            return req, await _attempt(gw, req, index, provider, model)
        except BifrostError as err:
            if index == 0:
                primary_error = err
            if not err.allow_fallbacks or err.error_type == "request_cancelled":
                raise
    assert primary_error is not None  # the loop ran at least once: targets always holds the primary
    raise primary_error


async def _attempt(gw: Gateway, req: Request, index: int, provider: str, model: str) -> Served:
    if req.op is not Op.COUNT_TOKENS or req.body.get(NATIVE_MESSAGES):
        return await attempt_target(gw, req, index, provider, model)
    # Other providers count as on /v1/responses/input_tokens (locally, or with their own count API).
    body, served = await _count(gw, replace(req, targets=[(provider, model)]))
    served.index = index
    served.reply = Reply({"input_tokens": body["input_tokens"]})
    return served


# -- /v1/messages -----------------------------------------------------------------------------------


async def handle_messages(gw: Gateway, scope: Scope, receive: Any, send: Any) -> None:
    started = time.perf_counter()
    if not gw.started:
        await gw.start()
    base: Request | None = None
    try:
        raw = await read_body(scope, receive, gw.max_body)
        base = _parse(gw, Op.RESPONSES, raw, scope, started)
        # Governance as on every inference route; a bare model here means anthropic, whatever the key's
        # provider weights say, so the key's routing choice is not used.
        await authorize(gw, base)
        req, served = await _attempts(gw, _Variants(base, scope))
    except ClientDisconnected:
        return
    except BifrostError as err:
        await send_error(send, err)
        await finish(gw, base, None, err)
        return
    except Exception:  # a bug of ours still answers in Anthropic's shape
        log.exception("unexpected error handling /anthropic/v1/messages")
        await send_error(send, internal_error())
        await finish(gw, base, None, internal_error())
        return
    try:
        if served.chunks is not None:
            await _send_stream(gw, req, served, send, receive)
        else:
            await _send_message(gw, req, served, send)
    finally:
        await finish(gw, req, served, served.error)


async def _send_message(gw: Gateway, req: Request, served: Served, send: Any) -> None:
    assert served.reply is not None
    body = served.reply.body
    if req.body.get(NATIVE_MESSAGES):
        usage = body["usage"] if isinstance(body.get("usage"), dict) else {}
        price(gw, req, served, messages_usage_to_responses(usage), usage.get("service_tier"))
        message = body
    else:
        if isinstance(body.get("usage"), dict):
            price(gw, req, served, body["usage"], body.get("service_tier"))
        message = responses_to_message(body, model=req.model)
    await send_bytes(send, 200, orjson.dumps(message), response_headers(req, served, JSON_HEADERS))


# -- streaming --------------------------------------------------------------------------------------


class _MessagesWriter:
    """Frames a stream as Anthropic SSE: native events pass through as bytes (their usage read on the
    way for pricing); Responses events are translated."""

    def __init__(self, gw: Gateway, req: Request, served: Served) -> None:
        self.gw = gw
        self.req = req
        self.served = served
        self.native = bool(req.body.get(NATIVE_MESSAGES))
        self.usage: dict[str, Any] = {}
        self.convert = ResponsesToMessagesStream(model=req.model)

    def encode(self, chunk: Chunk) -> bytes:
        if self.native:
            return self._native(chunk)
        event = chunk.obj if chunk.obj is not None else orjson.loads(chunk.data or b"{}")
        if chunk.usage is not None:
            price(self.gw, self.req, self.served, chunk.usage, event.get("response", {}).get("service_tier"))
        return b"".join(frame(e["type"], orjson.dumps(e)) for e in self.convert.feed(event))

    def _native(self, chunk: Chunk) -> bytes:
        data = chunk.data if chunk.data is not None else orjson.dumps(chunk.obj)
        if chunk.event in ("message_start", "message_delta"):
            event = orjson.loads(data)
            usage = (
                event.get("usage")
                if chunk.event == "message_delta"
                else event.get("message", {}).get("usage")
            )
            if isinstance(usage, dict):
                self.usage.update({k: v for k, v in usage.items() if v is not None})
            if chunk.event == "message_delta":
                price(self.gw, self.req, self.served, messages_usage_to_responses(self.usage), None)
        return frame(chunk.event or "message", data)

    async def pump(self, chunks: ChunkStream, send: Any) -> None:
        try:
            async for batch in chunks:
                body = b"".join([self.encode(chunk) for chunk in batch])  # one write per batch
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    self.served.delivered += len(batch)
        except BifrostError as err:
            self.served.error = err
            await send({"type": "http.response.body", "body": _error_event(err), "more_body": True})
        except Exception:  # never leave a client hanging on a half-written stream
            log.exception("stream failed (request %s)", self.req.request_id)
            await send(
                {"type": "http.response.body", "body": _error_event(internal_error()), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})


async def _send_stream(gw: Gateway, req: Request, served: Served, send: Any, receive: Any) -> None:
    """Write the SSE response; a client disconnect cancels the upstream read and closes it."""
    chunks = served.chunks
    assert chunks is not None
    writer = _MessagesWriter(gw, req, served)
    headers = response_headers(req, served, SSE_HEADERS)
    await stream_until_disconnect(send, receive, headers, lambda: writer.pump(chunks, send), chunks)


# -- /v1/messages/count_tokens ----------------------------------------------------------------------


async def handle_count_tokens(gw: Gateway, scope: Scope, receive: Any, send: Any) -> None:
    started = time.perf_counter()
    if not gw.started:
        await gw.start()
    try:
        raw = await read_body(scope, receive, gw.max_body)
        base = _parse(gw, Op.COUNT_TOKENS, raw, scope, started)
        await authorize(gw, base)
        req, served = await _attempts(gw, _Variants(base, scope))
    except ClientDisconnected:
        return
    except BifrostError as err:
        await send_error(send, err)
        return
    except Exception:
        log.exception("unexpected error handling /anthropic/v1/messages/count_tokens")
        await send_error(send, internal_error())
        return
    assert served.reply is not None
    tokens = served.reply.body.get("input_tokens")
    await send_bytes(
        send, 200, orjson.dumps({"input_tokens": tokens}), response_headers(req, served, JSON_HEADERS)
    )


# -- errors -----------------------------------------------------------------------------------------


def _error_body(err: BifrostError) -> bytes:
    kind = (
        err.error_type if err.error_type in _ANTHROPIC_ERROR_TYPES else anthropic_error_type(err.status_code)
    )
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": err.message}})


def _error_event(err: BifrostError) -> bytes:
    return frame("error", _error_body(err))


async def send_error(send: Any, err: BifrostError) -> None:
    """An error in Anthropic's shape, with the status Anthropic would use."""
    await send_bytes(send, err.status_code, _error_body(err), list(JSON_HEADERS))
