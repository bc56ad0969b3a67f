"""Group commit for shared counter stores: the admissions and settlements that arrive while one store
round trip is in flight go to the store together, in one transaction (SQLite, Django ORM) or one Lua call
(Redis), applied in arrival order.

Exact by construction: the store runs the same rules (`admit_states`, `settle_states`) over the whole
batch atomically, in order, so every admission sees every earlier one — as if each had its own round trip.
What changes is the number of round trips: at concurrency N a batch carries up to N requests.

Settlement is off the request's path: ``settle`` queues and returns; the queued settlements ride along
with the next batch (a lone one goes after a few milliseconds). A settlement whose batch fails (the store
is down) is kept and retried with the next batch, so a restart of the store leaks no reservation.

    >>> counters = BatchingCounterStore(SQLiteCounterStore(path))  # build_governance does this
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bifrost_asgi.errors import BifrostError, store_unavailable
from bifrost_asgi.stores.counters import Admission, Claim, CounterState, Limit

__all__ = ["AdmitOp", "BatchCounterStore", "BatchingCounterStore", "SettleOp"]

log = logging.getLogger("bifrost_asgi.governance")

# A lone settlement waits this long for an admission to ride along with (seconds).
SETTLE_DELAY = 0.005
# Settlements kept for retry while the store is down; beyond this the oldest are dropped (and logged).
_MAX_RETRY = 100_000


@dataclass(slots=True)
class AdmitOp:
    claims: tuple[Claim, ...]


@dataclass(slots=True)
class SettleOp:
    claims: tuple[Claim, ...]
    actual: tuple[float, ...]

    @classmethod
    def of(cls, claims: Sequence[Claim], actual: Sequence[float]) -> SettleOp:
        """One amount per claim, checked here: a wrong settlement must fail its caller, not a batch."""
        if len(claims) != len(actual):
            raise ValueError(f"{len(claims)} claims settled with {len(actual)} amounts")
        return cls(tuple(claims), tuple(actual))


@runtime_checkable
class BatchCounterStore(Protocol):
    """A counter store that can run several operations in one atomic step."""

    async def run_batch(self, ops: Sequence[AdmitOp | SettleOp], now: float) -> list[Admission | None]:
        """Apply ``ops`` in order, atomically: an `Admission` for each `AdmitOp`, None for a `SettleOp`."""
        ...

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Waiting:
    op: AdmitOp
    result: asyncio.Future[Admission]


@dataclass
class BatchingCounterStore:
    """A `CounterStore` in front of a `BatchCounterStore`: one round trip per batch, not per call."""

    store: BatchCounterStore
    max_batch: int = 512
    _admits: list[_Waiting] = field(default_factory=list)
    _settles: list[SettleOp] = field(default_factory=list)
    _now: float = 0.0
    _flushing: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None

    async def admit(self, claims: Sequence[Claim], now: float) -> Admission:
        result: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._admits.append(_Waiting(AdmitOp(tuple(claims)), result))
        self._now = max(self._now, now)
        self._kick()
        # If the caller is cancelled, the future is cancelled with it; the batch still runs and releases
        # what it reserved for a caller that is gone (see _resolve).
        return await result

    async def settle(self, claims: Sequence[Claim], actual: Sequence[float], now: float) -> None:
        self._settles.append(SettleOp.of(claims, actual))
        self._now = max(self._now, now)
        if self._flushing is None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SETTLE_DELAY, self._kick)

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]:
        await self.drain()  # what was settled shows in what is read
        return await self.store.read(limits, now)

    async def drain(self) -> None:
        """Wait until everything queued has reached the store (or failed to)."""
        while self._admits or self._settles or self._flushing is not None:
            self._kick()
            flushing = self._flushing
            if flushing is not None:
                await asyncio.shield(flushing)

    async def aclose(self) -> None:
        try:
            await self.drain()
        finally:
            await self.store.aclose()

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is None and (self._admits or self._settles):
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._admits or self._settles:
                await self._one_batch()
        finally:
            self._flushing = None

    async def _one_batch(self) -> None:
        # Settlements first: they only lower reservations, so every admission after them sees more room.
        settles, self._settles = self._settles[: self.max_batch], self._settles[self.max_batch :]
        room = max(0, self.max_batch - len(settles))
        admits, self._admits = self._admits[:room], self._admits[room:]
        ops: list[AdmitOp | SettleOp] = [*settles, *(w.op for w in admits)]
        try:
            results = await self.store.run_batch(ops, self._now)
        except Exception as exc:  # the store is down (fail closed), or a bug: nobody was admitted
            err = exc if isinstance(exc, BifrostError) else _unexpected(exc)
            if not getattr(self.store, "owns_retries", False):  # a store that may not know what ran
                self._retry_later(settles)
            for waiting in admits:
                if not waiting.result.done():
                    waiting.result.set_exception(err)
            if not admits:
                await asyncio.sleep(SETTLE_DELAY * 20)  # settlements only: do not spin on a dead store
            return
        for waiting, admission in zip(admits, results[len(settles) :], strict=True):
            assert admission is not None
            self._resolve(waiting, admission)

    def _resolve(self, waiting: _Waiting, admission: Admission) -> None:
        if not waiting.result.done():
            waiting.result.set_result(admission)
        elif admission.ok and admission.claims:  # the caller is gone: give back what it reserved
            self._settles.append(SettleOp(admission.claims, (0.0,) * len(admission.claims)))

    def _retry_later(self, settles: list[SettleOp]) -> None:
        """Keep failed settlements, in order, ahead of newer ones."""
        self._settles[:0] = settles
        if len(self._settles) > _MAX_RETRY:
            dropped = len(self._settles) - _MAX_RETRY
            del self._settles[:dropped]
            log.error("governance store unavailable: %d queued settlements dropped", dropped)


def _unexpected(exc: Exception) -> BifrostError:
    log.error("governance counters: a batch failed", exc_info=exc)
    return store_unavailable(type(exc).__name__)
