"""``GET {p}/v1/models``: every configured provider's models, ids as ``provider/model`` (spec §2.5).

Called with a virtual key (or by a host user, charged to their default key), the list holds only what
the key may call, as Bifrost filters it: the providers its ``provider_configs`` name (all, with
``allow_all_providers``) and, within each, the models its ``allowed_models`` allow and its blacklist
does not. The key is authenticated by the same rules as an inference request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.governance.models import VirtualKey
from bifrost_asgi.pipeline.accounting import authorize_scope
from bifrost_asgi.pipeline.io import JSON_HEADERS, send_bytes
from bifrost_asgi.providers.openai import OpenAIProvider
from bifrost_asgi.types import Scope

__all__ = ["handle_list_models", "listed_models", "query_params"]

log = logging.getLogger("bifrost_asgi")

_LIST_TIMEOUT = 10.0


def _may_call(key: VirtualKey | None, provider: str, model: str) -> bool:
    if key is None:
        return True
    rule = key.rules.get(provider)
    if rule is None:
        return key.allow_all_providers
    return rule.allows(model)


async def _provider_models(gw: Gateway, name: str, key: VirtualKey | None) -> list[dict[str, Any]]:
    if key is not None and name not in key.rules and not key.allow_all_providers:
        return []  # never ask a provider the key may not call
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
    return [_entry(gw, name, model) for model in ids if _may_call(key, name, model)]


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


def query_params(scope: Scope) -> dict[str, str]:
    """The request's query string, first value of each parameter."""
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {name: values[0] for name, values in parsed.items()}


async def listed_models(gw: Gateway, scope: Scope) -> list[dict[str, Any]]:
    """The models this request may see (a BifrostError when it may not list them), in Bifrost's entry
    shape; the dialects' lists reshape them."""
    if not gw.started:
        await gw.start()
    key = await authorize_scope(gw, scope, "list_models")
    wanted = query_params(scope).get("provider")
    names = [n for n in gw.providers if wanted is None or n == wanted]
    results = await asyncio.gather(*(_provider_models(gw, n, key) for n in names))
    return [m for models in results for m in models]


async def handle_list_models(gw: Gateway, scope: Scope, receive: Any, send: Any) -> None:
    try:
        body = {"object": "list", "data": await listed_models(gw, scope)}
    except BifrostError as exc:
        await send_bytes(send, exc.status_code, exc.to_json(), JSON_HEADERS)
        return
    await send_bytes(send, 200, orjson.dumps(body), JSON_HEADERS)
