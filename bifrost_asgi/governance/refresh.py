"""A per-process cache of store lookups (keys by prefix, teams, customers, provider limits) that no
request waits on while traffic flows: an entry in the last quarter of its life is answered from the cache
and refreshed in the background, once, however many requests ask meanwhile.

An entry is never served past its TTL, so a change made in another process still applies within the TTL
(as before this cache refreshed early); only an entry nobody asked for during its last quarter is loaded
on the request's path. Concurrent misses for one entry share one load.

    >>> teams = Refreshing(2.0, keys.team)
    >>> team = await teams.get("t1")
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["MAX_ENTRIES", "Refreshing"]

log = logging.getLogger("bifrost_asgi.governance")

V = TypeVar("V")

# Entries kept at most by each of governance's per-process caches; beyond it a cache starts again (keys
# come and go).
MAX_ENTRIES = 10_000
# An entry this far into its life is refreshed in the background by the next request that reads it.
_EARLY = 0.75


class Refreshing(Generic[V]):
    """``await cache.get(key)``: ``load(key)``, cached ``ttl`` seconds and refreshed before it runs out."""

    def __init__(self, ttl: float, load: Callable[[str], Awaitable[V]]) -> None:
        self.ttl = ttl
        self._load = load
        self._entries: dict[str, tuple[float, V]] = {}  # key -> (loaded at, value)
        self._loading: dict[str, asyncio.Task[V]] = {}
        self._tasks: set[asyncio.Task[V]] = set()  # every load until it ends, forgotten ones too
        # Bumped by `forget` (per key, or for all): a load that started before a change must not store
        # what it read.
        self._epoch = 0
        self._generations: dict[str, int] = {}

    async def get(self, key: str) -> V:
        hit = self._entries.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < self.ttl * _EARLY:
                return hit[1]
            if age < self.ttl:
                self._start(key)  # in the background: this request is answered from the cache
                return hit[1]
        return await asyncio.shield(self._start(key))

    def forget(self, key: str | None = None) -> None:
        """Drop one entry (or all): the next read loads it, and loads in flight do not store theirs."""
        if key is None:
            self._epoch += 1
            self._entries.clear()
            self._generations.clear()
            self._loading.clear()
            return
        self._generations[key] = self._generations.get(key, 0) + 1
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    async def aclose(self) -> None:
        """Stop the loads still running (at shutdown, before the store they read closes)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _version(self, key: str) -> tuple[int, int]:
        return self._epoch, self._generations.get(key, 0)

    def _start(self, key: str) -> asyncio.Task[V]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key, self._version(key)))
            self._loading[key] = task
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._done(key, done))
        return task

    async def _fetch(self, key: str, version: tuple[int, int]) -> V:
        loaded_at = time.monotonic()
        value = await self._load(key)
        if version == self._version(key):
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (loaded_at, value)
        return value

    def _done(self, key: str, task: asyncio.Task[V]) -> None:
        self._tasks.discard(task)
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here, since a background refresh has no caller: the entry runs out and the next
            # read loads it on the request's path, which reports the failure (the store is down).
            log.debug("refreshing a cached governance record failed", exc_info=task.exception())
