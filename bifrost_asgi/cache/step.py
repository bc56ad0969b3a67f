"""The cache as a step of the journey (step 5, between resolving the targets and the attempts).

    serve:    plan the request's entry -> direct lookup -> semantic lookup -> on a hit, admission (one
              request, no tokens, no cost) and the answer rendered again by the request's own surface;
              on a miss, the attempts (a stream is captured as it is delivered)
    remember: keep a JSON answer before it is sent, a stream when it ran to its end (before its
              terminator is sent: a client that has the whole answer finds it cached); never one that
              failed or was cut off, never under x-bf-cache-no-store

The cache never fails a request: a store or embedding fault is logged and counts as a miss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from bifrost_asgi.cache.entries import Entry, dump_entry, freeze_chunk, load_entry, replay
from bifrost_asgi.cache.keys import CacheState, calls_tools, plan
from bifrost_asgi.cache.runtime import ResponseCache
from bifrost_asgi.cache.semantic import embed
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.accounting import ZERO_COST, admit, release
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.providers.base import Chunk, ChunkStream, aclose_stream
from bifrost_asgi.surfaces.base import Surface

__all__ = ["remember", "serve"]

log = logging.getLogger("bifrost_asgi.cache")


async def serve(
    gw: Gateway,
    cache: ResponseCache,
    req: Request,
    surface: Surface,
    attempts: Callable[[], Awaitable[Served]],
) -> Served:
    """The request's answer from the cache, or from ``attempts`` (captured for the cache)."""
    state = plan(cache.config, req)
    if state is None:
        return await attempts()
    req.cache = state
    started = time.perf_counter()
    entry = await _find(gw, cache, state)
    if entry is not None:
        state.debug["cache_hit_latency"] = (time.perf_counter() - started) * 1000
        return await _hit(gw, req, surface, entry)
    served = await attempts()
    if served.chunks is not None and not state.no_store:
        state.batches = []
        served.chunks = _captured(served.chunks, cache, state, served)
    return served


async def remember(cache: ResponseCache, req: Request, served: Served) -> None:
    """Keep a JSON answer the request's plan allows (a stream keeps itself as it ends); never raises."""
    state = req.cache
    if state is not None and served.cache_hit is None and not state.no_store and served.reply is not None:
        await _keep_safely(cache, state, served)


async def _keep_safely(cache: ResponseCache, state: CacheState, served: Served) -> None:
    try:
        await _keep(cache, state, served)
    except Exception as exc:  # a store fault costs this entry, never the request
        log.warning("response cache: could not keep an answer (%s)", _describe(exc))


# -- lookup -------------------------------------------------------------------------------------------------


async def _find(gw: Gateway, cache: ResponseCache, state: CacheState) -> Entry | None:
    now = cache.clock()
    if state.direct:
        entry = await _direct(cache, state, now)
        if entry is not None:
            return entry
    if state.semantic:
        return await _semantic(gw, cache, state, now)
    return None


async def _direct(cache: ResponseCache, state: CacheState, now: float) -> Entry | None:
    try:
        payload = await cache.entries.get(state.direct_id)
        entry = load_entry(payload) if payload is not None else None
    except Exception as exc:
        log.warning("response cache: direct lookup failed, served as a miss (%s)", _describe(exc))
        return None
    if entry is None or entry.expires_at <= now:
        return None
    state.hit_type = "direct"
    state.debug.update(cache_hit=True, hit_type="direct", cache_id=state.direct_id)
    return entry


async def _semantic(gw: Gateway, cache: ResponseCache, state: CacheState, now: float) -> Entry | None:
    config, vectors = cache.config, cache.vectors
    if vectors is None or not state.text:
        return None
    try:
        state.vector, tokens = await embed(gw, config, state.text)
        state.debug.update(
            provider_used=config.provider, model_used=config.embedding_model, input_tokens=tokens
        )
        hit = await vectors.nearest(state.namespace, state.vector, state.threshold, now)
        entry = load_entry(hit.payload) if hit is not None else None
    except Exception as exc:
        log.warning("response cache: semantic lookup failed, served as a miss (%s)", _describe(exc))
        return None
    if hit is None or entry is None or entry.expires_at <= now:
        return None
    state.hit_type = "semantic"
    state.debug.update(
        cache_hit=True, hit_type="semantic", cache_id=hit.entry_id, threshold=state.threshold,
        similarity=hit.similarity,
    )  # fmt: skip
    return entry


async def _hit(gw: Gateway, req: Request, surface: Surface, entry: Entry) -> Served:
    """A cached answer as this request's: admitted (it counts as one request against the key's limits,
    and its access rules still apply), costing nothing, rendered by the request's own surface."""
    # No provider key was used: the hit names none (in its log record and metrics).
    served = Served(entry.provider, entry.model, 0, None, entry.op, reply=entry.reply)
    served.cache_hit = req.cache.hit_type if req.cache is not None else None
    served.cost = dict(ZERO_COST)
    provider, model = req.targets[0]
    served.ticket = await admit(gw, req, provider, model)
    if entry.batches is not None:
        served.chunks = replay(entry.batches)
    else:
        try:
            served.content = surface.render(gw, req, served)
        except BaseException:
            await release(gw, served.ticket)
            raise
    return served


# -- keeping ------------------------------------------------------------------------------------------------


async def _captured(
    chunks: ChunkStream, cache: ResponseCache, state: CacheState, served: Served
) -> AsyncIterator[list[Chunk]]:
    """The provider's stream, passed on batch by batch and copied for the cache as it goes (before
    encoding adds to the events); kept once it ran to its end. A failure ends it before that point."""
    kept = state.batches
    try:
        async for batch in chunks:
            if kept is not None:
                try:
                    kept.append([freeze_chunk(c) for c in batch])
                except (UnicodeDecodeError, TypeError):  # not text: this stream is not kept
                    kept = state.batches = None
            yield batch
        if kept is not None:
            await _keep_safely(cache, state, served)
    finally:
        await aclose_stream(chunks)


async def _keep(cache: ResponseCache, state: CacheState, served: Served) -> None:
    now = cache.clock()
    entry = Entry(served.provider, served.model, served.op, now + state.ttl)
    if served.chunks is not None:
        entry.batches = state.batches
    else:
        entry.reply = served.reply
    config = cache.config
    payload = dump_entry(entry)
    if len(payload) > config.store.max_entry_bytes:
        return
    if not config.cache_tool_calls and _calls_tools(entry, payload):
        return  # the next turn depends on what the client's tools return
    if state.direct:
        await cache.entries.put(state.direct_id, payload, state.ttl)
    if state.semantic and state.vector is not None and cache.vectors is not None:
        await cache.vectors.add(state.namespace, state.direct_id, state.vector, payload, now + state.ttl)


def _describe(exc: BaseException) -> str:
    """A fault's kind and message, never a connection string (redis errors may carry the URL)."""
    message = str(exc).split("redis://")[0].strip()
    return f"{type(exc).__name__}: {message[:200]}" if message else type(exc).__name__


def _calls_tools(entry: Entry, payload: bytes) -> bool:
    """Whether the answer calls the client's tools: one of its events says so, or its body (which the
    payload holds as JSON, not as an escaped string)."""
    if entry.batches is not None:
        return any(calls_tools(c[1] or c[2] or "") for batch in entry.batches for c in batch)
    return entry.reply is not None and entry.reply.content is None and calls_tools(payload.decode())
