"""One SQLite connection per worker thread, with the schema created once: shared by the key store and
the log store (the counter store keeps its own single-thread executor)."""

from __future__ import annotations

import sqlite3
import threading

__all__ = ["ThreadConnections"]


class ThreadConnections:
    """WAL mode so readers never block the one writer; a busy timeout so processes wait their turn."""

    def __init__(self, path: str, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._ready = False

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        if not self._ready:  # checked again under the lock: only the first caller creates the schema
            with self._schema_lock:
                if not self._ready:
                    conn.executescript(self._schema)
                    self._ready = True
        return conn

    def close_current(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
