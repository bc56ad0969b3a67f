"""One SQLite connection per worker thread, with the schema created once: shared by the key store, the
log store and the semantic cache's vector store (the counter store keeps its own single-thread executor)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable

__all__ = ["Connect", "ThreadConnections", "busy", "use_wal"]

# Opens a connection the way `sqlite3.connect` does; another DB-API module with the same API (sqlean.py,
# whose SQLite can load extensions) may stand in for it.
Connect = Callable[..., sqlite3.Connection]


class ThreadConnections:
    """WAL mode so readers never block the one writer; a busy timeout so processes wait their turn.

    ``durable=False`` commits without waiting for the disk (``synchronous=NORMAL``): an application crash
    loses nothing and the file is never corrupted, but a power cut may lose the last moments of writes.
    For records that are many and cheap to lose (usage logs), not for keys that were handed out.
    """

    def __init__(
        self, path: str, schema: str, *, connect: Connect = sqlite3.connect, durable: bool = True
    ) -> None:
        self.path = path
        self._durable = durable
        self._schema = schema
        self._connect = connect
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._ready = False
        self._opened: list[tuple[int, sqlite3.Connection]] = []  # (pid, connection), for close_all

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.open()
            self._local.conn = conn
        return conn

    def open(self, *, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
        """A connection of its own (not this thread's), with the schema in place; closed by `close_all`."""
        timeout = busy_timeout_ms / 1000  # from the first statement: opening may meet a lock too
        conn = self._connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            use_wal(conn, timeout)
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if not self._durable:
                conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        with self._schema_lock:
            self._opened.append((os.getpid(), conn))
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

    def close_all(self) -> None:
        """Close every connection this process opened (call when no query is running). Connections
        inherited through fork() are left alone: closing them could drop the parent's file locks."""
        with self._schema_lock:
            opened, self._opened = self._opened, []
            self._local = threading.local()
        for pid, conn in opened:
            if pid == os.getpid():
                conn.close()


def busy(exc: BaseException) -> bool:
    """Another connection holds the file: SQLITE_BUSY or SQLITE_LOCKED (extended codes included), from
    sqlite3 or a module with its API (sqlean.py's errors are not sqlite3's, and may carry no code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return type(exc).__name__ == "OperationalError" and ("locked" in str(exc) or "busy" in str(exc))


def use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode: a property of the file, set by whichever connection comes first.

    Converting a file needs it to itself, and SQLite refuses at once, busy timeout or not, when waiting
    could deadlock: connections opening a new file together and each converting it ("database is locked"
    at open, seen with ten threads opening one new file). So the mode is read first (once any connection
    has converted the file there is nothing to do and no lock to take) and a refusal is retried, briefly
    backing off, until ``timeout`` (a retry may then wait in SQLite's busy handler once more: an open
    that meets a lock can take up to twice ``timeout``).
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")  # returns the mode it kept (":memory:" keeps its own)
            return
        except Exception as exc:
            if not busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
