"""Budget and rate-limit counters behind one small Protocol, and the in-process implementation.

Admission is all-or-nothing across every limit a request touches: each claim reserves an amount (1
request; an estimate of tokens or dollars) and the request is refused if any limit would be broken.
Settlement replaces a reservation by what was really used (0 on error). Because reservations count,
concurrent requests cannot slip past a limit between check and update.

Blocking rules (spec §6.3, reservations included):
- requests: ``used + reserved + 1 > max``
- tokens and budgets: ``used + reserved >= max`` (a request that crosses the limit is let through; the
  next one is refused)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from bifrost_asgi.governance.windows import Window, window_bounds

__all__ = [
    "Admission",
    "Claim",
    "CounterState",
    "CounterStore",
    "Limit",
    "MemoryCounterStore",
    "admit_states",
    "blocks",
    "fresh_window",
    "read_states",
    "roll_window",
    "settle_states",
    "shielded",
    "shielded_admit",
]

Kind = Literal["requests", "tokens", "budget"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter: ``key`` is stable across processes (e.g. ``vk:<id>:budget:0``)."""

    key: str
    kind: Kind
    max: float
    window: Window
    calendar_aligned: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    limit: Limit
    amount: float


@dataclass(slots=True)
class Admission:
    ok: bool
    claims: tuple[Claim, ...] = ()
    blocked: tuple[Claim, ...] = ()


@dataclass(slots=True)
class CounterState:
    used: float = 0.0
    reserved: float = 0.0
    start: float = 0.0
    end: float = 0.0


def blocks(kind: Kind, used: float, reserved: float, amount: float, maximum: float) -> bool:
    if kind == "requests":
        return used + reserved + amount > maximum
    return used + reserved >= maximum


class CounterStore(Protocol):
    async def admit(self, claims: Sequence[Claim], now: float) -> Admission:
        """Reserve every claim, or none of them."""
        ...

    async def settle(self, claims: Sequence[Claim], actual: Sequence[float], now: float) -> None:
        """Release each claim's reservation and add what was really used (0 releases only)."""
        ...

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]: ...

    async def aclose(self) -> None: ...


def fresh_window(limit: Limit, now: float) -> tuple[float, float]:
    """The (start, end) a counter moves to when its window has run out at ``now``."""
    return window_bounds(now, limit.window, calendar_aligned=limit.calendar_aligned, start=None)


def roll_window(state: CounterState, limit: Limit, now: float) -> CounterState:
    """``state`` as seen at ``now``: the same object while its window holds ``now``, else a fresh window.

    A window that ended (or, calendar-aligned, has not begun: the clock went back) restarts usage at 0.
    Reservations carry over, because the requests that made them are still in flight and will settle.
    The Redis store transcribes this rule into Lua; keep the two in step.
    """
    if state.end == 0.0 or now >= state.end or limit.calendar_aligned and now < state.start:
        start, end = fresh_window(limit, now)
        return CounterState(0.0, state.reserved, start, end)
    return state


def _current(states: MutableMapping[str, CounterState], limit: Limit, now: float) -> CounterState:
    state = states.get(limit.key)
    state = states[limit.key] = roll_window(state if state is not None else CounterState(), limit, now)
    return state


def admit_states(states: MutableMapping[str, CounterState], claims: Sequence[Claim], now: float) -> Admission:
    """The admission rule over counters keyed by ``Limit.key``; each store runs it in one atomic step."""
    current = [_current(states, c.limit, now) for c in claims]
    blocked = tuple(
        c
        for c, s in zip(claims, current, strict=True)
        if blocks(c.limit.kind, s.used, s.reserved, c.amount, c.limit.max)
    )
    if blocked:
        return Admission(False, tuple(claims), blocked)
    for c, s in zip(claims, current, strict=True):
        s.reserved += c.amount
    return Admission(True, tuple(claims))


def settle_states(
    states: MutableMapping[str, CounterState], claims: Sequence[Claim], actual: Sequence[float], now: float
) -> None:
    for c, used in zip(claims, actual, strict=True):
        s = _current(states, c.limit, now)
        s.reserved = max(0.0, s.reserved - c.amount)
        s.used += used


def read_states(
    states: MutableMapping[str, CounterState], limits: Sequence[Limit], now: float
) -> list[CounterState]:
    out = []
    for limit in limits:
        s = _current(states, limit, now)
        out.append(CounterState(s.used, s.reserved, s.start, s.end))
    return out


# Strong references to release tasks started after a cancellation, so they are not garbage-collected mid-way.
_releases: set[asyncio.Task[Any]] = set()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # marks it retrieved: nobody awaits a task whose caller was cancelled


async def shielded(operation: Awaitable[T]) -> T:
    """Run ``operation`` to completion even if the caller is cancelled (a client hanging up mid-settle).

    Stores whose work happens outside the calling task (a thread, a server) use it so that cancelling the
    request cannot cut a settlement in half or leave its outcome unknown.
    """
    task = asyncio.ensure_future(operation)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


async def shielded_admit(
    admit: Awaitable[Admission], release: Callable[[Admission], Awaitable[None]]
) -> Admission:
    """Await an admission that runs outside this task; if the caller is cancelled meanwhile, let it finish
    and release whatever it reserved. Reservations outlive window resets, so a leaked one would shrink the
    limit for good."""
    task = asyncio.ensure_future(admit)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda done: _release_after(done, release))
        raise


def _release_after(done: asyncio.Future[Admission], release: Callable[[Admission], Awaitable[None]]) -> None:
    if done.cancelled() or done.exception() is not None or not done.result().ok:
        return
    task = asyncio.ensure_future(release(done.result()))
    _releases.add(task)
    task.add_done_callback(_releases.discard)
    task.add_done_callback(_retrieve)


@dataclass
class MemoryCounterStore:
    """One process. Atomic because admit/settle never await while holding state."""

    _state: dict[str, CounterState] = field(default_factory=dict)

    async def admit(self, claims: Sequence[Claim], now: float) -> Admission:
        return admit_states(self._state, claims, now)

    async def settle(self, claims: Sequence[Claim], actual: Sequence[float], now: float) -> None:
        settle_states(self._state, claims, actual, now)

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]:
        return read_states(self._state, limits, now)

    async def aclose(self) -> None:
        return None
