"""``POST {p}/v1/responses/input_tokens``: the seed ``CountTokensResponse``.

A count is a request like any other: authorized, checked against the key's provider and model rules,
fallbacks applied, logged (it is not charged to limits or budgets). What counts is the target's counter
(`tokens/counter.py`): OpenAI models locally with tiktoken by default (exact, offline), or the
upstream's own endpoint (``count_tokens.openai_mode: "provider"``, and always for anthropic and gemini);
every other model is estimated with ``o200k_base``, and ``extra_fields.is_estimate`` says so.
"""

from __future__ import annotations

from typing import Any

import orjson

from bifrost_asgi.errors import BifrostError, invalid_request
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.request import Request, Served, parse_body, require_model
from bifrost_asgi.pipeline.respond import extra_fields, ms_since
from bifrost_asgi.pipeline.streaming import StreamEncoder
from bifrost_asgi.providers.base import Call, Op
from bifrost_asgi.routing import Target
from bifrost_asgi.surfaces.base import json_request, make_call, standard_headers
from bifrost_asgi.types import Headers, Scope

__all__ = ["CountTokensSurface"]


class CountTokensSurface:
    request_type = Op.COUNT_TOKENS.value

    def __init__(self, integration: str | None) -> None:
        self.integration = integration

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = require_model(body)
        # The seed-003 form sends `messages` instead of `input`; either one is enough. An empty input is
        # valid here (it counts as zero tokens), unlike on /v1/responses.
        if body.get("input") is None and body.get("messages") is None:
            raise invalid_request("input is required for responses", param="input")
        flag = body.get("return_tokens", gw.config.count_tokens.return_tokens)
        if not isinstance(flag, bool):
            raise invalid_request("return_tokens must be a boolean", param="return_tokens")
        return json_request(
            gw, Op.COUNT_TOKENS, body, raw, False, model, self.request_type, started, metered=False
        )

    def primary(self, gw: Gateway, req: Request) -> Target:
        return gw.resolver.resolve_under(req.model, self.integration)

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        return make_call(gw, req, provider, model)

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        assert served.reply is not None
        counted = served.reply.body
        tokens = counted["input_tokens"]
        body: dict[str, Any] = {
            "object": "response.input_tokens",
            "model": served.model,
            "input_tokens": tokens,
            "input_tokens_details": counted.get("input_tokens_details") or {},
            "total_tokens": tokens,
        }
        for name in ("tokens", "token_strings"):
            if name in counted:
                body[name] = counted[name]
        ef = extra_fields(req, served)
        ef["latency"] = ms_since(req.started)
        ef["chunk_index"] = 0
        ef.update(served.reply.extra_fields or {})
        body["extra_fields"] = ef
        return orjson.dumps(body)

    def encoder(self, gw: Gateway, req: Request, served: Served) -> StreamEncoder:
        raise AssertionError("token counts are never streamed")  # parse sets stream=False

    def headers(self, req: Request, served: Served) -> Headers:
        return standard_headers(served)

    def error_body(self, err: BifrostError) -> bytes:
        return err.to_json()
