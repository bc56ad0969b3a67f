"""Usage logs: one `LogRecord` per request, written off the hot path in batches to a `LogStore`, never
holding secrets. (The SQLite store is in ``sqlite_logs``; the search every store answers, in ``log_query``.)

`LogWriter.submit` is a list append; a background task flushes every `interval` seconds or when
`batch_size` records are waiting, and `aclose` flushes what is left (shutdown loses nothing that was
submitted). Content (prompts, outputs) is not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bifrost_asgi.stores.log_query import LogQuery

__all__ = ["COLUMNS", "LogRecord", "LogStore", "LogWriter"]

log = logging.getLogger("bifrost_asgi.logs")


@dataclass(slots=True)
class LogRecord:
    """One request, as ``GET /api/logs`` shows it (minus the derived ``token_usage``)."""

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
    usage_estimated: bool = False  # the gateway's estimate: a cut-off stream, or media that reported none
    cache_hit: str | None = None  # "direct" or "semantic": answered by the response cache, at no cost
    # The prompt and answer, as JSON text, only where content logging is on (observability/content.py);
    # never shown by the log search.
    content: str | None = None


# Every LogRecord field, in order: what a store keeps for each record.
COLUMNS = tuple(f.name for f in fields(LogRecord))


class LogStore(Protocol):
    """Where usage records go, and Bifrost's log search over them."""

    async def write(self, records: Sequence[LogRecord]) -> None:
        """Append a batch (from `LogWriter`, never on a request's path); all of it, or raise."""
        ...

    async def search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Bifrost's `GET /api/logs` (spec §9) for a ``parse_qs``-shaped query: filters, pagination and
        stats, by `log_query.parse_log_query` and `log_query.log_page`."""
        ...

    async def scan(self, query: LogQuery, fields: Sequence[str]) -> list[dict[str, Any]]:
        """Every record matching the query's conditions (its page and order ignored), oldest first, as a
        dict of the named `LogRecord` fields (``timestamp`` in unix seconds): what the analytics in
        `log_analytics` aggregate."""
        ...

    async def delete(self, query: LogQuery) -> int:
        """Remove every record matching the query's conditions; how many were removed."""
        ...

    async def update_costs(self, costs: Mapping[str, float]) -> int:
        """Set the cost of the records with these request ids; how many were changed."""
        ...

    async def aclose(self) -> None: ...


class LogWriter:
    """Batches records and writes them from a background task."""

    def __init__(self, store: LogStore, *, batch_size: int = 200, interval: float = 0.5) -> None:
        self.store = store
        self._batch_size = batch_size
        self._interval = interval
        self._pending: list[LogRecord] = []
        # Records lost because their batch could not be written (Bifrost's ``/api/logs/dropped``).
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        # Called with each batch once it is written (the host's usage_recorded hook).
        self.on_written: Callable[[Sequence[LogRecord]], Awaitable[None]] | None = None
        # client.log_retention_days, in seconds: older rows are deleted, hourly, by stores that can.
        self.retention: float | None = None
        self._next_purge = 0.0

    def submit(self, record: LogRecord) -> None:
        self._pending.append(record)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def _run(self) -> None:
        # Stopped by a flag, not by cancellation: asyncio.wait_for in Python 3.11 can swallow a
        # cancellation that lands as the wait ends, and the loop then ran forever (a shutdown hang).
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await self._purge()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.store.write(batch)
            except Exception:  # a log write must never take a request down; say so loudly instead
                self.dropped += len(batch)
                log.exception("writing %d usage log records failed", len(batch))
                continue
            if self.on_written is not None:
                await self.on_written(batch)

    async def _purge(self) -> None:
        """Delete the rows past retention, at most once an hour."""
        from bifrost_asgi.stores.log_query import older_than  # log_query imports this module

        now = time.monotonic()
        if self.retention is None or now < self._next_purge:
            return
        self._next_purge = now + 3600
        try:
            await self.store.delete(older_than(time.time() - self.retention))
        except Exception:
            log.exception("deleting usage log records past retention failed")

    async def aclose(self) -> None:
        """Stop the writer after one last flush: nothing submitted is lost."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
            self._closing = False
        await self.flush()
