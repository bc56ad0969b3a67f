"""The one attempt loop: fallbacks across targets, and per target retries with key rotation (spec §3).

    for each target (primary, then fallbacks):
        the surface builds the target's call  -> admission (key access rules, limits)
        -> provider (or token counter) with jittered retries, 429 rotating keys, 401/403 retiring them
    first success wins; when all fail, the primary's error is the answer

Every surface — Responses, chat, text, token counting, Anthropic Messages — runs through here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from bifrost_asgi.config import KeyConfig, NetworkConfig
from bifrost_asgi.errors import (
    MALFORMED,
    BifrostError,
    credentials_exhausted,
    invalid_request,
    not_configured,
    unreadable,
)
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.observability.telemetry import current_probe
from bifrost_asgi.pipeline.accounting import admit, release
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.providers.base import Call, Provider

__all__ = ["CallBuilder", "error_fields", "run_attempts"]

T = TypeVar("T")
log = logging.getLogger("bifrost_asgi")


class CallBuilder(Protocol):
    """What a surface supplies per target: the call that provider takes (raises BifrostError when the
    request cannot be put into that provider's terms)."""

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call: ...


async def run_attempts(
    gw: Gateway, req: Request, builder: CallBuilder, accept: Callable[[Served], None] | None = None
) -> Served:
    """Try the primary, then each fallback in order; return the first success.

    A fallback whose provider has no config, or that cannot take the request, is skipped; when every
    target fails the primary's error is returned, unless a later error forbids falling back.
    ``accept`` turns a JSON reply into the client's answer inside the loop, so a reply that cannot be
    read (a malformed upstream answer) counts as that target's failure and the fallbacks still apply.
    """
    primary_error: BifrostError | None = None
    for index, (provider, model) in enumerate(req.targets):
        if provider not in gw.providers:
            if index == 0:
                raise not_configured(provider)
            continue
        try:
            call = builder.call_for(gw, req, provider, model)
        except BifrostError:
            if index == 0:
                raise
            continue  # this fallback cannot take the request; the primary's error stays the answer
        try:
            served = await _attempt(gw, req, index, provider, call)
            if accept is not None and served.reply is not None:
                await _accepted(gw, served, accept)
            return served
        except BifrostError as err:
            gw.redactor.scrub_error(err)  # an upstream may echo the key it was sent
            err.extra_fields.update(error_fields(req, provider, model))
            if index == 0:
                primary_error = err
            if not err.allow_fallbacks or err.error_type == "request_cancelled":
                raise
    assert primary_error is not None  # the loop ran at least once: targets always holds the primary
    raise primary_error


async def _attempt(gw: Gateway, req: Request, index: int, name: str, call: Call) -> Served:
    executor = gw.telemetry.watch(index, gw.executor(name, call.op))  # spans and upstream time per call
    pc = gw.config.providers[name]
    keys = _keys(executor, pc.keys, name, call.model)
    ticket = await admit(gw, req, name, call.model)
    net = pc.network_config
    probe = current_probe()  # 9 metrics: how long this target took, and why it failed
    t0 = time.perf_counter()
    try:
        if call.stream:
            chunks, key = await _with_retries(name, net, keys, lambda k: executor.open_stream(call, k))
            served = Served(name, call.model, index, _key_name(pc.keys, key), call.op, chunks=chunks)
        else:
            reply, key = await _with_retries(name, net, keys, lambda k: executor.send(call, k))
            served = Served(name, call.model, index, _key_name(pc.keys, key), call.op, reply=reply)
    except BaseException as exc:
        if probe is not None:
            probe.attempted(index, name, call.model, time.perf_counter() - t0, exc)
        await release(gw, ticket)
        raise
    spent = time.perf_counter() - t0
    if probe is not None:
        probe.attempted(index, name, call.model, spent, None)
    served.ticket = ticket
    served.upstream_ms = int(spent * 1000)
    served.model_deployment = call.model_deployment
    served.answer_headers = call.answer_headers
    return served


async def _accepted(gw: Gateway, served: Served, accept: Callable[[Served], None]) -> None:
    try:
        try:
            accept(served)
        except MALFORMED as exc:
            log.warning("provider %s: could not read its answer", served.provider, exc_info=True)
            raise unreadable(served.provider, exc) from None
    except BifrostError as err:
        probe = current_probe()
        if probe is not None:  # 9 the call went well, its answer did not: a failed attempt all the same
            probe.rejected(served.index, served.provider, served.model, err)
        await release(gw, served.ticket)
        raise


def _keys(executor: Provider, keys: tuple[KeyConfig, ...], provider: str, model: str) -> list[KeyConfig]:
    if not executor.uses_keys:
        return []  # the mock and the local counter: keys only list models
    serving = [k for k in keys if k.serves(model)]
    if keys and not serving:
        raise invalid_request(f"no key of provider {provider} is configured for model {model}")
    return serving


async def _with_retries(
    provider: str,
    net: NetworkConfig,
    keys: list[KeyConfig],
    attempt: Callable[[KeyConfig | None], Awaitable[T]],
) -> tuple[T, KeyConfig | None]:
    """Retry with jittered exponential backoff; rotate keys on 429, retire them on 401/403.

    A retired key is a configuration fault rather than a transient one, so rotating away from it does
    not spend the ``max_retries`` budget; when every key is retired the answer is 502
    ``upstream_credentials_exhausted`` (spec §3).
    """
    dead: set[int] = set()
    used: set[int] = set()
    retries = 0
    key = _choose(keys, dead, used)
    while True:
        try:
            return await _guarded(attempt, key, provider), key
        except BifrostError as err:
            if key is not None and err.dead_key:
                dead.add(id(key))
                if len(dead) == len(keys):
                    raise credentials_exhausted(provider, len(keys), err.message) from None
                key = _choose(keys, dead, used)
                continue
            if not err.retryable or retries >= net.max_retries:
                raise
            retries += 1
            if key is not None and err.rotate_key:
                used.add(id(key))
                if len(used | dead) >= len(keys):
                    used.clear()  # every key was tried once: start a new cycle
                key = _choose(keys, dead, used)
            await asyncio.sleep(_delay(net, retries, err.retry_after))


async def _guarded(
    attempt: Callable[[KeyConfig | None], Awaitable[T]], key: KeyConfig | None, provider: str
) -> T:
    """The attempt, with a translator choking on a malformed upstream answer mapped to a retryable 502
    (fallbacks apply) instead of a 500; the traceback is logged, as it may be a bug of ours."""
    try:
        return await attempt(key)
    except MALFORMED as exc:
        log.warning("provider %s: could not read its answer", provider, exc_info=True)
        raise unreadable(provider, exc) from None


def _choose(keys: list[KeyConfig], dead: set[int], used: set[int]) -> KeyConfig | None:
    if not keys:
        return None
    if len(keys) == 1:
        return keys[0]
    pool = [k for k in keys if id(k) not in dead and id(k) not in used] or [
        k for k in keys if id(k) not in dead
    ]
    return random.choices(pool, weights=[k.weight for k in pool])[0]


def _delay(net: NetworkConfig, attempt: int, retry_after: float | None) -> float:
    """Our backoff, or longer when the upstream asked for it (Retry-After), never past the configured
    maximum backoff: a Retry-After of an hour must not hold a request for an hour."""
    delay = _backoff(net, attempt)
    if retry_after is not None:
        delay = min(max(delay, retry_after), net.retry_backoff_max / 1000.0)
    return delay


def _backoff(net: NetworkConfig, attempt: int) -> float:
    """``min(initial * 2^attempt, max) * U(0.8, 1.2)``, capped at max (Bifrost's calculateBackoff)."""
    base = min(net.retry_backoff_initial * (2 ** (attempt - 1)), net.retry_backoff_max)
    jittered: float = base * random.uniform(0.8, 1.2)
    return min(jittered, net.retry_backoff_max) / 1000.0


def _key_name(keys: tuple[KeyConfig, ...], key: KeyConfig | None) -> str | None:
    if key is None:
        return None
    return key.name or f"key-{next(i for i, k in enumerate(keys) if k is key)}"


def error_fields(req: Request | None, provider: str | None, model: str | None) -> dict[str, Any]:
    """The ``extra_fields`` an error carries: which attempt failed, for which request."""
    fields: dict[str, Any] = {}
    if provider is not None:
        fields["provider"] = provider
    if model is not None:
        fields["model_requested"] = model
    if req is not None:
        fields["request_type"] = req.request_type
        fields["original_model_requested"] = req.model
    return fields
