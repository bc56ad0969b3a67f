"""`ResponseCache`: the cache's long-lived state, owned by the gateway — its configuration, the direct
entry store, the vector store (semantic mode) and the clock entries expire by."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from bifrost_asgi.cache.config import CacheConfig
from bifrost_asgi.cache.entries import EntryStore, build_entry_store
from bifrost_asgi.cache.vectors import VectorStore, build_vector_store
from bifrost_asgi.config import GatewayConfig

__all__ = ["ResponseCache"]

log = logging.getLogger("bifrost_asgi.cache")


class ResponseCache:
    """Built once per gateway when the ``semantic_cache`` plugin is enabled.

    ``clock`` (unix seconds) decides expiry; tests replace it. ``vectors`` may be given before start
    (a vector store of the host's own); otherwise semantic mode builds the configured one on start.
    """

    def __init__(self, config: CacheConfig, gateway: GatewayConfig) -> None:
        self.config = config
        self.entries: EntryStore = build_entry_store(config.store)
        self.vectors: VectorStore | None = None
        self.clock: Callable[[], float] = time.time
        self._vector_entry = gateway.vector_store
        gov = gateway.governance
        self._sqlite_path = os.path.abspath(gov.store.path if gov is not None else "bifrost.db")

    async def start(self) -> None:
        if self.config.semantic and self.vectors is None:
            self.vectors = build_vector_store(
                self._vector_entry, dimension=self.config.dimension, default_sqlite_path=self._sqlite_path
            )

    async def aclose(self) -> None:
        await self.entries.aclose()
        if self.vectors is not None:
            await self.vectors.aclose()
            self.vectors = None
