"""``GET {p}/v1/models``: every configured provider's models, ids as ``provider/model`` (spec §2.5)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson

from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.io import JSON_HEADERS, send_bytes
from bifrost_asgi.providers.openai import OpenAIProvider
from bifrost_asgi.types import Scope

__all__ = ["handle_list_models", "listed_models"]

log = logging.getLogger("bifrost_asgi")

_LIST_TIMEOUT = 10.0


async def _provider_models(gw: Gateway, name: str) -> list[dict[str, Any]]:
    provider = gw.providers[name]
    ids = provider.models()
    if isinstance(provider, OpenAIProvider):
        keys = gw.config.providers[name].keys
        try:
            listed = await provider.list_models(keys[0] if keys else None, _LIST_TIMEOUT)
        except Exception as exc:  # listing is best effort: fall back to the configured models
            log.warning("listing models of %s failed (%s); using the configured list", name, exc)
        else:
            ids = sorted({str(m["id"]) for m in listed if "id" in m} | set(ids))
    return [_entry(gw, name, model) for model in ids]


def _entry(gw: Gateway, provider: str, model: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"{provider}/{model}",
        "object": "model",
        "created": 0,
        "owned_by": provider,
    }
    prices = gw.pricing.lookup(provider, model)
    if prices is not None:
        entry["pricing"] = {
            "prompt": f"{float(prices.get('input_cost_per_token') or 0):.10f}",
            "completion": f"{float(prices.get('output_cost_per_token') or 0):.10f}",
            "input_cache_read": f"{float(prices.get('cache_read_input_token_cost') or 0):.10f}",
            "input_cache_write": f"{float(prices.get('cache_creation_input_token_cost') or 0):.10f}",
        }
    return entry


async def listed_models(gw: Gateway, scope: Scope) -> list[dict[str, Any]]:
    """The models this request may see, in Bifrost's entry shape (the dialects' lists reshape them)."""
    if not gw.started:
        await gw.start()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    wanted = query.get("provider", [None])[0]
    names = [n for n in gw.providers if wanted is None or n == wanted]
    results = await asyncio.gather(*(_provider_models(gw, n) for n in names))
    return [m for models in results for m in models]


async def handle_list_models(gw: Gateway, scope: Scope, receive: Any, send: Any) -> None:
    body = {"object": "list", "data": await listed_models(gw, scope)}
    await send_bytes(send, 200, orjson.dumps(body), JSON_HEADERS)
