"""Usage logs in SQLite (by default the same file as the keys): batched inserts, and ``GET /api/logs``
run as SQL.

    search_logs(store.connection, {"providers": ["openai,anthropic"], "min_cost": ["0.01"]})
    -> {"logs": [...], "pagination": {...}, "stats": {...}, "has_logs": true}

Every value reaches SQLite as a bound parameter; only column names and ``ASC``/``DESC`` are written into
the SQL text, and those come from `LogQuery`'s fixed tables, never from the query string.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import operator
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bifrost_asgi.stores.log_query import (
    TERMINAL_STATUSES,
    LogQuery,
    log_entry,
    log_page,
    log_stats,
    parse_log_query,
)
from bifrost_asgi.stores.logs import COLUMNS, LogRecord
from bifrost_asgi.stores.sqlite import ThreadConnections, busy

__all__ = ["SCHEMA", "SQLiteLogStore", "search_logs"]

log = logging.getLogger("bifrost_asgi")

_SQL_TYPES = (("bool", "INTEGER"), ("int", "INTEGER"), ("float", "REAL"), ("str", "TEXT"))
_TERMINAL = f"status IN ({', '.join(repr(s) for s in TERMINAL_STATUSES)})"
_ROW = operator.attrgetter(*COLUMNS)  # a record's values in column order, in one C call
_NONES = (None,) * len(COLUMNS)
# sqlite3 binds only exact ints, floats and strings directly; anything else (a bool, None) goes through its
# adapter lookup first, which cost more than the value's own binding. Flags are written as 0/1 ints.
_FLAGS = tuple(i for i, name in enumerate(COLUMNS) if str(LogRecord.__annotations__[name]) == "bool")


# How often the WAL that batches written on the event loop grow is checkpointed (in the writer thread).
_CHECKPOINT_SECONDS = 1.0

# Rows per INSERT statement: a batch is written as a few multi-row statements of these sizes (at most
# three distinct statements per shape to cache). One statement per row would hand the GIL back and forth
# with the event loop at every row (sqlite3 releases it while a statement runs), which cost more than
# the rows themselves; per statement, the loop runs undisturbed while SQLite inserts the whole chunk.
_CHUNKS = (100, 10, 1)


@functools.cache
def _columns(shape: tuple[bool, ...]) -> tuple[tuple[str, ...], Callable[[tuple[Any, ...]], tuple[Any, ...]]]:
    """The columns a row of this shape sets, and what picks their values from a full row (a tuple: every
    record sets at least its id, timestamp and object).

    A record's None columns are left out rather than bound as NULL (a column nobody sets is NULL): binding
    None goes through sqlite3's adapter lookup. Records come in a few shapes (success, error, cache hit).
    """
    names = tuple(name for name, present in zip(COLUMNS, shape, strict=True) if present)
    return names, operator.itemgetter(*(i for i, present in enumerate(shape) if present))


@functools.cache
def _insert(names: tuple[str, ...], rows: int) -> str:
    values = f"({', '.join('?' for _ in names)})"
    return f"INSERT INTO bifrost_logs ({', '.join(names)}) VALUES {', '.join([values] * rows)}"


def _insert_rows(conn: sqlite3.Connection, shape: tuple[bool, ...], rows: list[tuple[Any, ...]]) -> None:
    names, pick = _columns(shape)
    done = 0
    for size in _CHUNKS:
        while len(rows) - done >= size:
            chunk = rows[done : done + size]
            conn.execute(_insert(names, size), list(itertools.chain.from_iterable(map(pick, chunk))))
            done += size


def _insert_batch(conn: sqlite3.Connection, records: Sequence[LogRecord], begin: str = "BEGIN") -> None:
    """The whole batch in one transaction, or nothing."""
    conn.execute(begin)
    try:
        for shape, rows in _runs(records):
            _insert_rows(conn, shape, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT (disk full) too: the write lock is never kept
            conn.execute("ROLLBACK")
        raise


def _runs(records: Sequence[LogRecord]) -> Iterator[tuple[tuple[bool, ...], list[tuple[Any, ...]]]]:
    """The batch's rows, in order (``seq`` orders the log), as runs of rows that set the same columns."""
    shape: tuple[bool, ...] = ()
    run: list[tuple[Any, ...]] = []
    for values in map(_ROW, records):
        row = list(values)
        for i in _FLAGS:
            row[i] = int(row[i])
        this = tuple(map(operator.is_not, row, _NONES))
        if this != shape and run:
            yield shape, run
            run = []
        shape = this
        run.append(tuple(row))
    if run:
        yield shape, run


def _column_sql(name: str) -> str:
    # Annotations are strings here (postponed evaluation); the first matching scalar type decides.
    annotation = str(LogRecord.__annotations__[name])
    kind = next((sql for py, sql in _SQL_TYPES if py in annotation), "TEXT")
    return f"{name} {kind}" + (" NOT NULL" if name == "id" else "")


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bifrost_logs (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(_column_sql(c) for c in COLUMNS)
    + ");\n"
    "CREATE INDEX IF NOT EXISTS bifrost_logs_ts ON bifrost_logs(timestamp);\n"
    "CREATE INDEX IF NOT EXISTS bifrost_logs_vk ON bifrost_logs(virtual_key_id);\n"
    "CREATE INDEX IF NOT EXISTS bifrost_logs_owner ON bifrost_logs(owner);\n"
)


class SQLiteLogStore:
    """Logs in SQLite (by default the same file as the keys). Writes and searches run in a worker thread.

    >>> store = SQLiteLogStore("/var/lib/bifrost/bifrost.db")
    >>> await store.search({"status": ["error"], "limit": ["10"]})
    """

    def __init__(self, path: str) -> None:
        self.path = path
        # A commit per batch of records, each an fsync in the default mode: most of the cost of logging
        # (measured: ~30 of ~45 µs a request at 2,000 requests/s). See docs/behaviour.md, "Governance".
        self._connections = ThreadConnections(path, SCHEMA, durable=False)
        self._columns_checked = False
        # Batches are written by one thread of their own: one connection with its statement cached and
        # warm, rather than whichever of the loop's default threads is free.
        self._writer: ThreadPoolExecutor | None = None
        self._writer_pid = 0
        self._loop_conn: sqlite3.Connection | None = None  # what `write` uses on the event loop
        self._loop_pid = 0
        self._checkpoint_at = 0.0

    def connection(self) -> sqlite3.Connection:
        conn = self._connections.get()
        if not self._columns_checked:
            _add_missing_columns(conn)
            self._columns_checked = True
        return conn

    def _write(self, records: Sequence[LogRecord]) -> None:
        _insert_batch(self.connection(), records)

    async def write(self, records: Sequence[LogRecord]) -> None:
        """On the event loop when the file is free, else in the writer thread, which waits its turn.

        Why the loop: a batch takes ~1 ms of SQLite there (~5 µs a record), while the same batch written
        by a thread on a busy core cost 3-4 times that, as the two threads took the GIL and the CPU from
        each other at every statement (measured: +6% requests/s at c=16 with logs on the loop). The
        loop's connection never waits for a lock (another process writing: the thread takes the batch)
        and never checkpoints the WAL itself, which syncs the file: the thread does that, off the loop.
        Left: when another process (or this one's counter store) completed a checkpoint of the same file
        just before, the loop's next batch starts the WAL over and syncs its small header.
        """
        if not self._columns_checked:  # the first batch: the file's columns are checked (and added to,
            await self._in_thread(self._write, records)  # which may wait for a lock) in the thread
            return
        now = time.monotonic()
        if now >= self._checkpoint_at:
            # Once a second the WAL is checkpointed, and this batch written after it, in the thread: the
            # first write after a complete checkpoint starts the WAL over and syncs its header, which the
            # loop must not wait for; and batches written only on the loop, back to back, would never
            # leave a checkpoint the moment to complete (the WAL would grow without end).
            self._checkpoint_at = now + _CHECKPOINT_SECONDS
            await self._in_thread(self._checkpoint_then_write, records)
            return
        try:
            _insert_batch(self._loop_connection(), records, "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # opening it too may meet the lock
            if not busy(exc):
                raise
            await self._in_thread(self._write, records)  # the rows were rolled back: all of them go
            return

    def _loop_connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._loop_conn is None or self._loop_pid != pid:  # a connection does not survive a fork
            conn = self._connections.open(busy_timeout_ms=0)
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._loop_conn, self._loop_pid = conn, pid
        return self._loop_conn

    def _checkpoint_then_write(self, records: Sequence[LogRecord]) -> None:
        try:
            self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # the next one tries again; the WAL only grows meanwhile
            log.warning("checkpointing the usage log's WAL failed", exc_info=True)
        self._write(records)

    async def _in_thread(self, work: Callable[..., None], *args: Any) -> None:
        if self._writer is None or self._writer_pid != os.getpid():  # a thread does not survive a fork
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="bifrost-logs")
            self._writer_pid = os.getpid()
        await asyncio.get_running_loop().run_in_executor(self._writer, work, *args)

    async def search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        return await asyncio.to_thread(search_logs, self.connection, query)

    def _scan(self, query: LogQuery, fields: Sequence[str]) -> list[dict[str, Any]]:
        names = [f for f in fields if f in COLUMNS]  # only LogRecord fields reach the SQL text
        where, params = _where(query)
        sql = f"SELECT {', '.join(names)} FROM bifrost_logs{where} ORDER BY timestamp, seq"
        return [dict(zip(names, row, strict=True)) for row in self.connection().execute(sql, params)]

    async def scan(self, query: LogQuery, fields: Sequence[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._scan, query, fields)

    def _delete(self, query: LogQuery) -> int:
        where, params = _where(query)
        return self.connection().execute(f"DELETE FROM bifrost_logs{where}", params).rowcount

    async def delete(self, query: LogQuery) -> int:
        return await asyncio.to_thread(self._delete, query)

    def _update_costs(self, costs: Mapping[str, float]) -> int:
        conn = self.connection()
        conn.execute("BEGIN")
        try:
            changed = sum(
                conn.execute("UPDATE bifrost_logs SET cost=? WHERE id=?", (cost, request_id)).rowcount
                for request_id, cost in costs.items()
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return changed

    async def update_costs(self, costs: Mapping[str, float]) -> int:
        return await asyncio.to_thread(self._update_costs, costs)

    async def aclose(self) -> None:
        conn, self._loop_conn = self._loop_conn, None
        if conn is not None and self._loop_pid == os.getpid():
            conn.close()
        writer, self._writer = self._writer, None
        if writer is not None and self._writer_pid == os.getpid():
            writer.shutdown(wait=False)  # LogWriter flushed before closing the store: nothing is queued


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """A file made by an older version lacks the newer columns (``content``): add them."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(bifrost_logs)")}
    for name in COLUMNS:
        if name not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # another thread added it first
                conn.execute(f"ALTER TABLE bifrost_logs ADD COLUMN {_column_sql(name)}")


def search_logs(
    connection_factory: Callable[[], sqlite3.Connection], query: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Filter, page and summarise the usage log; a bad parameter is a 400 naming it.

    Runs in a worker thread (``SQLiteLogStore.search``). The count, the stats and the page are read in
    one transaction, so they agree with each other while writers keep appending.
    """
    parsed = parse_log_query(query)
    where, params = _where(parsed)
    conn = connection_factory()
    conn.execute("BEGIN")
    try:
        stats = _stats(conn, where, params)
        logs = _rows(conn, where, params, parsed)
        has_logs = bool(conn.execute("SELECT EXISTS(SELECT 1 FROM bifrost_logs)").fetchone()[0])
    finally:
        conn.execute("COMMIT")  # read-only: committing and rolling back are the same
    return log_page(parsed, logs, stats, has_logs=has_logs)


def _where(query: LogQuery) -> tuple[str, list[object]]:
    """The WHERE clause (fixed text) and its bound values."""
    clauses: list[str] = []
    params: list[object] = []
    for field, values in query.values.items():
        clauses.append(f"{field} IN ({', '.join('?' for _ in values)})")
        params += values
    for bound in query.bounds:
        clauses.append(f"{bound.field} {bound.op} ?")
        params.append(bound.value)
    if query.missing_cost_only:
        clauses.append("(cost IS NULL OR cost <= 0) AND status != 'error'")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _stats(conn: sqlite3.Connection, where: str, params: list[object]) -> dict[str, Any]:
    sql = (
        "SELECT COUNT(*),"
        f" SUM(CASE WHEN {_TERMINAL} THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END),"
        f" AVG(CASE WHEN {_TERMINAL} THEN latency END),"
        " SUM(total_tokens), SUM(input_tokens), SUM(output_tokens), SUM(cost)"
        " FROM bifrost_logs" + where
    )
    count, completed, succeeded, latency, tokens, prompt, completion, cost = conn.execute(
        sql, params
    ).fetchone()
    return log_stats(
        count=count,
        completed=completed,
        succeeded=succeeded,
        latency=latency,
        tokens=tokens,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=cost,
    )


def _rows(
    conn: sqlite3.Connection, where: str, params: list[object], query: LogQuery
) -> list[dict[str, Any]]:
    order = "DESC" if query.descending else "ASC"
    # `seq` breaks ties in the same direction, so pages neither repeat nor skip rows of equal value.
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM bifrost_logs{where}"
        f" ORDER BY {query.sort_field} {order}, seq {order} LIMIT ? OFFSET ?"
    )
    cursor = conn.execute(sql, [*params, query.limit, query.offset])
    return [log_entry(dict(zip(COLUMNS, row, strict=True))) for row in cursor.fetchall()]
