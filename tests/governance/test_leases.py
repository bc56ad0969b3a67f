"""Adaptive leases (stores/leases.py): a worker far from its limits admits from a slice it reserved, with no
store round trip, and limits stay exact — across workers sharing one SQLite file or one Redis server.

Each "worker" here is what `build_governance` makes in a worker process: its own connection to the shared
store, its own batcher and its own leases; the workers run in one event loop so a test can interleave
them at will (test_multiprocess and test_hierarchy_multiprocess run the real `serve --workers 4`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from bifrost_asgi.stores import leases
from bifrost_asgi.stores.batching import BatchingCounterStore
from bifrost_asgi.stores.counters import (
    Admission,
    Claim,
    CounterState,
    CounterStore,
    Limit,
    apply_ops,
    read_states,
)
from bifrost_asgi.stores.leases import LeasingCounterStore
from tests.governance.test_counter_stores import T0, StoreSpec, limit
from tests.governance.test_counter_stores import shared_spec as shared_spec  # noqa: F401  (store fixtures)

LEASE = 0.05  # seconds: short, so that a test sees leases come back


class Counted:
    """A shared store that counts its round trips (batches)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.batches = 0

    async def run_batch(self, ops: Sequence[Any], now: float) -> list[Admission | None]:
        self.batches += 1
        result: list[Admission | None] = await self.store.run_batch(ops, now)
        return result

    async def read(self, limits: Sequence[Limit], now: float) -> Any:
        return await self.store.read(limits, now)

    async def aclose(self) -> None:
        await self.store.aclose()

    @property
    def owns_retries(self) -> bool:
        return bool(getattr(self.store, "owns_retries", False))


@pytest.fixture
async def workers(shared_spec: StoreSpec) -> AsyncIterator[Callable[[int], list[LeasingCounterStore]]]:  # noqa: F811
    made: list[LeasingCounterStore] = []

    def make(count: int) -> list[LeasingCounterStore]:
        for _ in range(count):
            made.append(LeasingCounterStore(BatchingCounterStore(Counted(shared_spec.make())), LEASE))
        return made[-count:]

    yield make
    for store in made:
        await store.aclose()


async def seen_once_back(
    spec: StoreSpec,  # noqa: F811
    *limits: Limit,
    until: Callable[[list[CounterState]], bool],
) -> list[CounterState]:
    """What another worker reads once the leases are back: within a few lease periods, or on a loaded
    machine (the timer that returns them runs late) within 5 s; what it read last, if never."""
    deadline = time.monotonic() + 5.0
    while True:
        states = await seen_by_another_worker(spec, *limits)
        if until(states) or time.monotonic() > deadline:
            return states
        await asyncio.sleep(LEASE)


async def seen_by_another_worker(spec: StoreSpec, *limits: Limit) -> list[CounterState]:  # noqa: F811
    """The counters as a worker without leases reads them straight from the shared store."""
    other = spec.make()
    try:
        return await other.read(limits, T0)
    finally:
        await other.aclose()


def marker(lim: Limit) -> Limit:
    """The counter that records how much of ``lim`` is out on lease."""
    return Limit(lim.key + ":leased", "requests", 1e300, lim.window)


def batches(store: LeasingCounterStore) -> int:
    inner = store.store
    assert isinstance(inner, BatchingCounterStore) and isinstance(inner.store, Counted)
    return inner.store.batches


async def request(store: CounterStore, claims: list[Claim], actual: list[float], *, ok: bool = True) -> bool:
    """One request: admitted, runs a moment (other requests interleave), settled."""
    admission = await store.admit(claims, T0)
    if admission.ok:
        await asyncio.sleep(random.random() * 0.002)
        await store.settle(admission.claims, actual if ok else [0.0] * len(actual), T0)
    return admission.ok


async def test_far_from_its_limits_a_worker_admits_without_round_trips(
    workers: Callable[[int], list[LeasingCounterStore]],
) -> None:
    [store] = workers(1)
    claims = [Claim(limit("requests", 10**9), 1), Claim(limit("tokens", 10**12), 900, T0)]
    for _ in range(20):  # the first requests go to the store; leases are asked for beside them
        assert await request(store, claims, [1, 700])
    await asyncio.sleep(0.01)
    before = batches(store)
    admitted = await asyncio.gather(*(request(store, claims, [1, 700]) for _ in range(300)))
    assert all(admitted)
    # Leases grow as they run out; a few round trips renew them, against 300 without leases.
    assert batches(store) - before < 60


class InstantStore:
    """A shared store that answers at the next turn of the event loop: what the lease layer does then
    depends on the order of events alone, not on timing."""

    def __init__(self) -> None:
        self.states: dict[str, CounterState] = {}

    async def run_batch(self, ops: Sequence[Any], now: float) -> list[Admission | None]:
        await asyncio.sleep(0)
        return apply_ops(self.states, ops, now)

    async def read(self, limits: Sequence[Limit], now: float) -> list[CounterState]:
        return read_states(self.states, limits, now)

    async def aclose(self) -> None:
        return None


async def test_a_lease_spent_fast_grows_though_settlements_hand_part_of_it_back() -> None:
    """Requests that use a third of their estimate (a budget's usual case), one at a time, the next lease
    arriving between two of them: a lease renewed early because it was spent fast grows, so the store
    sees a few round trips however many requests there are. (It once judged by what was left when the
    successor arrived, which settlements had raised: the lease stayed at eight requests' worth, renewed
    every few requests for ever: 114 round trips here, against 13.)"""
    store = LeasingCounterStore(BatchingCounterStore(Counted(InstantStore())), lease_seconds=60.0)
    claims = [Claim(limit("tokens", 10**12), 900, T0)]
    for _ in range(2000):
        admission = await store.admit(claims, T0)
        assert admission.ok
        await store.settle(admission.claims, [300], T0)
        for _ in range(3):  # between requests: a lease asked for arrives
            await asyncio.sleep(0)
    assert batches(store) < 40
    await store.aclose()


async def test_usage_reaches_the_shared_counters_when_a_lease_comes_back(
    workers: Callable[[int], list[LeasingCounterStore]],
    shared_spec: StoreSpec,  # noqa: F811
) -> None:
    [store] = workers(1)
    requests, tokens = limit("requests", 10**9), limit("tokens", 10**12)
    claims = [Claim(requests, 1, T0), Claim(tokens, 900, T0)]
    for ok in [True] * 30 + [False] * 10:
        assert await request(store, claims, [1, 700], ok=ok)
    # Seen by this worker at once: its leases' use counted, their unused part not shown as reserved.
    mine = await store.read([requests, tokens], T0)
    assert [(s.used, s.reserved) for s in mine] == [(30, 0), (30 * 700, 0)]
    # Seen by another worker once the leases are back (lease_seconds, and a batch).
    theirs = await seen_once_back(shared_spec, requests, tokens, until=lambda s: s[0].reserved == 0)
    assert [(s.used, s.reserved) for s in theirs] == [(30, 0), (30 * 700, 0)]


@pytest.mark.parametrize("kind", ["requests", "budget"])
async def test_200_concurrent_requests_on_4_workers_admit_exactly_50(
    workers: Callable[[int], list[LeasingCounterStore]], kind: str
) -> None:
    cost = 1 / 64  # exact in binary, so a budget worth 50 requests admits exactly 50
    lim = limit("requests", 50) if kind == "requests" else limit("budget", 50 * cost)
    amount = 1.0 if kind == "requests" else cost
    stores = workers(4)
    claims = [Claim(lim, amount, T0)]
    admitted = await asyncio.gather(*(request(stores[i % 4], claims, [amount]) for i in range(200)))
    assert sum(admitted) == 50
    [state] = await stores[0].read([lim], T0)
    assert state.used == 50 * amount


async def test_a_refusal_waits_for_other_workers_leases_to_come_back(
    workers: Callable[[int], list[LeasingCounterStore]],
) -> None:
    lim = limit("requests", 64)
    first, second = workers(2)
    claims = [Claim(lim, 1, T0)]
    for _ in range(8):  # the first worker takes a lease and then goes quiet, holding its unused part
        assert await request(first, claims, [1])
    await asyncio.sleep(0.001)
    held = first._limits[lim.key].lease
    assert held is not None and held.left > 0
    # The second worker uses the rest; every request the limit has room for is admitted, even those that
    # the store first refused because of the first worker's lease.
    outcomes = [await request(second, claims, [1]) for _ in range(64 - 8 + 5)]
    assert outcomes == [True] * (64 - 8) + [False] * 5
    [state] = await second.read([lim], T0)
    assert (state.used, state.reserved) == (64, 0)


async def test_a_limit_too_small_to_lease_always_asks_the_store(
    workers: Callable[[int], list[LeasingCounterStore]],
) -> None:
    [store] = workers(1)
    claims = [Claim(limit("requests", 20), 1, T0)]  # 1/16 of it is one request: not worth leasing
    before = batches(store)
    assert [await request(store, claims, [1]) for _ in range(20)] == [True] * 20
    assert store._limits[claims[0].limit.key].lease is None
    assert batches(store) - before >= 20
    await asyncio.sleep(0.02)  # the last settlement reached the store
    before = batches(store)
    assert [await request(store, claims, [1]) for _ in range(5)] == [False] * 5
    assert batches(store) - before == 5  # one round trip a refusal: nobody can hold a lease on it


async def test_shutdown_gives_every_lease_back(
    workers: Callable[[int], list[LeasingCounterStore]],
    shared_spec: StoreSpec,  # noqa: F811
) -> None:
    lim = limit("tokens", 10**9)
    [store] = workers(1)
    for _ in range(10):
        assert await request(store, [Claim(lim, 100, T0)], [60])
    await asyncio.sleep(0.005)
    assert store._limits[lim.key].lease is not None
    await store.aclose()
    [state] = await seen_by_another_worker(shared_spec, lim)
    assert (state.used, state.reserved) == (600, 0)


async def test_keys_sharing_a_budget_share_its_lease_and_give_it_back(
    workers: Callable[[int], list[LeasingCounterStore]],
    shared_spec: StoreSpec,  # noqa: F811
) -> None:
    # Each key of a team builds its own (equal) Limit object for the team's budget.
    budgets = [limit("budget", 100.0), limit("budget", 100.0)]
    assert budgets[0] == budgets[1] and budgets[0] is not budgets[1]
    [store] = workers(1)
    for i in range(40):
        assert await request(store, [Claim(budgets[i % 2], 0.5, T0)], [0.25])
    # Every lease back, none lost on the way.
    state, leased = await seen_once_back(
        shared_spec, budgets[0], marker(budgets[0]), until=lambda s: s[1].reserved == 0.0
    )
    assert (state.used, state.reserved, leased.reserved) == (10.0, 0, 0)


async def test_a_worker_forgets_limits_it_holds_no_lease_on_when_it_has_seen_too_many(
    workers: Callable[[int], list[LeasingCounterStore]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "_REMEMBERED", 3)
    [store] = workers(1)
    small = [limit("requests", 20 + i) for i in range(3)]  # never leased: remembered as such
    for lim in small:
        assert await request(store, [Claim(lim, 1, T0)], [1])
    assert len(store._limits) == 3
    big = limit("tokens", 10**9)
    assert await request(store, [Claim(big, 10, T0)], [10])
    assert set(store._limits) == {big.key}  # the idle ones went; the new one is kept


async def test_a_request_running_when_its_lease_is_renewed_settles_in_the_next_one(
    workers: Callable[[int], list[LeasingCounterStore]],
    shared_spec: StoreSpec,  # noqa: F811
) -> None:
    lim = limit("tokens", 10**9)
    [store] = workers(1)
    for _ in range(3):
        assert await request(store, [Claim(lim, 100, T0)], [100])
    await asyncio.sleep(0.005)  # the first lease is out
    first = store._limits[lim.key].lease
    assert first is not None
    long_running = await store.admit([Claim(lim, 100, T0)], T0)  # admitted from it, settled much later
    served = 3
    while store._limits[lim.key].lease is first:  # others use the lease up: a new one replaces it
        assert await request(store, [Claim(lim, 100, T0)], [100])
        served += 1
        await asyncio.sleep(0)
    assert first.successor is store._limits[lim.key].lease
    await store.settle(long_running.claims, [40], T0)
    await asyncio.sleep(LEASE * 3)
    state, leased = await seen_by_another_worker(shared_spec, lim, marker(lim))
    assert (state.used, state.reserved, leased.reserved) == (100 * served + 40, 0, 0)  # counted once


async def test_a_lowered_limit_applies_at_once_to_a_worker_holding_a_lease(
    workers: Callable[[int], list[LeasingCounterStore]],
) -> None:
    [store] = workers(1)
    generous = limit("requests", 10**6)
    for _ in range(10):
        assert await request(store, [Claim(generous, 1, T0)], [1])
    await asyncio.sleep(0.005)
    assert store._limits[generous.key].lease is not None
    # The key's record is updated: the same counter, now 15 a window (10 used already).
    lowered = Limit(generous.key, "requests", 15, generous.window)
    outcomes = [await request(store, [Claim(lowered, 1, T0)], [1]) for _ in range(20)]
    assert outcomes == [True] * 5 + [False] * 15
    [state] = await store.read([lowered], T0)
    assert (state.used, state.reserved) == (15, 0)


async def test_budget_leases_in_any_amounts_leave_nothing_on_the_marker(
    workers: Callable[[int], list[LeasingCounterStore]],
    shared_spec: StoreSpec,  # noqa: F811
) -> None:
    # Costs that are not exact in binary: 0.1 + 0.2 - 0.1 - 0.2 is not 0 in floating point. A marker
    # left at 3e-17 would make every later refusal wait for a lease that is not out.
    budget = limit("budget", 1000.0)
    stores = workers(2)
    rng = random.Random(7)
    costs = [rng.choice([0.1, 0.2, 0.0125, 0.025, 0.3, 0.07]) for _ in range(400)]
    for start in range(0, 400, 40):  # bursts: leases overlap, are renewed early and shrink or grow
        batch = costs[start : start + 40]
        done = await asyncio.gather(
            *(request(stores[i % 2], [Claim(budget, c, T0)], [c]) for i, c in enumerate(batch))
        )
        assert all(done)
    state, leased = await seen_once_back(
        shared_spec, budget, marker(budget), until=lambda s: s[1].reserved == 0.0
    )
    assert leased.reserved == 0.0  # exactly
    assert state.used == pytest.approx(sum(costs))
