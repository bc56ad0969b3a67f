"""The cache never fails a request: an unreachable store or an unreadable entry is a miss, logged
without the store's address; entries beyond the in-process bound are dropped oldest first."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from bifrost_asgi.cache.entries import MemoryEntryStore
from tests.cache.conftest import KEY_A, Cached, cached_config
from tests.upstream import Upstream

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"x-bf-vk": KEY_A, "x-bf-cache-key": "faults"}


def test_an_unreachable_redis_is_a_miss_not_an_error(
    cached_gateway: Any, upstream_url: str, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    store = {"type": "redis", "url": "redis://:s3cret@127.0.0.1:9/0", "timeout_seconds": 0.2}
    gateway: Cached = cached_gateway(cached_config(upstream_url, store=store))
    with caplog.at_level(logging.WARNING, logger="bifrost_asgi.cache"):
        for _ in range(2):
            r = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=HEADERS, timeout=30)
            assert r.status_code == 200 and r.headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2
    assert "direct lookup failed" in caplog.text and "could not keep an answer" in caplog.text
    assert "s3cret" not in caplog.text


async def test_an_unreadable_entry_is_a_miss(
    cached_gateway: Any, upstream_url: str, upstream: Upstream
) -> None:
    gateway: Cached = cached_gateway(cached_config(upstream_url))
    async with httpx.AsyncClient(base_url=gateway.url, headers=HEADERS, timeout=30) as c:
        await c.post("/v1/chat/completions", json=CHAT)
        store = gateway.cache.entries
        assert isinstance(store, MemoryEntryStore)
        for entry_id in list(store._entries):
            await store.put(entry_id, b"not an entry", 60)
        r = await c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2


async def test_the_in_process_store_drops_the_least_recently_used() -> None:
    store = MemoryEntryStore(max_entries=2)
    await store.put("a", b"1", 60)
    await store.put("b", b"2", 60)
    assert await store.get("a") == b"1"  # a is now the most recently used
    await store.put("c", b"3", 60)
    assert (await store.get("a"), await store.get("b"), await store.get("c")) == (b"1", None, b"3")
    assert len(store) == 2
