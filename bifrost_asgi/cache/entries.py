"""A cached answer as bytes, and where direct entries live.

An entry keeps the provider's answer, not the client's rendering of it, so a hit is rendered again by
the request's own surface: fresh ``extra_fields`` (``cache_debug``, latency) on the body, and for a
stream fresh ``chunk_index``es on every replayed event, framed exactly as the original was. It records
which provider and model answered (and in which shape, ``op``) and when it expires.

Stream events are kept as they left the provider, before the encoder added anything:
``[event, data, obj, usage]`` where ``data`` is the raw event text or ``obj`` the built event (JSON
text), and ``usage`` locates the usage object (a path into ``obj``) or carries it (for a raw event).

    MemoryEntryStore   this process: an LRU bounded by entry count (the default)
    RedisEntryStore    shared by every worker and host (store.type "redis")
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from bifrost_asgi.cache.config import CacheStoreConfig
from bifrost_asgi.providers.base import Chunk, Op, Reply
from bifrost_asgi.stores.redis_counters import connect_redis

__all__ = [
    "Entry",
    "EntryStore",
    "MemoryEntryStore",
    "RedisEntryStore",
    "build_entry_store",
    "dump_entry",
    "freeze_chunk",
    "load_entry",
    "replay",
]

log = logging.getLogger("bifrost_asgi.cache")


@dataclass(slots=True)
class Entry:
    """One cached answer: a reply (JSON) or a stream's batches of events."""

    provider: str
    model: str
    op: Op
    expires_at: float
    reply: Reply | None = None
    batches: list[list[list[Any]]] | None = None


def dump_entry(entry: Entry) -> bytes:
    record: dict[str, Any] = {
        "provider": entry.provider,
        "model": entry.model,
        "op": entry.op.value,
        "exp": entry.expires_at,
    }
    if entry.reply is not None:
        reply = entry.reply
        # The body as the provider answered, minus what the gateway adds when rendering.
        record["body"] = {k: v for k, v in reply.body.items() if k != "extra_fields"}
        record["headers"] = reply.headers
        record["extra"] = reply.extra_fields
        if reply.content is not None:
            record["content"] = reply.content.decode()
    else:
        record["batches"] = entry.batches
    return orjson.dumps(record)


def load_entry(payload: bytes) -> Entry:
    """An entry from its bytes; ValueError (or KeyError/TypeError) when they are not one of ours."""
    record = orjson.loads(payload)
    entry = Entry(record["provider"], record["model"], Op(record["op"]), float(record["exp"]))
    if "batches" in record:
        entry.batches = record["batches"]
    else:
        content = record.get("content")
        entry.reply = Reply(
            record["body"],
            headers=record["headers"],
            extra_fields=record["extra"],
            content=content.encode() if content is not None else None,
        )
    return entry


def freeze_chunk(chunk: Chunk) -> list[Any]:
    """A stream event as it left the provider (before encoding adds to it); UnicodeDecodeError for an
    event that is not text."""
    obj, usage = chunk.obj, chunk.usage
    data = chunk.data.decode() if chunk.data is not None else None
    where: Any = None
    if usage is not None:
        where = _usage_path(obj, usage) if obj is not None else None
        if where is None:
            where = {"value": usage}
    return [chunk.event, data, orjson.dumps(obj).decode() if obj is not None else None, where]


def _usage_path(obj: dict[str, Any], usage: dict[str, Any]) -> list[str] | None:
    if obj.get("usage") is usage:
        return ["usage"]
    for name, value in obj.items():
        if isinstance(value, dict) and value.get("usage") is usage:
            return [name, "usage"]
    return None


def _thaw(frozen: Sequence[Any]) -> Chunk:
    event, data, obj_text, where = frozen
    obj = orjson.loads(obj_text) if obj_text is not None else None
    usage: Any = None
    if isinstance(where, dict):
        usage = where["value"]
    elif where is not None and obj is not None:
        usage = obj
        for name in where:
            usage = usage[name]
    return Chunk(event, data=data.encode() if data is not None else None, obj=obj, usage=usage)


async def replay(batches: list[list[list[Any]]]) -> AsyncIterator[list[Chunk]]:
    """A cached stream, batch by batch, as the provider first sent it."""
    for batch in batches:
        yield [_thaw(c) for c in batch]


# -- direct entries ---------------------------------------------------------------------------------------


class EntryStore(Protocol):
    """Where direct entries live. Expiry is the caller's (each entry records its own, so a test clock
    governs it); ``ttl`` lets a store drop the entry itself once it has surely expired."""

    async def get(self, entry_id: str) -> bytes | None: ...

    async def put(self, entry_id: str, payload: bytes, ttl: float) -> None: ...

    async def aclose(self) -> None: ...


class MemoryEntryStore:
    """This process's entries, the least recently used dropped first once ``max_entries`` are kept."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    async def get(self, entry_id: str) -> bytes | None:
        payload = self._entries.get(entry_id)
        if payload is not None:
            self._entries.move_to_end(entry_id)
        return payload

    async def put(self, entry_id: str, payload: bytes, ttl: float) -> None:
        self._entries[entry_id] = payload
        self._entries.move_to_end(entry_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisEntryStore:
    """Entries in Redis, shared by every worker and host; Redis drops each when its TTL passes. The
    connection is set up as the governance counters' is (a bounded pool, short timeouts)."""

    def __init__(self, url: str, *, prefix: str = "bifrost:cache:", timeout_s: float = 0.5) -> None:
        self._redis, self.unavailable = connect_redis(url, timeout_s, 64)
        self._prefix = prefix

    async def get(self, entry_id: str) -> bytes | None:
        value = await self._redis.get(self._prefix + entry_id)
        return value if isinstance(value, bytes) else None

    async def put(self, entry_id: str, payload: bytes, ttl: float) -> None:
        await self._redis.set(self._prefix + entry_id, payload, px=max(1, int(ttl * 1000)))

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_entry_store(config: CacheStoreConfig) -> EntryStore:
    if config.type == "redis":
        return RedisEntryStore(config.url, prefix=config.prefix, timeout_s=config.timeout_seconds)
    return MemoryEntryStore(config.max_entries)
