"""Counters in one SQLite file: the embedded default, exact across every process on one machine.

Each admission, settlement and read is one ``BEGIN IMMEDIATE`` transaction: it takes the database's write
lock before reading, so the rule in ``admit_states`` (the same code the memory store runs) sees and
updates every counter of a request with no other process in between — all claims reserved, or none.
Waiting for the lock is bounded by ``busy_timeout``; past it the store fails closed with a 503.

A transaction first tries to take the lock on the event loop's thread without waiting (a connection with
no busy timeout): uncontended, a batch of admissions costs a few tens of microseconds and no thread hop.
When another process holds the lock, the transaction goes to a worker thread of its own, which waits for
the lock (up to ``busy_timeout``), so the event loop never blocks on a lock another process holds. Each
connection is only ever used by the thread that opened it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import orjson

from bifrost_asgi.errors import BifrostError, store_unavailable
from bifrost_asgi.stores.counters import (
    RESERVATION_TTL,
    CounterState,
    States,
    TransactionalCounterStore,
    apply_rule,
)
from bifrost_asgi.stores.sqlite import busy, use_wal

__all__ = ["SQLiteCounterStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bifrost_counters (
    key TEXT PRIMARY KEY,
    used REAL NOT NULL,
    reserved REAL NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    held TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID
"""
_SAVE = (
    'INSERT OR REPLACE INTO bifrost_counters (key, used, reserved, start, "end", held) '
    "VALUES (?, ?, ?, ?, ?, ?)"
)

# Connections inherited through fork() belong to the parent: closing them in the child (which garbage
# collection would do) can drop the parent's file locks, so they are kept alive here and never used.
_inherited: list[sqlite3.Connection] = []


class SQLiteCounterStore(TransactionalCounterStore):
    """Budget and rate-limit counters in a SQLite file shared by every worker process on the machine.

    >>> store = SQLiteCounterStore("/var/lib/bifrost/counters.db")
    >>> admission = await store.admit(claims, now=time.time())
    """

    def __init__(
        self, path: str, *, busy_timeout_s: float = 5.0, reservation_ttl: float = RESERVATION_TTL
    ) -> None:
        self._path = path
        self.reservation_ttl = reservation_ttl
        # Long enough to queue behind every other worker's admissions (each well under a millisecond),
        # short enough that a stuck lock surfaces as a 503 instead of a hung request.
        self._busy_timeout_s = busy_timeout_s
        self._pid = 0
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # opened and used only on the executor's thread
        self._now_conn: sqlite3.Connection | None = None  # the event loop's: never waits for the lock
        self._now_pid = 0

    async def transaction(self, keys: Sequence[str], rule: Callable[[States], T]) -> T:
        try:
            return self._run(self._immediate(), keys, rule)
        except (_Busy, sqlite3.Error):
            pass  # another process holds the lock (or the file was busy opening): wait off the loop
        work = functools.partial(self._locked, keys, rule)
        return await asyncio.get_running_loop().run_in_executor(self._worker(), work)

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None or self._pid != os.getpid():
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=False)

    def _worker(self) -> ThreadPoolExecutor:
        # After a fork the parent's thread is gone from the child: start over with a thread and connection.
        if self._executor is None or self._pid != os.getpid():
            if self._conn is not None:
                _inherited.append(self._conn)
                self._conn = None
            self._pid = os.getpid()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="bifrost-sqlite-counters")
        return self._executor

    def _locked(self, keys: Sequence[str], rule: Callable[[States], T]) -> T:
        return self._run(self._connection(), keys, rule)

    def _immediate(self) -> sqlite3.Connection:
        if self._now_conn is None or self._now_pid != os.getpid():
            if self._now_conn is not None:
                _inherited.append(self._now_conn)
            # timeout=0: a lock held elsewhere is an immediate SQLITE_BUSY, never a wait on the loop.
            self._now_conn = _open(self._path, 0.0)
            self._now_pid = os.getpid()
        return self._now_conn

    def _run(self, conn: sqlite3.Connection, keys: Sequence[str], rule: Callable[[States], T]) -> T:
        """Run ``rule(states)`` over the rows for ``keys`` under the write lock; save what changed."""
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if conn is self._now_conn and busy(exc):
                    raise _Busy from None
                raise
            try:
                result, changed = apply_rule(_load(conn, keys), rule)
                _save(conn, changed)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _open(self._path, self._busy_timeout_s)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Busy(Exception):
    """The write lock is held elsewhere (the event loop's connection does not wait for it)."""


def _open(path: str, timeout: float) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; each operation issues its own BEGIN IMMEDIATE.
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=True)
    try:
        _prepare(conn, timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, timeout: float) -> None:
    # WAL lets readers proceed during a write and makes commits cheap. synchronous=NORMAL skips the fsync
    # per commit: a power cut may lose the last moments of counting, never corrupt the file, and an
    # application crash loses nothing.
    use_wal(conn, timeout)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(bifrost_counters)")}
    if "held" not in columns:  # a file from before reservations expired: add their slots
        conn.execute("ALTER TABLE bifrost_counters ADD COLUMN held TEXT NOT NULL DEFAULT '{}'")


def _load(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, CounterState]:
    marks = ",".join("?" * len(keys))
    sql = f'SELECT key, used, reserved, start, "end", held FROM bifrost_counters WHERE key IN ({marks})'
    rows = conn.execute(sql, list(keys))
    return {
        key: CounterState(used, reserved, start, end, _held(held))
        for key, used, reserved, start, end, held in rows
    }


def _held(text: str) -> dict[int, float]:
    return {int(k): float(v) for k, v in orjson.loads(text).items()} if text and text != "{}" else {}


def _save(conn: sqlite3.Connection, changed: Mapping[str, CounterState]) -> None:
    if changed:
        rows = [(k, s.used, s.reserved, s.start, s.end, _held_text(s.held)) for k, s in changed.items()]
        conn.executemany(_SAVE, rows)


def _held_text(held: dict[int, float]) -> str:
    return orjson.dumps({str(k): v for k, v in held.items()}).decode() if held else "{}"


def _unavailable(exc: sqlite3.Error) -> BifrostError:
    return store_unavailable(str(exc))
