"""Adaptive leases: far from a limit, a worker reserves a slice of the limit's headroom in one store
round trip and admits requests from it locally, with no round trip at all; near the limit every request
goes to the store, atomically, as before.

A lease is an ordinary reservation in the shared store (so every other worker counts it), claimed with
a stricter rule than a request's: it is granted only if, after it, at least its own size is still free
(``used + reserved + 2 * size <= max``). Locally, a request is admitted from its limits' leases only if
each has room for the request's whole claim, so a lease never crosses a limit. Settled requests give
their reservation back to the lease and add what they used; the lease goes back to the store — what was
used counted, the rest released — when it runs out, after ``lease_seconds``, or at shutdown. A lease
returned while requests admitted from it are still running keeps exactly their reservations, which they
release themselves when they settle; a lease renewed early hands its running requests to its successor.

Exactness ("exactly N of M concurrent requests admitted, across workers"): a request the store refuses
may have been refused only because other workers hold leases with room left. So a refusal is final only
once no lease is out on the limits that refused it: every lease is also recorded on a marker counter
(``<limit>:leased``), which the refused request asks about; while leases are out it waits for them to
come back (each is back within two lease periods; none is granted near a limit) and asks again. A
refusal by a request limit too small for anyone to lease is final at once; on other limits, without
leases anywhere, a refusal costs one more round trip than before and nothing else.

Leases carry the store's reservation expiry like every reservation (a killed worker's lease lapses with
them), and a lease's size adapts: it doubles when a lease runs out before its time and halves when most
of it comes back unused, within ``1/16`` of the limit.

    >>> counters = LeasingCounterStore(BatchingCounterStore(RedisCounterStore(url)))  # build_governance
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from bifrost_asgi.stores.counters import Admission, Claim, CounterState, CounterStore, Limit

__all__ = ["LEASE_SECONDS", "LeasedClaim", "LeasingCounterStore"]

log = logging.getLogger("bifrost_asgi.governance")

# How long a lease admits requests before it goes back to the store (seconds). Also how long a worker's
# usage may take to show in the shared counters, and the longest a refusal waits for other workers' leases.
LEASE_SECONDS = 0.25
# At most this share of a limit is leased to one worker at a time; a limit too small to lease a few
# requests' worth this way is never leased.
_SHARE = 1 / 16
# A first lease holds this many requests' claims; later ones adapt to how fast the last one was used.
_FIRST = 8
_MIN = 2
# Limits remembered per worker; beyond this, those with no lease out are forgotten (keys come and go).
_REMEMBERED = 100_000
# A huge maximum: the marker counter never refuses a lease, it only records it (Lua reads no "inf").
_UNLIMITED = 1e300


@dataclass(slots=True, eq=False)
class _Lease:
    """A slice of one limit reserved in the store; what this worker admitted from it is counted here."""

    limit: Limit
    size: float  # reserved in the store, on the limit and on its marker
    at: float  # the reservation's admission time (its expiry slot); every claim on the lease shares it
    until: float  # monotonic time after which it admits nothing more
    left: float  # size - reserved by running requests - used by settled ones
    running: float = 0.0  # reserved by admitted requests not yet settled
    used: float = 0.0  # what settled requests really used, reported when the lease goes back
    open: bool = True
    # The lease that took over this one's running requests when it was renewed (their reservations
    # moved into it), so they settle there.
    successor: _Lease | None = None


@dataclass(slots=True)
class LeasedClaim(Claim):
    """A claim admitted from a lease: settled locally while the lease is out, in the store after."""

    lease: _Lease | None = None


@dataclass(slots=True)
class _Limited:
    """This worker's leasing state for one limit."""

    limit: Limit  # as it was when sized (a record's update can change its maximum)
    size: float  # the next lease's size; 0: the limit is too small to lease
    least: float  # the smallest lease worth having (a few requests' claims)
    lease: _Lease | None = None
    asking: bool = False  # a lease request is on its way
    not_before: float = 0.0  # the store refused a lease (near the limit): ask again after this


@dataclass
class LeasingCounterStore:
    """A `CounterStore` that admits from leases where it can and asks ``store`` where it must."""

    store: CounterStore
    lease_seconds: float = LEASE_SECONDS
    _limits: dict[str, _Limited] = field(default_factory=dict)
    # The limits with a lease out (by identity): what the timer looks at, not every limit remembered.
    _out: dict[int, _Limited] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _sweeper: asyncio.TimerHandle | None = None
    # The latest governance time seen, and when (monotonic): what a lease given back by the timer is
    # dated, moved on by the time since (an old date could roll a calendar window back).
    _seen: tuple[float, float] = (0.0, 0.0)
    _closed: bool = False

    def _now(self) -> float:
        now, at = self._seen
        return now + (time.monotonic() - at) if now else now

    async def admit(self, claims: Sequence[Claim], now: float) -> Admission:
        local = self.admit_now(claims, now)
        if local is not None:
            return local
        admission = await self.store.admit(claims, now)
        if admission.ok:
            if admission.claims:  # a fail-open store that reserved nothing has nothing to lease either
                self._renew(claims, now)
            return admission
        return await self._refused(claims, now, admission)

    def _admit_locally(self, claims: Sequence[Claim]) -> Admission | None:
        """Every claim from its limit's lease, or None (nothing taken) if one has no room."""
        limits = self._limits
        if not limits:
            return None
        clock = time.monotonic()
        # A lease in its last quarter of time or room asks for the next one now (`_renew_early`): tested
        # on every claim of every request, so the time is worked out once here.
        late = clock + self.lease_seconds / 4
        taken: list[LeasedClaim] = []
        due = False
        for claim in claims:
            limit, amount = claim.limit, claim.amount
            held = limits.get(limit.key)
            if (
                held is None
                or (lease := held.lease) is None
                or lease.left < amount
                or lease.until <= clock
                # A changed limit (a lowered maximum, say) goes to the store, which swaps the lease.
                or (held.limit is not limit and not _adopt(held, limit))
            ):
                for undo in taken:  # all or nothing
                    assert undo.lease is not None
                    undo.lease.left += undo.amount
                    undo.lease.running -= undo.amount
                return None
            left = lease.left = lease.left - amount
            lease.running += amount
            if lease.until < late or left < lease.size / 4:
                due = True
            taken.append(LeasedClaim(limit, amount, lease.at, lease))
        if due:
            self._renew_early(taken, clock)
        return Admission(True, tuple(taken))

    def _renew_early(self, taken: Sequence[LeasedClaim], clock: float) -> None:
        """A lease of this request is nearly spent: ask now for the next one of every lease of the request
        past half its time or size, together (one batch), so that no request waits for a lease. Each new
        lease replaces its predecessor when granted."""
        for claim in taken:
            lease = claim.lease
            held = self._limits.get(claim.limit.key)
            if lease is None or held is None or held.lease is not lease or clock < held.not_before:
                continue
            if lease.until - clock < self.lease_seconds / 2 or lease.left < lease.size / 2:
                self._ask(held, held.limit, self._now())

    def admit_now(self, claims: Sequence[Claim], now: float) -> Admission | None:
        """From the leases alone (`LocalCounters`): None when one has no room, and `admit` must ask."""
        self._seen = (now, time.monotonic())
        return self._admit_locally(claims)

    async def settle(self, claims: Sequence[Claim], actual: Sequence[float], now: float) -> None:
        rest, rest_actual = self.settle_now(claims, actual, now)
        if rest:
            await self.store.settle(rest, rest_actual, now)

    def settle_now(
        self, claims: Sequence[Claim], actual: Sequence[float], now: float
    ) -> tuple[Sequence[Claim], Sequence[float]]:
        """Settle the claims whose lease is still out (`LocalCounters`); the rest is for the store."""
        rest: list[Claim] = []
        rest_actual: list[float] = []
        for claim, used in zip(claims, actual, strict=True):
            lease = claim.lease if isinstance(claim, LeasedClaim) else None
            if lease is None:
                rest.append(claim)
                rest_actual.append(used)
                continue
            while lease.successor is not None:
                lease = lease.successor
            if lease.open:
                lease.running -= claim.amount
                lease.left += claim.amount - used
                lease.used += used
                if lease.left < 0:
                    # It cost more than its estimate: the store must see the overspend now, not when
                    # the lease runs out (other workers admit against it meanwhile).
                    held = self._limits.get(claim.limit.key)
                    if held is not None and held.lease is lease:
                        self._spawn(self._give_back(held, now))
                continue
            # The lease went back while this request ran: its reservation is still in the store, held
            # under that lease's admission time.
            rest.append(Claim(claim.limit, claim.amount, lease.at))
            rest_actual.append(used)
        return rest, rest_actual

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]:
        """The store's counters as a user means them: ``reserved`` is what requests in flight hold, not the
        slices leased to workers (read from the markers, in the same round trip); this worker's own
        leases are seen through, their use counted at once (other workers' within ``lease_seconds``)."""
        both = await self.store.read([*limits, *map(_marker, limits)], now)
        states, leased = both[: len(limits)], both[len(limits) :]
        for limit, state, out in zip(limits, states, leased, strict=True):
            state.reserved = max(0.0, state.reserved - out.reserved)
            held = self._limits.get(limit.key)
            lease = held.lease if held is not None else None
            if lease is not None and lease.open:
                state.used += lease.used
                state.reserved += lease.running
        return states

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._closed = True  # no more leases asked for
        while self._tasks:  # lease requests on their way first: what they are granted goes back too
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for held in list(self._out.values()):
            await self._give_back(held, self._now())
        await self.store.aclose()

    # -- getting and returning leases ----------------------------------------------------------------

    def _renew(self, claims: Sequence[Claim], now: float) -> None:
        """After a request the store admitted: ask for a lease on each limit that has none with room."""
        clock = time.monotonic()
        for claim in claims:
            held = self._limits.get(claim.limit.key)
            # By value: every key of a team builds its own Limit object for the team's budget.
            if held is None or held.limit != claim.limit:
                if held is not None and held.lease is not None:
                    self._spawn(self._give_back(held, now))
                if len(self._limits) >= _REMEMBERED:
                    self._forget_idle()
                least = _MIN * claim.amount
                held = _Limited(claim.limit, _first_size(claim.limit, claim.amount, least), least)
                self._limits[claim.limit.key] = held
            lease = held.lease
            if lease is not None:
                if lease.left >= claim.amount and lease.until > clock:
                    continue  # another claim of the request had no room; this one still has
                # Ran out before its time: the next one is bigger (and smaller if it mostly came back).
                self._spawn(self._give_back(held, now, grow=lease.until > clock))
            if clock >= held.not_before:
                self._ask(held, claim.limit, now)

    def _forget_idle(self) -> None:
        self._limits = {k: h for k, h in self._limits.items() if h.lease is not None or h.asking}

    def _ask(self, held: _Limited, limit: Limit, now: float) -> None:
        if not held.asking and held.size > 0.0 and not self._closed:
            held.asking = True
            self._spawn(self._lease(held, limit, now))

    async def _lease(self, held: _Limited, limit: Limit, now: float) -> None:
        size = held.size
        claims = (Claim(_strict(limit, size), size, now), Claim(_marker(limit), size, now))
        try:
            admission = await self.store.admit(claims, now)
        except Exception:  # the store is down: requests find out themselves; leasing waits a while
            log.debug("lease on %s not granted", limit.key, exc_info=True)
            admission = Admission(False)
        finally:
            held.asking = False
        if not admission.ok or not admission.claims:  # near the limit (or a fail-open store): no lease
            held.not_before = time.monotonic() + self.lease_seconds
            return
        lease = _Lease(limit, size, now, time.monotonic() + self.lease_seconds, size)
        if self._limits.get(limit.key) is not held:  # the limit changed meanwhile: give it back
            await self._give_back(_Limited(limit, size, held.least, lease), now)
            return
        old = held.lease
        if old is not None:  # renewed early: the new one takes over the old one's running requests
            grow = self._outpaced(old, time.monotonic())
            if old.running and lease.left >= old.running:
                lease.left -= old.running
                lease.running, old.running = old.running, 0.0
                old.successor = lease
            self._spawn(self._give_back(held, now, grow=grow))
        held.lease = lease
        self._out[id(held)] = held
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.lease_seconds, self._sweep)

    def _outpaced(self, lease: _Lease, clock: float) -> bool:
        """Spent (reserved or used) at a pace that would use it up before its time: the next one should
        be bigger. By pace, not by what is left: requests that settle under their estimate hand part of
        it back, so a lease renewed while nearly spent can look half full by the time the next arrives,
        and a lease sized for a few requests would then be renewed every few requests for ever."""
        age = clock - (lease.until - self.lease_seconds)
        return (lease.size - lease.left) * self.lease_seconds > lease.size * age

    def _give_back(self, held: _Limited, now: float, *, grow: bool = False) -> Coroutine[Any, Any, None]:
        """Take the lease off this worker at once (nothing more is admitted from it) and return the
        settlement that gives it back to the store: what its settled requests used is counted, its unused
        part released; running requests keep their own reservations and release them when they settle."""
        lease = held.lease
        if lease is None:
            return _nothing()
        held.lease = None
        self._out.pop(id(held), None)
        lease.open = False
        if grow:
            held.size = _exact(min(lease.limit.max * _SHARE, held.size * 2))
        elif lease.left > lease.size * 3 / 4:  # mostly unused: the next one is smaller
            held.size = _exact(max(held.least, held.size / 2))
        claims = (
            Claim(lease.limit, lease.size - lease.running, lease.at),
            Claim(_marker(lease.limit), lease.size, lease.at),
        )
        return self.store.settle(claims, (lease.used, 0.0), now)

    def _sweep(self) -> None:
        """Return the leases whose time is up (an idle worker must not sit on headroom others need)."""
        self._sweeper = None
        clock, now = time.monotonic(), self._now()
        for held in list(self._out.values()):
            lease = held.lease
            if lease is not None and lease.until <= clock:
                self._spawn(self._give_back(held, now))
                if lease.used or lease.running:  # in use: the next one is asked for now, not on a miss
                    self._ask(held, held.limit, now)
        if not self._closed and self._out:
            self._sweeper = asyncio.get_running_loop().call_later(self.lease_seconds, self._sweep)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- refusals ----------------------------------------------------------------------------------

    def _holds(self, limit: Limit) -> bool:
        held = self._limits.get(limit.key)
        return held is not None and held.lease is not None

    async def _refused(self, claims: Sequence[Claim], now: float, admission: Admission) -> Admission:
        """Refuse only once no lease holds room on the limits that refused: give back this worker's own,
        then ask again together with whether other workers' are still out, until they are back."""
        if all(_never_leased(c.limit) and not self._holds(c.limit) for c in admission.blocked):
            return admission  # no worker leases these (a small request limit): the refusal is final
        # Every lease is back within two lease periods of its grant (the timer runs once a period); the
        # rest is slack for a loaded machine.
        deadline = time.monotonic() + 4 * self.lease_seconds + 0.25
        while True:
            now = max(now, self._now())
            blocked = [c.limit for c in admission.blocked]
            for limit in blocked:
                held = self._limits.get(limit.key)
                if held is not None:
                    await self._give_back(held, now)
            probes = [Claim(_probe(limit), 0.0) for limit in blocked]
            again, out = self.store.admit(claims, now), self.store.admit(probes, now)
            admission, leased = await asyncio.gather(again, out)  # one batch: one round trip
            if admission.ok or leased.ok or time.monotonic() >= deadline:
                return admission  # admitted, or refused with no lease out anywhere: final
            await asyncio.sleep(self.lease_seconds / 4)


async def _nothing() -> None:
    return None


def _first_size(limit: Limit, amount: float, least: float) -> float:
    """A new limit's first lease: a few requests' worth, within its share; 0 if it is too small."""
    size = _exact(min(limit.max * _SHARE, _FIRST * amount))
    return size if amount > 0 and size >= least else 0.0


def _exact(size: float) -> float:
    """``size`` rounded down to a whole number, or below 1 to a multiple of 2**-40: leases of such sizes
    add and subtract exactly on the marker counter, which must read exactly 0 when none is out (the
    probe). Budgets are dollars: 0.1 + 0.2 - 0.1 - 0.2 is not 0 in floating point."""
    if size >= 1:
        return float(math.floor(size))
    return math.ldexp(math.floor(math.ldexp(size, 40)), -40)


def _never_leased(limit: Limit) -> bool:
    """A request limit too small for any worker to lease (a request claims exactly 1 of it). Token and
    budget claims vary by request, so another worker may lease those."""
    return limit.kind == "requests" and _first_size(limit, 1.0, _MIN) == 0.0


def _strict(limit: Limit, size: float) -> Limit:
    """The limit as a lease claims it: granted only if at least ``size`` stays free for everyone else
    (the request rule ``used + reserved + amount > max`` blocks, with ``max`` lowered by ``size``)."""
    return Limit(limit.key, "requests", limit.max - size, limit.window, limit.calendar_aligned)


def _marker(limit: Limit) -> Limit:
    """The counter that records how much of ``limit`` is out on lease (its reserved amount)."""
    return Limit(f"{limit.key}:leased", "requests", _UNLIMITED, limit.window, limit.calendar_aligned)


def _probe(limit: Limit) -> Limit:
    """The marker with a maximum of (about) 0: a claim of 0 on it is refused exactly when a lease is out.
    Lease sizes add exactly (`_exact`); the tolerance is for rounding in a store's own arithmetic."""
    return Limit(f"{limit.key}:leased", "requests", limit.max * 1e-12, limit.window, limit.calendar_aligned)


def _adopt(held: _Limited, limit: Limit) -> bool:
    """Whether ``limit`` is the limit ``held`` was sized for, built again (each key builds its own; records
    are reloaded): if so, it is compared by identity from now on, not field by field on every request."""
    if held.limit != limit:
        return False
    held.limit = limit
    return True
