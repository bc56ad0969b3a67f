"""Usage logs: one record per request, written off the hot path in batches, never holding secrets.

`LogWriter.submit` is a list append; a background task flushes every `interval` seconds or when
`batch_size` records are waiting, and `aclose` flushes what is left (shutdown loses nothing that was
submitted). Content (prompts, outputs) is not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from bifrost_asgi.stores.sqlite import ThreadConnections

__all__ = ["LogRecord", "LogStore", "LogWriter", "SQLiteLogStore"]

log = logging.getLogger("bifrost_asgi.logs")


@dataclass(slots=True)
class LogRecord:
    id: str  # the request id
    timestamp: float  # unix seconds, when the request arrived
    object: str  # request type: responses, chat_completion_stream, count_tokens, ...
    provider: str | None = None
    model: str | None = None
    requested_model: str | None = None
    owner: str | None = None
    virtual_key_id: str | None = None
    virtual_key_name: str | None = None
    team_id: str | None = None
    customer_id: str | None = None
    selected_key_name: str | None = None  # the provider key's name, never its value
    status: str = "success"  # success | error
    status_code: int = 200
    error_type: str | None = None
    error_message: str | None = None
    stream: bool = False
    fallback_index: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_read_tokens: int = 0
    cached_write_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    latency: int = 0  # ms
    usage_estimated: bool = False  # true when a cancelled stream was charged from what was delivered


COLUMNS = tuple(f.name for f in fields(LogRecord))


class LogStore(Protocol):
    async def write(self, records: Sequence[LogRecord]) -> None: ...

    async def search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Bifrost's `GET /api/logs`: filters, pagination and stats (spec §9)."""
        ...

    async def aclose(self) -> None: ...


def _column_sql(name: str) -> str:
    # Annotations are strings here (postponed evaluation); the first matching scalar type decides.
    annotation = str(LogRecord.__annotations__[name])
    kind = next((sql for py, sql in _SQL_TYPES if py in annotation), "TEXT")
    return f"{name} {kind}" + (" NOT NULL" if name == "id" else "")


_SQL_TYPES = (("bool", "INTEGER"), ("int", "INTEGER"), ("float", "REAL"), ("str", "TEXT"))


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bifrost_logs (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(_column_sql(c) for c in COLUMNS)
    + ");\n"
    "CREATE INDEX IF NOT EXISTS bifrost_logs_ts ON bifrost_logs(timestamp);\n"
    "CREATE INDEX IF NOT EXISTS bifrost_logs_vk ON bifrost_logs(virtual_key_id);\n"
    "CREATE INDEX IF NOT EXISTS bifrost_logs_owner ON bifrost_logs(owner);\n"
)


class SQLiteLogStore:
    """Logs in SQLite (by default the same file as the keys). Writes run in a worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connections = ThreadConnections(path, SCHEMA)

    def connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def _write(self, records: Sequence[LogRecord]) -> None:
        conn = self.connection()
        sql = f"INSERT INTO bifrost_logs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
        conn.execute("BEGIN")
        try:
            conn.executemany(sql, [tuple(getattr(r, c) for c in COLUMNS) for r in records])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def write(self, records: Sequence[LogRecord]) -> None:
        await asyncio.to_thread(self._write, records)

    async def search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        from bifrost_asgi.stores.log_query import search_logs

        return await asyncio.to_thread(search_logs, self.connection, query)

    async def aclose(self) -> None:
        return None


class LogWriter:
    """Batches records and writes them from a background task."""

    def __init__(self, store: LogStore, *, batch_size: int = 200, interval: float = 0.5) -> None:
        self.store = store
        self._batch_size = batch_size
        self._interval = interval
        self._pending: list[LogRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def submit(self, record: LogRecord) -> None:
        self._pending.append(record)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.store.write(batch)
            except Exception:  # a log write must never take a request down; say so loudly instead
                log.exception("writing %d usage log records failed", len(batch))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
