"""Callbacks for the host app: bill, notify or audit in its own code when the gateway records usage,
a budget crosses a threshold, or a key is created or revoked.

    hooks = Hooks(usage_recorded=bill, budget_threshold_crossed=notify)
    app = create_app(config, hooks=hooks)

A callback takes one argument: a `LogRecord`, a `BudgetThreshold` or a `VirtualKey`. An ``async def``
callback is awaited on the gateway's loop; a plain function runs in a worker thread, so it may use a
blocking database driver (the Django and Flask adapters send their signals this way). A callback that
raises is logged and never fails the request or the write that triggered it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bifrost_asgi.stores.counters import CounterStore, Limit
from bifrost_asgi.stores.logs import LogRecord

__all__ = ["EVENTS", "BudgetThreshold", "Event", "Hooks", "crossed"]

log = logging.getLogger("bifrost_asgi")

Event = Literal["usage_recorded", "budget_threshold_crossed", "key_created", "key_revoked"]
EVENTS: tuple[Event, ...] = ("usage_recorded", "budget_threshold_crossed", "key_created", "key_revoked")
Callback = Callable[[Any], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class BudgetThreshold:
    """A budget's spending reached ``percent`` of its limit in the window that started at ``window_start``.

    Sent once per threshold and window by each process that sees it cross; with several workers, dedupe
    on ``(limit, window_start, percent)`` (a unique constraint in the host's table does it).
    """

    limit: str  # the counter's key, e.g. "vk:<id>:budget:0:1M"
    scope: str  # "vk", "team" or "customer"
    scope_id: str
    virtual_key_id: str | None  # the key whose request crossed it
    percent: float
    used: float  # dollars
    max_limit: float  # dollars
    window_start: float  # unix seconds
    window_end: float


class Hooks:
    """The host's callbacks, by event name (see the module docstring).

    >>> hooks = Hooks(usage_recorded=lambda record: print(record.cost))
    >>> hooks.connect("key_revoked", audit)
    """

    def __init__(self, **callbacks: Callback | Sequence[Callback]) -> None:
        self._callbacks: dict[str, list[Callback]] = {event: [] for event in EVENTS}
        for event, given in callbacks.items():
            for callback in [given] if callable(given) else list(given):
                self.connect(event, callback)  # type: ignore[arg-type]

    def connect(self, event: Event, callback: Callback) -> None:
        if event not in self._callbacks:
            raise ValueError(f"unknown event {event!r}; events are {', '.join(EVENTS)}")
        self._callbacks[event].append(callback)

    def connected(self, event: Event) -> bool:
        """Whether any callback is registered for ``event`` (fixed once the gateway is built)."""
        return bool(self._callbacks[event])

    def has(self, event: Event) -> bool:
        """Whether anyone listens now: a callback with a ``wanted()`` method (an adapter's signal, which
        may have no receivers) is asked; work done only for listeners is skipped when nobody does."""
        return any(_wanted(callback) for callback in self._callbacks[event])

    async def emit(self, event: Event, payload: Any) -> None:
        for callback in self._callbacks[event]:
            try:
                if _is_async(callback):
                    await callback(payload)  # type: ignore[misc]
                else:
                    await asyncio.to_thread(callback, payload)
            except Exception:
                log.exception("the %s hook %r failed", event, callback)

    async def emit_records(self, records: Sequence[LogRecord]) -> None:
        if self.has("usage_recorded"):
            for record in records:
                await self.emit("usage_recorded", record)


def _is_async(callback: Callback) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004  (an instance with an async __call__)
    )


def _wanted(callback: Callback) -> bool:
    wanted = getattr(callback, "wanted", None)
    return bool(wanted()) if callable(wanted) else True


def crossed(limit: Limit, used: float, before: float, percentages: Sequence[float]) -> list[float]:
    """The percentages of ``limit`` that spending from ``before`` to ``used`` went past (or reached)."""
    if limit.max <= 0:
        return []
    return [p for p in percentages if before < limit.max * p / 100 <= used]


class BudgetWatch:
    """Fires budget_threshold_crossed after a request is settled: reads its budget counters (one store
    round trip, only when someone listens) and compares with the level this process last saw, so a
    threshold fires once per window here even when concurrent requests settle in between."""

    def __init__(self, hooks: Hooks, counters: CounterStore, default: Sequence[float]) -> None:
        self._hooks = hooks
        self._counters = counters
        self._default = tuple(default)
        self._seen: dict[tuple[str, float], float] = {}  # (limit, window start) -> used, as last read
        self._tasks: set[asyncio.Task[None]] = set()

    def check(self, limits: Sequence[Limit], key_id: str | None, now: float) -> None:
        budgets = [limit for limit in limits if limit.kind == "budget"]
        if budgets and self._hooks.has("budget_threshold_crossed"):
            task = asyncio.get_running_loop().create_task(self._check(budgets, key_id, now))
            self._tasks.add(task)  # held until done: a task nobody references may be collected
            task.add_done_callback(self._tasks.discard)

    async def _check(self, limits: list[Limit], key_id: str | None, now: float) -> None:
        try:
            states = await self._counters.read(limits, now)
        except Exception:
            log.warning("could not read budgets for threshold alerts", exc_info=True)
            return
        for limit, state in zip(limits, states, strict=True):
            seen_key = (limit.key, state.start)
            before = self._seen.get(seen_key, 0.0)
            if state.used <= before:
                continue
            if len(self._seen) >= 100_000:
                self._seen.clear()
            self._seen[seen_key] = state.used
            for percent in crossed(limit, state.used, before, limit.alerts or self._default):
                await self._hooks.emit("budget_threshold_crossed", _event(limit, state, key_id, percent))


def _event(limit: Limit, state: Any, key_id: str | None, percent: float) -> BudgetThreshold:
    scope, _, rest = limit.key.partition(":")
    return BudgetThreshold(
        limit=limit.key,
        scope=scope,
        scope_id=rest.split(":", 1)[0],
        virtual_key_id=key_id,
        percent=percent,
        used=state.used,
        max_limit=limit.max,
        window_start=state.start,
        window_end=state.end,
    )
