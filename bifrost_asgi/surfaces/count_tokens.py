"""``POST {p}/v1/responses/input_tokens``: the seed ``CountTokensResponse``.

OpenAI models are counted locally with tiktoken by default (exact, offline); a deployment may forward
them to the upstream's own endpoint instead (``count_tokens.openai_mode: "provider"``). Every other
model is estimated with ``o200k_base``, and ``extra_fields.is_estimate`` says so.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from bifrost_asgi.errors import BifrostError, bad_response, internal_error, invalid_request
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.io import JSON_HEADERS, ClientDisconnected, read_body, send_bytes
from bifrost_asgi.pipeline.journey import (
    Request,
    Served,
    attempt_target,
    extra_fields,
    parse_body,
    read_headers,
    response_headers,
    send_error,
)
from bifrost_asgi.providers.base import Op
from bifrost_asgi.types import Scope

if TYPE_CHECKING:
    from bifrost_asgi.tokens.count import TokenCount

__all__ = ["handle_count_tokens"]

log = logging.getLogger("bifrost_asgi")

_REQUEST_TYPE = "count_tokens"
# Providers whose models tiktoken counts exactly (they serve OpenAI's models with OpenAI's tokenizers).
_EXACT_PROVIDERS = frozenset({"openai", "azure"})


def _parse(gw: Gateway, raw: bytes, scope: Scope, integration: str | None, started: float) -> Request:
    body = parse_body(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model is required", param="model")
    # The seed-003 form sends `messages` instead of `input`; either one is enough. An empty input is
    # valid here (it counts as zero tokens), unlike on /v1/responses.
    if body.get("input") is None and body.get("messages") is None:
        raise invalid_request("input is required for responses", param="input")
    flag = body.get("return_tokens", gw.config.count_tokens.return_tokens)
    if not isinstance(flag, bool):
        raise invalid_request("return_tokens must be a boolean", param="return_tokens")
    primary = gw.resolver.resolve(model, "openai" if integration else None, force=integration == "openai")
    targets = [primary, *gw.resolver.fallbacks(body.get("fallbacks"))]
    req = Request(Op.COUNT_TOKENS, body, raw, False, model, targets, _REQUEST_TYPE, "", started)
    read_headers(req, scope)
    return req


# Provider families with their own count API, always used for their models (exact by definition).
_NATIVE_COUNTERS = frozenset({"anthropic", "gemini"})
# Upstream failures after which a deployment may choose a flagged local estimate instead.
_UNREACHABLE = frozenset({"provider_connection_failed", "request_timed_out"})


def _uses_upstream(gw: Gateway, provider: str) -> bool:
    kind = gw.config.provider_kind(provider)
    return kind in _NATIVE_COUNTERS or (kind == "openai" and gw.config.count_tokens.openai_mode == "provider")


async def _count(gw: Gateway, req: Request) -> tuple[dict[str, Any], Served]:
    """Count for the primary target; fallbacks apply when an upstream count fails (spec §2.3)."""
    primary_error: BifrostError | None = None
    for index, (provider, model) in enumerate(req.targets):
        if provider not in gw.providers:
            continue  # an unconfigured fallback is skipped; the primary was checked by the resolver
        try:
            if _uses_upstream(gw, provider):
                return await _count_upstream(gw, req, index, provider, model)
            return await _count_local(gw, req, index, provider, model)
        except BifrostError as err:
            if index == 0:
                primary_error = err
            if not err.allow_fallbacks:
                raise
    assert primary_error is not None
    raise primary_error


async def _count_upstream(
    gw: Gateway, req: Request, index: int, provider: str, model: str
) -> tuple[dict[str, Any], Served]:
    try:
        served = await attempt_target(gw, req, index, provider, model)
    except BifrostError as err:
        if err.error_type in _UNREACHABLE and gw.config.count_tokens.estimate_on_upstream_failure:
            return await _count_local(gw, req, index, provider, model)
        raise
    assert served.reply is not None
    return _from_upstream(served.reply.body, model), served


async def _count_local(
    gw: Gateway, req: Request, index: int, provider: str, model: str
) -> tuple[dict[str, Any], Served]:
    # Imported on first use: tiktoken is heavy, and most processes never count.
    from bifrost_asgi.tokens.count import count_request_tokens_async

    return_tokens = bool(req.body.get("return_tokens", gw.config.count_tokens.return_tokens))
    counted = await count_request_tokens_async(req.body, model, return_tokens=return_tokens)
    # Exact only with the model's own tokenizer, served by a provider that uses it, with nothing estimated.
    exact = counted.exact and provider in _EXACT_PROVIDERS
    return _from_local(counted, model, exact=exact), Served(provider, model, index, None)


def _from_local(c: TokenCount, model: str, *, exact: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "response.input_tokens",
        "model": model,
        "input_tokens": c.input_tokens,
        "input_tokens_details": {
            "text_tokens": c.details_text_tokens,
            "image_tokens": c.image_tokens,
            "audio_tokens": c.audio_tokens,
            "cached_read_tokens": 0,
            "cached_write_tokens": 0,
        },
        "total_tokens": c.input_tokens,
    }
    # Absent rather than null: the seed schema types `tokens` as an array, and null would not validate.
    if c.tokens is not None:
        body["tokens"] = c.tokens
    if c.token_strings is not None:
        body["token_strings"] = c.token_strings
    local: dict[str, Any] = {"is_estimate": not exact, "tokenizer": c.encoding}
    if c.estimated:
        local["estimated_parts"] = list(c.estimated)
    body["_local"] = local
    return body


def _from_upstream(upstream: dict[str, Any], model: str) -> dict[str, Any]:
    tokens = upstream.get("input_tokens")
    if not isinstance(tokens, int):
        raise bad_response("upstream count_tokens answer has no input_tokens")
    return {
        "object": "response.input_tokens",
        "model": model,
        "input_tokens": tokens,
        "input_tokens_details": upstream.get("input_tokens_details") or {},
        "total_tokens": tokens,
        "_local": {"is_estimate": False},
    }


async def handle_count_tokens(
    gw: Gateway, integration: str | None, scope: Scope, receive: Any, send: Any
) -> None:
    started = time.perf_counter()
    if not gw.started:
        await gw.start()
    req: Request | None = None
    try:
        raw = await read_body(scope, receive, gw.max_body)
        req = _parse(gw, raw, scope, integration, started)
        body, served = await _count(gw, req)
    except ClientDisconnected:
        return
    except BifrostError as err:
        await send_error(send, err, req, _REQUEST_TYPE)
        return
    except Exception:
        log.exception("unexpected error counting tokens")
        await send_error(send, internal_error(), req, _REQUEST_TYPE)
        return
    local = body.pop("_local")
    ef = extra_fields(req, served)
    ef["latency"] = int((time.perf_counter() - started) * 1000)
    ef["chunk_index"] = 0
    ef.update(local)
    body["extra_fields"] = ef
    await send_bytes(send, 200, orjson.dumps(body), response_headers(req, served, JSON_HEADERS))
