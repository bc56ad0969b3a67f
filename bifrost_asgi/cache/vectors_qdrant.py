"""The semantic cache's shared vector store: Qdrant, reached with qdrant-client's async client.

Bifrost's ``vector_store`` entry ``{"type": "qdrant", "config": {"host", "port", "api_key", "use_tls"}}``
talks gRPC to a Qdrant server (port 6334, as Bifrost does); ``"location": ":memory:"`` or ``"path"``
selects qdrant-client's local mode instead (one process, no server), which the tests use — the same
calls either way.

Every entry is one point in one collection (cosine distance): its id is derived from (namespace,
entry_id), and its payload holds the namespace, the expiry and the cached answer. Every search filters on
the namespace and the expiry inside Qdrant, so an entry of another namespace is never a candidate. On a
server both fields are indexed (the namespace as a tenant key).
"""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from bifrost_asgi.cache.vectors import QdrantOptions, VectorHit, clamped, unit_vector
from bifrost_asgi.config import ConfigError
from bifrost_asgi.errors import BifrostError, configuration_error, vector_store_unavailable

try:
    from qdrant_client import AsyncQdrantClient, models
except ImportError:  # imported when the store is built: a startup error, not a failing request
    raise ConfigError(
        "vector_store.type 'qdrant' needs qdrant-client: pip install 'bifrost-asgi[cache]'"
    ) from None

__all__ = ["QdrantVectorStore"]

# Expired points are deleted (one filtered delete, done inside Qdrant) at most this often, in seconds of
# the clock the cache passes in.
PURGE_INTERVAL = 60.0
# Point ids must be UUIDs: derived from (namespace, entry_id), so the same entry always replaces itself.
_IDS = uuid.UUID("5f0c1a8e-7d1b-4c55-9a4e-b1f2057c0de5")


class QdrantVectorStore:
    """Vectors in a Qdrant collection, shared by every worker on every host that points at it.

    >>> store = QdrantVectorStore(AsyncQdrantClient(host="qdrant", grpc_port=6334, prefer_grpc=True),
    ...                           dimension=1536)
    """

    def __init__(
        self,
        client: AsyncQdrantClient,
        *,
        dimension: int,
        collection: str = "bifrost_semantic_cache",
        server: bool = True,
    ) -> None:
        self.dimension = dimension
        self.collection = collection
        self._client = client
        self._server = server  # local mode has no payload indexes (and warns if asked for one)
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._now = 0.0  # the latest `now` asked about: what add() purges against
        self._purged_at = -math.inf

    @classmethod
    def from_options(cls, options: QdrantOptions, *, dimension: int) -> QdrantVectorStore:
        local = options.location or options.path
        if local is not None:
            client = AsyncQdrantClient(location=options.location, path=options.path)
        else:
            api_key = options.api_key.get_secret_value() if options.api_key is not None else None
            client = AsyncQdrantClient(
                host=options.host,
                grpc_port=options.port,
                prefer_grpc=True,
                https=options.use_tls,
                api_key=api_key,
                timeout=max(1, math.ceil(options.timeout_seconds)),
                # Its version check runs in a thread at construction, over REST (another port), and an
                # unreachable server there is an exception nobody catches: failures surface on use instead.
                check_compatibility=False,
            )
        return cls(client, dimension=dimension, collection=options.collection, server=local is None)

    async def add(
        self, namespace: str, entry_id: str, vector: Sequence[float], payload: bytes, expires_at: float
    ) -> None:
        point = models.PointStruct(
            id=_point_id(namespace, entry_id),
            vector=list(unit_vector(vector, self.dimension)),
            payload={
                "namespace": namespace,
                "entry_id": entry_id,
                "expires_at": expires_at,
                "payload": base64.b64encode(payload).decode("ascii"),
            },
        )
        async with self._mapped():
            await self._collection()
            await self._client.upsert(self.collection, points=[point], wait=True)
            await self._purge()

    async def nearest(
        self, namespace: str, vector: Sequence[float], threshold: float, now: float
    ) -> VectorHit | None:
        query = list(unit_vector(vector, self.dimension))
        self._now = max(self._now, now)
        unexpired = models.FieldCondition(key="expires_at", range=models.Range(gt=now))
        async with self._mapped():
            await self._collection()
            found = await self._client.query_points(
                self.collection,
                query=query,
                query_filter=models.Filter(must=[_in(namespace), unexpired]),
                limit=1,
                # Qdrant compares its float32 score: a hair lower, and the exact check below decides.
                score_threshold=threshold - 1e-6,
                with_payload=True,
            )
        if not found.points or clamped(found.points[0].score) < threshold:
            return None
        point = found.points[0]
        return VectorHit(_field(point.payload, "entry_id"), clamped(point.score), _answer(point.payload))

    async def delete(self, namespace: str, entry_id: str) -> None:
        selector = models.PointIdsList(points=[_point_id(namespace, entry_id)])
        async with self._mapped():
            await self._collection()
            await self._client.delete(self.collection, points_selector=selector, wait=True)

    async def clear(self, namespace: str | None = None) -> int:
        which = models.Filter(must=[_in(namespace)] if namespace is not None else [])
        async with self._mapped():
            await self._collection()
            count = await self._client.count(self.collection, count_filter=which, exact=True)
            selector = models.FilterSelector(filter=which)
            await self._client.delete(self.collection, points_selector=selector, wait=True)
        return count.count

    async def aclose(self) -> None:
        async with self._mapped():
            await self._client.close()

    async def _collection(self) -> None:
        """Create the collection (and its indexes) on first use; check an existing one fits."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            if not await self._client.collection_exists(self.collection):
                await self._create()
            await self._check_existing()
            self._ready = True

    async def _create(self) -> None:
        params = models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
        try:
            await self._client.create_collection(self.collection, vectors_config=params)
        except Exception:
            # Another worker created it between our check and now: theirs serves (checked next).
            if not await self._client.collection_exists(self.collection):
                raise
            return
        if self._server:
            tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
            await self._client.create_payload_index(self.collection, "namespace", field_schema=tenant)
            expiry = models.PayloadSchemaType.FLOAT
            await self._client.create_payload_index(self.collection, "expires_at", field_schema=expiry)

    async def _check_existing(self) -> None:
        params = (await self._client.get_collection(self.collection)).config.params.vectors
        size = params.size if isinstance(params, models.VectorParams) else None
        distance = params.distance if isinstance(params, models.VectorParams) else None
        if size != self.dimension or distance != models.Distance.COSINE:
            raise configuration_error(
                f"semantic cache: the Qdrant collection {self.collection!r} holds vectors of size {size} "
                f"({distance}); this cache needs {self.dimension} (Cosine): configure another collection"
            )

    async def _purge(self) -> None:
        if self._now - self._purged_at < PURGE_INTERVAL:
            return
        self._purged_at = self._now
        expired = models.FieldCondition(key="expires_at", range=models.Range(lte=self._now))
        selector = models.FilterSelector(filter=models.Filter(must=[expired]))
        await self._client.delete(self.collection, points_selector=selector, wait=False)

    @asynccontextmanager
    async def _mapped(self) -> AsyncIterator[None]:
        """Every failure of the client (network, server, local mode) becomes one 503, mapped here."""
        try:
            yield
        except BifrostError:
            raise
        except Exception as exc:
            raise vector_store_unavailable(f"Qdrant: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _point_id(namespace: str, entry_id: str) -> str:
    # The namespace's length goes first, so no two (namespace, entry_id) pairs spell the same name.
    return str(uuid.uuid5(_IDS, f"{len(namespace)}:{namespace}{entry_id}"))


def _in(namespace: str) -> models.FieldCondition:
    return models.FieldCondition(key="namespace", match=models.MatchValue(value=namespace))


def _field(payload: dict[str, Any] | None, name: str) -> str:
    value = (payload or {}).get(name)
    if not isinstance(value, str):
        raise vector_store_unavailable(f"Qdrant: a point without its {name!r} (not written by bifrost-asgi)")
    return value


def _answer(payload: dict[str, Any] | None) -> bytes:
    try:
        return base64.b64decode(_field(payload, "payload"), validate=True)
    except ValueError:  # binascii.Error
        raise vector_store_unavailable("Qdrant: a point whose answer is not base64") from None
