"""Vector stores for the semantic cache: where embedded requests wait to be found by a paraphrase.

A store keeps, per *namespace* (the cache's scope: virtual key, user, request family, model...), entries of
``(entry_id, vector, payload, expires_at)`` and answers one question: the most similar unexpired entry of a
namespace, if its cosine similarity reaches a threshold. A search never sees another namespace: that is
how a cached answer never crosses keys or users.

Three stores, one contract (tests/cache/test_vectors.py runs the same suite over each):

- `MemoryVectorStore`: one process, size-bounded; the default when the gateway has no SQLite file.
- ``SQLiteVectorStore`` (``vectors_sqlite``): the embedded default, shared by every worker process on the
  machine; the vector search is sqlite-vec's, in a SQLite file of its own beside the gateway's.
- ``QdrantVectorStore`` (``vectors_qdrant``): shared across hosts; Bifrost's ``vector_store`` entry with
  ``"type": "qdrant"``.

`build_vector_store` turns Bifrost's ``vector_store`` config entry into one of them::

    >>> store = build_vector_store({"type": "qdrant", "config": {"host": "qdrant", "port": 6334}},
    ...                            dimension=1536, default_sqlite_path="/var/lib/bifrost/bifrost.db")
    >>> await store.add("vk-1", "e1", embedding, answer_bytes, expires_at=time.time() + 300)
    >>> hit = await store.nearest("vk-1", other_embedding, threshold=0.8, now=time.time())

Expired entries are never returned; each store removes them a bounded amount at a time, as it adds
(using the latest ``now`` it was asked about), so no call pays for a big sweep.
"""

from __future__ import annotations

import heapq
import math
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from bifrost_asgi.config import ConfigError, resolve_env
from bifrost_asgi.errors import bad_response, configuration_error

__all__ = [
    "BIFROST_ONLY_TYPES",
    "MemoryVectorStore",
    "SUPPORTED_TYPES",
    "VectorHit",
    "VectorStore",
    "build_vector_store",
    "clamped",
    "sibling_path",
    "unit_vector",
]

# The ``vector_store.type`` values served here, and Bifrost's others, which are refused at startup by name.
SUPPORTED_TYPES = ("memory", "qdrant", "sqlite")
BIFROST_ONLY_TYPES = ("pinecone", "redis", "weaviate")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class VectorHit:
    """The entry `VectorStore.nearest` found: its id, how similar it is, and what was stored with it."""

    entry_id: str
    similarity: float  # cosine similarity in [-1, 1]
    payload: bytes  # the cached answer, opaque to the store


@runtime_checkable
class VectorStore(Protocol):
    """Where the semantic cache keeps its vectors. Every method may raise a `BifrostError`: a vector of
    the wrong dimension (500, configuration), or the store being unreachable (503)."""

    async def add(
        self, namespace: str, entry_id: str, vector: Sequence[float], payload: bytes, expires_at: float
    ) -> None:
        """Store an entry; one with the same ``entry_id`` in ``namespace`` is replaced."""
        ...

    async def nearest(
        self, namespace: str, vector: Sequence[float], threshold: float, now: float
    ) -> VectorHit | None:
        """The most similar entry of ``namespace`` unexpired at ``now`` with similarity >= ``threshold``."""
        ...

    async def delete(self, namespace: str, entry_id: str) -> None: ...

    async def clear(self, namespace: str | None = None) -> int:
        """Remove every entry of ``namespace`` (of every namespace when None); return how many."""
        ...

    async def aclose(self) -> None: ...


def unit_vector(vector: Sequence[float], dimension: int) -> tuple[float, ...]:
    """``vector`` scaled to length 1, checked first: every store compares unit vectors, so a cosine
    similarity is a dot product. Raises a `BifrostError` naming what is wrong with it."""
    if len(vector) != dimension:
        raise configuration_error(
            f"semantic cache: the embedding has {len(vector)} dimensions but the vector store was set up "
            f"for {dimension}: set the semantic_cache 'dimension' to the embedding model's"
        )
    try:
        values = tuple(float(v) for v in vector)
    except (TypeError, ValueError):
        raise bad_response("semantic cache: the embedding holds a value that is not a number") from None
    norm = math.sqrt(sum(v * v for v in values))
    if not math.isfinite(norm) or norm == 0.0:
        raise bad_response("semantic cache: the embedding is all zeros or not finite")
    return tuple(v / norm for v in values)


def clamped(similarity: float) -> float:
    """A cosine similarity computed in floating point, kept in [-1, 1] against its rounding."""
    return max(-1.0, min(1.0, similarity))


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    total: float = sum(map(operator.mul, a, b))
    return total


@dataclass(slots=True)
class _Entry:
    vector: tuple[float, ...]
    payload: bytes
    expires_at: float


class MemoryVectorStore:
    """Vectors in this process's memory: for a single worker, and for tests.

    At most ``max_entries`` are kept; past it the entry closest to expiry goes first. A search scans the
    namespace's entries (exact, no index): fine for the few thousand one worker's cache holds.

    >>> store = MemoryVectorStore(dimension=1536)
    """

    def __init__(self, *, dimension: int, max_entries: int = 10_000) -> None:
        self.dimension = dimension
        # Bounded because nothing else bounds it: a long TTL would otherwise grow the worker without end.
        self.max_entries = max_entries
        self._spaces: dict[str, dict[str, _Entry]] = {}
        self._count = 0
        # (expires_at, namespace, entry_id): who expires (or is evicted) first. Entries replaced or
        # deleted since leave stale items behind, skipped when popped and dropped when the heap is rebuilt.
        self._expiry: list[tuple[float, str, str]] = []
        self._now = -math.inf  # the latest `now` asked about: what add() purges against

    async def add(
        self, namespace: str, entry_id: str, vector: Sequence[float], payload: bytes, expires_at: float
    ) -> None:
        entry = _Entry(unit_vector(vector, self.dimension), bytes(payload), expires_at)
        space = self._spaces.setdefault(namespace, {})
        self._count += entry_id not in space
        space[entry_id] = entry
        heapq.heappush(self._expiry, (expires_at, namespace, entry_id))
        self._purge()

    async def nearest(
        self, namespace: str, vector: Sequence[float], threshold: float, now: float
    ) -> VectorHit | None:
        query = unit_vector(vector, self.dimension)
        self._now = max(self._now, now)
        best: VectorHit | None = None
        for entry_id, entry in self._spaces.get(namespace, {}).items():
            if entry.expires_at <= now:
                continue
            score = clamped(_dot(query, entry.vector))
            if score >= threshold and (best is None or score > best.similarity):
                best = VectorHit(entry_id, score, entry.payload)
        return best

    async def delete(self, namespace: str, entry_id: str) -> None:
        self._remove(namespace, entry_id)

    async def clear(self, namespace: str | None = None) -> int:
        if namespace is None:
            removed, self._count = self._count, 0
            self._spaces.clear()
            self._expiry.clear()
            return removed
        space = self._spaces.pop(namespace, {})
        self._count -= len(space)
        return len(space)

    async def aclose(self) -> None:
        await self.clear()

    def _remove(self, namespace: str, entry_id: str) -> None:
        space = self._spaces.get(namespace)
        if space is not None and space.pop(entry_id, None) is not None:
            self._count -= 1
            if not space:
                del self._spaces[namespace]

    def _purge(self, budget: int = 64) -> None:
        """Drop up to ``budget`` expired entries, then the soonest to expire while over ``max_entries``."""
        while self._expiry and budget > 0:
            expires_at, namespace, entry_id = self._expiry[0]
            over = self._count > self.max_entries
            if expires_at > self._now and not over:
                break
            heapq.heappop(self._expiry)
            budget -= 1
            entry = self._spaces.get(namespace, {}).get(entry_id)
            if entry is not None and entry.expires_at == expires_at:  # not a stale item
                self._remove(namespace, entry_id)
        if len(self._expiry) > 2 * self._count + 64:  # mostly stale items: rebuild
            self._expiry = [(e.expires_at, ns, i) for ns, s in self._spaces.items() for i, e in s.items()]
            heapq.heapify(self._expiry)


# -- configuration ----------------------------------------------------------------------------------------


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryOptions(_Options):
    max_entries: int = 10_000


class SQLiteOptions(_Options):
    path: str


class QdrantOptions(_Options):
    """Bifrost's ``QdrantConfig`` (gRPC, as Bifrost talks to Qdrant), plus where to keep the points and
    qdrant-client's local modes (``location: ":memory:"`` or ``path``), which need no server."""

    host: str = "localhost"
    port: int = 6334  # Qdrant's gRPC port
    api_key: SecretStr | None = None
    use_tls: bool = False
    collection: str = "bifrost_semantic_cache"
    timeout_seconds: float = 5.0
    location: Literal[":memory:"] | None = None
    path: str | None = None


def build_vector_store(
    entry: Mapping[str, Any] | None, *, dimension: int, default_sqlite_path: str | None
) -> VectorStore:
    """The store Bifrost's ``vector_store`` config ``entry`` asks for; raises `ConfigError` naming the
    field when it cannot be built. Without an entry (or with ``"enabled": false``) the embedded default:
    SQLite beside ``default_sqlite_path`` (see `sibling_path`), or memory when that is None."""
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        raise ConfigError(f"semantic_cache.dimension: must be a positive integer, not {dimension!r}")
    if entry is not None and not isinstance(entry, Mapping):
        raise ConfigError("vector_store: must be an object")
    if entry is None or entry.get("enabled", True) is False:
        if default_sqlite_path is None:
            return MemoryVectorStore(dimension=dimension)
        return _sqlite(sibling_path(default_sqlite_path), dimension)
    kind, options = _kind(entry), _options(entry)
    if kind == "memory":
        return MemoryVectorStore(dimension=dimension, **_parse(MemoryOptions, options).model_dump())
    if kind == "sqlite":
        return _sqlite(_parse(SQLiteOptions, options).path, dimension)
    from bifrost_asgi.cache.vectors_qdrant import QdrantVectorStore

    return QdrantVectorStore.from_options(_parse(QdrantOptions, _resolve_env(options)), dimension=dimension)


def sibling_path(gateway_db: str) -> str:
    """Where the embedded vector store lives: ``bifrost.db`` -> ``bifrost-vectors.db``, beside it.

    Not in the gateway's file itself: the vectors are read through sqlean.py's copy of SQLite (CPython's
    ``sqlite3`` often cannot load sqlite-vec), and two copies of SQLite in one process must not open the
    same file: closing a connection in one drops the other's POSIX locks (sqlite.org/howtocorrupt.html).
    """
    root, ext = os.path.splitext(gateway_db)
    return f"{root}-vectors{ext or '.db'}"


def _kind(entry: Mapping[str, Any]) -> str:
    kind = entry.get("type")
    supported = ", ".join(SUPPORTED_TYPES)
    if kind in BIFROST_ONLY_TYPES:
        raise ConfigError(
            f"vector_store.type: {kind!r} is not supported by bifrost-asgi (supported: {supported})"
        )
    if kind not in SUPPORTED_TYPES:
        raise ConfigError(f"vector_store.type: must be one of {supported}, not {kind!r}")
    return str(kind)


def _options(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    options = entry.get("config", {})
    if not isinstance(options, Mapping):
        raise ConfigError("vector_store.config: must be an object")
    return options


def _parse(model: type[M], options: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"vector_store.config.{'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(problems) from None


def _resolve_env(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """Bifrost's ``env.VAR`` for the API key: read from the environment, so it never sits in config.json."""
    key = options.get("api_key")
    if not (isinstance(key, str) and key.startswith("env.")):
        return options
    return {**options, "api_key": resolve_env(key, "vector_store.config.api_key")}


def _sqlite(path: str, dimension: int) -> VectorStore:
    from bifrost_asgi.cache.vectors_sqlite import SQLiteVectorStore

    return SQLiteVectorStore(path, dimension=dimension)
