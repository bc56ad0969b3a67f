"""Opening the embedded SQLite files: every worker thread and process opens its own connection, often at
the same moment on a new file, and none may fail for it (CI saw "database is locked" at open: SQLite
refuses a journal-mode conversion at once, busy timeout or not, when waiting could deadlock)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from bifrost_asgi.stores.sqlite import ThreadConnections, busy, use_wal
from bifrost_asgi.stores.sqlite_logs import SCHEMA


class Refusing:
    """A connection whose first ``refusals`` statements are refused as SQLite refuses a conversion."""

    def __init__(self, conn: sqlite3.Connection, refusals: int, error: str = "database is locked") -> None:
        self.conn, self.refusals, self.error, self.statements = conn, refusals, error, 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.statements += 1
        if self.refusals:
            self.refusals -= 1
            raise sqlite3.OperationalError(self.error)
        return self.conn.execute(sql, *args)


def journal_mode(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_a_refused_conversion_is_retried_until_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path, isolation_level=None)
    use_wal(Refusing(conn, refusals=3), timeout=5.0)  # type: ignore[arg-type]
    conn.close()
    assert journal_mode(path) == "wal"


def test_refusals_past_the_timeout_and_other_errors_are_raised(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "new.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(Refusing(conn, refusals=10**6), timeout=0.05)  # type: ignore[arg-type]
    other = Refusing(conn, refusals=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        use_wal(other, timeout=5.0)  # type: ignore[arg-type]
    assert other.statements == 1  # not retried
    conn.close()


def test_a_file_already_in_wal_mode_is_not_converted_again(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    first = sqlite3.connect(path)
    first.execute("PRAGMA journal_mode=WAL")
    first.close()
    conn = sqlite3.connect(path, isolation_level=None)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    use_wal(conn, timeout=1.0)
    conn.close()
    assert seen == ["PRAGMA journal_mode"]  # read, not set: no lock taken


def test_busy_knows_sqlites_codes_and_other_modules_messages(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(tmp_path / "x.db", isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("BEGIN IMMEDIATE")
    assert busy(locked.value)
    assert busy(sqlite3.OperationalError("database table is locked"))  # no code: by its message
    assert not busy(sqlite3.OperationalError("no such table: t"))
    assert not busy(ValueError("locked"))
    holder.execute("ROLLBACK")
    holder.close()
    waiter.close()


def open_together(connections: ThreadConnections, threads: int) -> list[Exception]:
    """``threads`` threads opening their connection at the same moment; what they failed with."""
    start, failures = threading.Barrier(threads), []

    def open_one() -> None:
        start.wait()
        try:
            connections.get().execute("SELECT count(*) FROM bifrost_logs").fetchone()
        except Exception as exc:
            failures.append(exc)

    running = [threading.Thread(target=open_one) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    connections.close_all()
    return failures


def test_many_threads_open_a_new_file_at_once(tmp_path: Path) -> None:
    for trial in range(20):
        path = tmp_path / f"{trial}.db"
        assert open_together(ThreadConnections(str(path), SCHEMA), threads=12) == []
        assert journal_mode(path) == "wal"
