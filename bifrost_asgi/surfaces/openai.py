"""The OpenAI-style dialects: Responses, chat completions and text completions (``/v1/...`` under the
unified root and every integration prefix).

Answers are the provider's (translated where needed) with Bifrost's additions: ``usage.cost`` and
``extra_fields`` on the body and on every stream event, spliced into the bytes without re-parsing them.
Responses streams are ``event:`` + ``data:`` with no terminator; chat and text streams end in
``data: [DONE]``. Errors are Bifrost's ``BifrostError`` JSON (an SSE ``error`` event mid-stream).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bifrost_asgi.errors import BifrostError, invalid_request
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.accounting import ZERO_COST, key_choice
from bifrost_asgi.pipeline.request import Request, Served, parse_body, require_model, require_stream_flag
from bifrost_asgi.pipeline.respond import extra_fields, ms_since
from bifrost_asgi.pipeline.streaming import StreamEncoder
from bifrost_asgi.providers.base import Call, Chunk, Op, Reply
from bifrost_asgi.providers.http import object_or_none
from bifrost_asgi.routing import Target
from bifrost_asgi.sse import DONE, frame
from bifrost_asgi.surfaces.base import json_request, make_call, standard_headers
from bifrost_asgi.types import Headers, Scope

__all__ = ["OpenAISurface"]

# What each operation requires besides `model`, with Bifrost's exact messages (spec §5.2).
_REQUIRED: dict[Op, tuple[str, str, tuple[type, ...]]] = {
    Op.RESPONSES: ("input", "input is required for responses", (str, list)),
    Op.CHAT: ("messages", "messages is required for chat completion", (list,)),
    Op.TEXT: ("prompt", "prompt is required for text completion", (str, list)),
}


class OpenAISurface:
    """``POST {prefix}/v1/responses``, ``/chat/completions`` or ``/completions``.

    ``integration`` is the prefix's name (None on the unified root); under a prefix a bare model
    prefers openai, and under ``/openai`` it always means openai.
    """

    def __init__(self, op: Op, integration: str | None) -> None:
        self.op = op
        self.integration = integration
        self.request_type = op.request_type(False)

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = require_model(body)
        _check_required(self.op, body)
        stream = require_stream_flag(body)
        return json_request(gw, self.op, body, raw, stream, model, self.op.request_type(stream), started)

    def primary(self, gw: Gateway, req: Request) -> Target:
        # On the unified routes a key's provider weights choose for a bare model; under an integration
        # prefix the prefix decides (a bare model under /openai is openai's).
        chosen = key_choice(gw, req) if self.integration is None else None
        if chosen is not None:
            return chosen, req.model
        return gw.resolver.resolve_under(req.model, self.integration)

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        return make_call(gw, req, provider, model)

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        reply = served.reply
        assert reply is not None
        body = reply.body
        usage = body.get("usage")
        if isinstance(usage, dict):
            usage["cost"] = served.cost if served.cost is not None else dict(ZERO_COST)
        body["extra_fields"] = self.answer_fields(gw, req, served)
        return orjson.dumps(body)

    def answer_fields(self, gw: Gateway, req: Request, served: Served) -> dict[str, Any]:
        """The ``extra_fields`` of a non-streamed answer."""
        reply = served.reply
        assert reply is not None
        ef = extra_fields(req, served)
        ef["latency"] = ms_since(req.started)
        ef["chunk_index"] = 0
        _add_raw(gw, req, served, reply, ef)
        return ef

    def encoder(self, gw: Gateway, req: Request, served: Served) -> StreamEncoder:
        return OpenAIStreamEncoder(req, served)

    def headers(self, req: Request, served: Served) -> Headers:
        return standard_headers(served)

    def error_body(self, err: BifrostError) -> bytes:
        return err.to_json()


def _asked_for_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _check_required(op: Op, body: dict[str, Any]) -> None:
    name, message, types = _REQUIRED[op]
    value = body.get(name)
    if value is None or value == "" or value == []:
        raise invalid_request(message, param=name)
    if not isinstance(value, types):
        kinds = " or ".join("a string" if t is str else "an array" for t in types)
        raise invalid_request(f"{name} must be {kinds}", param=name)


def _add_raw(gw: Gateway, req: Request, served: Served, reply: Reply, ef: dict[str, Any]) -> None:
    pc = gw.config.providers[served.provider]
    # Bodies only: credentials travel in headers, which are never included.
    if (pc.send_back_raw_request or req.raw_request) and reply.raw_request is not None:
        ef["raw_request"] = _loads_or_text(gw, reply.raw_request)
    if (pc.send_back_raw_response or req.raw_response) and reply.raw_response is not None:
        ef["raw_response"] = _loads_or_text(gw, reply.raw_response)


def _loads_or_text(gw: Gateway, value: Any) -> Any:
    """A raw body for extra_fields, with any credential an upstream echoed scrubbed out."""
    if isinstance(value, bytes | bytearray):
        value = gw.redactor.scrub_bytes(bytes(value))
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value.decode("utf-8", "replace")
    return orjson.loads(gw.redactor.scrub(orjson.dumps(value).decode()))


class OpenAIStreamEncoder:
    """Frames chunks as SSE with ``extra_fields`` (and, on the usage chunk, ``usage.cost``) spliced in."""

    __slots__ = ("served", "static", "index", "last", "event_frames", "hide_usage")

    def __init__(self, req: Request, served: Served) -> None:
        self.served = served
        # Everything in extra_fields but the per-chunk values, serialised once per stream.
        self.static = orjson.dumps(extra_fields(req, served))[:-1]
        self.index = 0
        self.last = req.started
        self.event_frames = req.op is Op.RESPONSES
        # The gateway asks every chat/text upstream for usage (to price and settle it); a client that did
        # not ask must not get OpenAI's choice-less usage chunk (code reading choices[0] crashes on it).
        self.hide_usage = not self.event_frames and not _asked_for_usage(req.body)

    def _extra(self) -> bytes:
        now = time.perf_counter()
        latency = int((now - self.last) * 1000)
        self.last = now
        ef = self.static + b',"latency":%d,"chunk_index":%d}' % (latency, self.index)
        self.index += 1
        return ef

    def encode(self, chunk: Chunk) -> bytes:
        if chunk.usage is not None:
            if self.hide_usage and chunk.obj is not None and chunk.obj.get("choices") == []:
                return b""  # priced and settled by the pump; not asked for
            cost = self.served.cost
            chunk.usage["cost"] = cost if cost is not None else dict(ZERO_COST)
        event = chunk.event if self.event_frames else None
        data = chunk.data
        if data is not None and len(data) > 2 and data[-1:] == b"}":
            return frame(event, data[:-1] + b',"extra_fields":' + self._extra() + b"}")
        obj = chunk.obj if chunk.obj is not None else object_or_none(data or b"{}")
        if obj is None:  # not a JSON object: passed on as the upstream sent it
            return frame(event, data or b"")
        obj["extra_fields"] = orjson.Fragment(self._extra())
        return frame(event, orjson.dumps(obj))

    def error(self, err: BifrostError) -> bytes:
        """Chat and text: a BifrostError data line (and no ``[DONE]``). Responses: OpenAI's typed
        ``error`` event (type, sequence_number, code, message, param), so the SDKs' strict event types
        accept it, with the BifrostError's fields beside them (the SDKs raise on its ``error`` object)."""
        if not self.event_frames:
            return frame(None, err.to_json())
        event = err.to_dict()
        event.update(
            type="error",
            sequence_number=self.index,
            code=err.code or err.error_type,
            message=err.message,
            param=err.param if isinstance(err.param, str) else None,
        )
        return frame("error", orjson.dumps(event))

    def end(self) -> bytes:
        return b"" if self.event_frames else DONE
