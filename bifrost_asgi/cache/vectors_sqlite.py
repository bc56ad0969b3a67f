"""The semantic cache's embedded vector store: a table in a SQLite file, searched with sqlite-vec.

Every worker process on the machine opens the same file (WAL, a busy timeout: `ThreadConnections`), so
an answer cached by one worker is found by the others. The search is exact: sqlite-vec's
``vec_distance_cosine`` over the namespace's rows (found through the primary key), in C, in a worker
thread — the event loop never waits on a scan or on a lock another process holds.

sqlite-vec is a loadable extension, and CPython's ``sqlite3`` is often built unable to load one (pyenv's
and python.org's Linux builds are), so the file is opened with sqlean.py, a drop-in ``sqlite3`` with its
own SQLite that can. Both ship as wheels (the ``cache`` extra): nothing is fetched at run time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bifrost_asgi.cache.vectors import VectorHit, clamped, unit_vector
from bifrost_asgi.config import ConfigError
from bifrost_asgi.errors import BifrostError, vector_store_unavailable
from bifrost_asgi.stores.sqlite import ThreadConnections

try:
    import sqlean
    import sqlite_vec
except ImportError:  # imported when the store is built: a startup error, not a failing request
    raise ConfigError(
        "the semantic cache's SQLite vector store needs sqlite-vec and sqlean.py: "
        "pip install 'bifrost-asgi[cache]'"
    ) from None

__all__ = ["SQLiteVectorStore"]

T = TypeVar("T")

# The embedding is float32 (4 bytes a value, as sqlite-vec reads a BLOB): rows written for another
# dimension (the config changed) never match and age out.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS bifrost_cache_vectors (
    namespace TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    embedding BLOB NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (namespace, entry_id));
CREATE INDEX IF NOT EXISTS bifrost_cache_vectors_expiry ON bifrost_cache_vectors(expires_at);
"""
_ADD = (
    "INSERT OR REPLACE INTO bifrost_cache_vectors (namespace, entry_id, expires_at, embedding, payload) "
    "VALUES (?, ?, ?, ?, ?)"
)
_NEAREST = (
    "SELECT entry_id, payload, vec_distance_cosine(embedding, ?) AS distance FROM bifrost_cache_vectors "
    "WHERE namespace = ? AND expires_at > ? AND length(embedding) = ? ORDER BY distance LIMIT 1"
)
# Bounded work per add: a burst of expiries is worked off over the next adds, never in one long write.
_PURGE = (
    "DELETE FROM bifrost_cache_vectors WHERE rowid IN "
    "(SELECT rowid FROM bifrost_cache_vectors WHERE expires_at <= ? LIMIT 64)"
)


class SQLiteVectorStore:
    """Vectors in a SQLite file shared by every worker process on the machine.

    >>> store = SQLiteVectorStore("/var/lib/bifrost/bifrost-vectors.db", dimension=1536)
    """

    def __init__(self, path: str, *, dimension: int) -> None:
        self.dimension = dimension
        self._connections = ThreadConnections(path, _SCHEMA, connect=_connect)
        self._now = 0.0  # the latest `now` asked about: what add() purges against

    async def add(
        self, namespace: str, entry_id: str, vector: Sequence[float], payload: bytes, expires_at: float
    ) -> None:
        row = (namespace, entry_id, expires_at, _blob(unit_vector(vector, self.dimension)), bytes(payload))
        now = self._now

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_ADD, row)
            conn.execute(_PURGE, (now,))

        await self._run(work)

    async def nearest(
        self, namespace: str, vector: Sequence[float], threshold: float, now: float
    ) -> VectorHit | None:
        query = _blob(unit_vector(vector, self.dimension))
        self._now = max(self._now, now)
        params = (query, namespace, now, len(query))
        found = await self._run(lambda conn: conn.execute(_NEAREST, params).fetchone())
        if found is None:
            return None
        entry_id, payload, distance = found
        score = clamped(1.0 - distance)
        return VectorHit(entry_id, score, bytes(payload)) if score >= threshold else None

    async def delete(self, namespace: str, entry_id: str) -> None:
        sql = "DELETE FROM bifrost_cache_vectors WHERE namespace = ? AND entry_id = ?"
        await self._run(lambda conn: conn.execute(sql, (namespace, entry_id)))

    async def clear(self, namespace: str | None = None) -> int:
        if namespace is None:
            return await self._run(lambda conn: conn.execute("DELETE FROM bifrost_cache_vectors").rowcount)
        sql = "DELETE FROM bifrost_cache_vectors WHERE namespace = ?"
        return await self._run(lambda conn: conn.execute(sql, (namespace,)).rowcount)

    async def aclose(self) -> None:
        self._connections.close_all()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` on a worker thread's connection, its SQLite errors mapped once, here."""

        def call() -> T:
            try:
                return work(self._connections.get())
            except Exception as exc:  # sqlean's errors are not sqlite3's: both are mapped here
                raise _mapped(exc) from exc

        return await asyncio.to_thread(call)


def _connect(path: str, **kwargs: Any) -> sqlite3.Connection:
    """A sqlean.py connection with sqlite-vec loaded (it has `sqlite3.Connection`'s API)."""
    conn: sqlite3.Connection = sqlean.connect(path, **kwargs)
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)  # nothing run through this connection may load another
    except BaseException:
        conn.close()
        raise
    return conn


def _blob(vector: tuple[float, ...]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)  # sqlite-vec's float32 vector: little-endian


def _mapped(exc: Exception) -> BifrostError:
    return vector_store_unavailable(f"SQLite: {type(exc).__name__}: {exc}")
