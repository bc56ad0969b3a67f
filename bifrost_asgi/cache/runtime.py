"""`ResponseCache`: the cache's long-lived state, owned by the gateway — its configuration, the direct
entry store, the vector store (semantic mode) and the clock entries expire by."""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bifrost_asgi.cache.config import CacheConfig
from bifrost_asgi.cache.entries import EntryStore, build_entry_store
from bifrost_asgi.config import GatewayConfig

__all__ = ["Hit", "ResponseCache", "VectorIndex"]

log = logging.getLogger("bifrost_asgi.cache")


class Hit(Protocol):
    """A vector store's nearest entry (``cache.vectors.VectorHit``)."""

    @property
    def entry_id(self) -> str: ...

    @property
    def similarity(self) -> float: ...

    @property
    def payload(self) -> bytes: ...


class VectorIndex(Protocol):
    """What the cache uses of a vector store (``cache.vectors.VectorStore``)."""

    async def add(
        self, namespace: str, entry_id: str, vector: Sequence[float], payload: bytes, expires_at: float
    ) -> None: ...

    async def nearest(
        self, namespace: str, vector: Sequence[float], threshold: float, now: float
    ) -> Hit | None: ...

    async def aclose(self) -> None: ...


class ResponseCache:
    """Built once per gateway when the ``semantic_cache`` plugin is enabled.

    ``clock`` (unix seconds) decides expiry; tests replace it. ``vectors`` may be given before start
    (a vector store of the host's own); otherwise semantic mode builds the configured one on start.
    """

    def __init__(self, config: CacheConfig, gateway: GatewayConfig) -> None:
        self.config = config
        self.entries: EntryStore = build_entry_store(config.store)
        self.vectors: VectorIndex | None = None
        self.clock: Callable[[], float] = time.time
        self._vector_entry = gateway.vector_store
        gov = gateway.governance
        self._sqlite_path = os.path.abspath(gov.store.path if gov is not None else "bifrost.db")

    async def start(self) -> None:
        if self.config.semantic and self.vectors is None:
            self.vectors = _build_vectors(self._vector_entry, self.config.dimension, self._sqlite_path)

    async def aclose(self) -> None:
        await self.entries.aclose()
        if self.vectors is not None:
            await self.vectors.aclose()
            self.vectors = None


def _build_vectors(entry: dict[str, Any] | None, dimension: int, sqlite_path: str) -> VectorIndex:
    # Imported when semantic mode starts: the vector backends (sqlite-vec, qdrant-client) are optional.
    module = importlib.import_module("bifrost_asgi.cache.vectors")
    store: VectorIndex = module.build_vector_store(
        entry, dimension=dimension, default_sqlite_path=sqlite_path
    )
    return store
