"""The journey's governance and accounting steps: who is calling, admission per attempt, pricing the
reported usage once, and — once the answer (or stream) has ended — settlement of the reservation and
one usage log record.

Every function here is a no-op (or nearly) when governance is not configured, so the ungoverned hot
path pays nothing for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bifrost_asgi.errors import BifrostError, governance_error
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.governance.engine import Governance, Ticket
from bifrost_asgi.governance.models import VirtualKey
from bifrost_asgi.pipeline.request import Request, Served, read_headers
from bifrost_asgi.pricing import (
    Usage,
    usage_from_chat,
    usage_from_images,
    usage_from_responses,
    usage_from_speech,
    usage_from_transcription,
)
from bifrost_asgi.providers.base import Op
from bifrost_asgi.stores.logs import LogRecord
from bifrost_asgi.translate import messages_usage_to_responses
from bifrost_asgi.translate.gemini import gemini_usage_to_responses
from bifrost_asgi.types import Scope

__all__ = [
    "ZERO_COST",
    "admit",
    "authorize",
    "authorize_scope",
    "finish",
    "key_choice",
    "price",
    "price_reply",
    "release",
]

log = logging.getLogger("bifrost_asgi")

# What ``usage.cost`` says when the price is unknown (spec §7): 0, never a guess.
ZERO_COST = {
    "input_tokens_cost": 0.0,
    "output_tokens_cost": 0.0,
    "reasoning_tokens_cost": 0.0,
    "request_cost": 0.0,
    "total_cost": 0.0,
}


# -- who is calling -----------------------------------------------------------------------------------


async def authorize(gw: Gateway, req: Request) -> None:
    """Resolve who pays (spec §6.1 plus the host's user) into ``req.vk``."""
    gov = gw.governance
    if gov is None:
        if req.vk_value is not None:
            # No key can exist without governance, and an explicitly supplied key is never ignored.
            raise governance_error(403, "virtual_key_not_found", "Virtual key not found")
        return
    req.vk = await _resolve_key(gw, gov, req)


async def authorize_scope(gw: Gateway, scope: Scope, request_type: str) -> VirtualKey | None:
    """Who pays for a request that is not on the journey (``GET /v1/models``): the same headers, and the
    same `authorize`, as an inference request."""
    req = Request(Op.CHAT, {}, b"", False, "", request_type, time.perf_counter())
    read_headers(req, scope)
    await authorize(gw, req)
    return req.vk


def key_choice(gw: Gateway, req: Request) -> str | None:
    """For a bare model, the key's weighted choice among its provider configs (unified routes)."""
    key = req.vk
    gov = gw.governance
    if gov is None or key is None or not key.provider_configs or gw.resolver.split(req.model)[0] is not None:
        return None
    # Only among providers that can serve the model, when the catalog knows who does.
    serving = gw.resolver.candidates(req.model) or gw.providers
    return gov.choose_provider(key, req.model, frozenset(serving))


async def _resolve_key(gw: Gateway, gov: Governance, req: Request) -> VirtualKey | None:
    principal = req.principal
    if req.vk_value is not None:
        key = await gov.authenticate(req.vk_value)
        assert key is not None
        if principal is not None and principal.via == "session" and key.owner != principal.user_id:
            # A signed-in user may only spend their own keys.
            raise governance_error(403, "virtual_key_blocked", "This virtual key belongs to another user")
        if key.owner is not None and not await owner_active(gw, key.owner):
            raise governance_error(403, "virtual_key_blocked", "The virtual key's owner is inactive")
        return key
    if req.bearer_token is not None and gov.tokens is not None:
        key = await gov.authenticate_token(req.bearer_token)
        if key is not None:
            return key
    if principal is not None:
        # The adapter just authenticated this user with the host's own machinery; that is the authority
        # on whether the account may act (an OwnerDirectory answers for keys used without a session).
        return gov.check_usable(await gov.default_key_for(principal.user_id))
    return await gov.authenticate(None)


async def owner_active(gw: Gateway, owner: str) -> bool:
    """Ask the host whether a key's owner may still use it; cached as briefly as key lookups."""
    if gw.owners is None:
        return True
    now = time.monotonic()
    cached = gw.owner_cache.get(owner)
    if cached is not None and cached[0] > now:
        return cached[1]
    active = await gw.owners.is_active(owner)
    if len(gw.owner_cache) >= 10_000:
        gw.owner_cache.clear()
    ttl = gw.governance.cache_ttl if gw.governance is not None else 2.0
    gw.owner_cache[owner] = (now + ttl, active)
    return active


# -- admission, per attempt -------------------------------------------------------------------------


async def admit(gw: Gateway, req: Request, provider: str, model: str) -> Ticket | None:
    """The key's access rules for this target, and (for metered requests) a reservation on its limits.
    A request without a key still counts against the provider's own limits, as in Bifrost."""
    gov = gw.governance
    if gov is None:
        return None
    if req.vk is None:
        if not req.metered:
            return None
        return await gov.admit(None, provider, model, req.body, len(req.raw), estimate=req.estimate)
    if not req.metered:
        gov.check_access(req.vk, provider, model)
        return None
    return await gov.admit(req.vk, provider, model, req.body, len(req.raw), estimate=req.estimate)


async def release(gw: Gateway, ticket: Ticket | None) -> None:
    if ticket is not None and gw.governance is not None:
        await gw.governance.settle(ticket, ok=False, tokens=0, cost=0.0)


# -- pricing ------------------------------------------------------------------------------------------


def price(gw: Gateway, served: Served, usage: Mapping[str, Any], tier: object) -> dict[str, float]:
    """Parse the usage an answer reports (in the served op's own shape) once, and price it.

    Returns the ``usage.cost`` object to show (zeros when the price is unknown); ``served.cost`` stays
    None then, so no header claims a known price.
    """
    if served.cache_hit is not None:
        return dict(ZERO_COST)  # a cached answer costs nothing, whatever usage it reports
    parsed = _parse_usage(served.op, usage)
    served.usage = parsed
    if parsed is None:
        return dict(ZERO_COST)
    cost = gw.pricing.cost(
        served.provider, served.model, parsed, service_tier=tier if isinstance(tier, str) else None
    )
    served.cost = cost
    return cost if cost is not None else dict(ZERO_COST)


def price_reply(gw: Gateway, req: Request, served: Served) -> None:
    """Price a non-streamed answer: the usage it reports, or else what the request implies (its
    ``estimate``: the characters spoken, the images made)."""
    assert served.reply is not None
    body = served.reply.body
    usage = body.get(served.op.usage_field)
    if isinstance(usage, dict):
        price(gw, served, usage, body.get("service_tier") or usage.get("service_tier"))
        served.usage_estimated = bool((served.reply.extra_fields or {}).get("usage_is_estimate"))
    elif req.estimate is not None:
        served.usage, served.usage_estimated = req.estimate, True
        served.cost = gw.pricing.cost(served.provider, served.model, req.estimate)


def _usage_from_messages(usage: Mapping[str, Any]) -> Usage | None:
    return usage_from_responses(messages_usage_to_responses(usage))


def _usage_from_gemini(usage: Mapping[str, Any]) -> Usage | None:
    return usage_from_responses(gemini_usage_to_responses(usage) or {})


# How each operation's answer reports its usage; chat's shape otherwise (embeddings too).
_USAGE_PARSERS: dict[Op, Callable[[Mapping[str, Any]], Usage | None]] = {
    Op.RESPONSES: usage_from_responses,
    Op.MESSAGES: _usage_from_messages,
    Op.GENERATE_CONTENT: _usage_from_gemini,
    Op.IMAGE_GENERATION: usage_from_images,
    Op.IMAGE_EDIT: usage_from_images,
    Op.SPEECH: usage_from_speech,
    Op.TRANSCRIPTION: usage_from_transcription,
    Op.TRANSLATION: usage_from_transcription,
}


def _parse_usage(op: Op, usage: Mapping[str, Any]) -> Usage | None:
    return _USAGE_PARSERS.get(op, usage_from_chat)(usage)


# -- settlement and the log record ------------------------------------------------------------------


def _usage(req: Request, served: Served) -> tuple[Usage | None, bool]:
    """Reported usage; else the request's own estimate (media); else — for a stream that ended before
    reporting it — an estimate from what was delivered: request bytes / 4 for input and one token per
    delivered chunk (providers stream about a token per chunk)."""
    if served.usage is not None or served.cache_hit is not None:
        return served.usage, served.usage_estimated
    if req.estimate is not None:
        return req.estimate, True
    if served.chunks is None:
        return None, False
    return Usage(input_tokens=len(req.raw) // 4, output_tokens=served.delivered), True


async def finish(gw: Gateway, req: Request | None, served: Served | None, error: BifrostError | None) -> None:
    """Settle the reservation and write the log record; never raises (the answer is already sent)."""
    if gw.governance is None and gw.logs is None:
        return  # the ungoverned hot path pays nothing here
    try:
        usage, estimated = _usage(req, served) if req is not None and served is not None else (None, False)
        cost = _cost(gw, served, usage, estimated)
        if served is not None and served.ticket is not None and gw.governance is not None:
            tokens = usage.total if usage is not None else 0
            await gw.governance.settle(served.ticket, ok=error is None, tokens=tokens, cost=cost or 0.0)
        if gw.logs is not None and req is not None:
            gw.logs.submit(_record(gw, req, served, error, usage, cost, estimated))
    except Exception:  # accounting must not turn a delivered answer into a failure
        log.exception("settling usage failed (request %s)", req.request_id if req else "?")


def _cost(gw: Gateway, served: Served | None, usage: Usage | None, estimated: bool) -> float | None:
    if served is None:
        return None
    if served.cost is not None:
        return served.cost["total_cost"]
    if estimated and usage is not None:
        cost = gw.pricing.cost(served.provider, served.model, usage)
        return cost["total_cost"] if cost else None
    return None


def _record(
    gw: Gateway, req: Request, served: Served | None, error: BifrostError | None, usage: Usage | None,
    cost: float | None, estimated: bool,
) -> LogRecord:  # fmt: skip
    key = req.vk
    record = LogRecord(
        id=req.request_id,
        timestamp=req.wall_start,
        object=req.request_type,
        requested_model=req.model,
        owner=key.owner if key else None,
        virtual_key_id=key.id if key else None,
        virtual_key_name=key.name if key else None,
        team_id=key.team_id if key else None,
        customer_id=key.customer_id if key else None,
        stream=req.stream,
        latency=int((time.perf_counter() - req.started) * 1000),
        cost=cost,
        usage_estimated=estimated,
    )
    if served is not None:
        record.provider, record.model = served.provider, served.model
        record.selected_key_name = served.key_name
        record.fallback_index = served.index
        record.cache_hit = served.cache_hit
    elif error is not None:
        record.provider = error.extra_fields.get("provider")
        record.model = error.extra_fields.get("model_requested")
    if error is not None:
        record.status, record.status_code = "error", error.status_code
        record.error_type = error.top_type or error.error_type
        record.error_message = error.message[:500]
    if usage is not None:
        _fill_usage(record, usage)
    if gw.content is not None:
        record.content = gw.content.capture(req, served)  # only where content logging is on
    return record


def _fill_usage(record: LogRecord, usage: Usage) -> None:
    record.input_tokens = usage.input_tokens
    record.output_tokens = usage.output_tokens
    record.cached_read_tokens = usage.cached_read_tokens
    record.cached_write_tokens = usage.cached_write_tokens
    record.reasoning_tokens = usage.reasoning_tokens
    record.total_tokens = usage.total
