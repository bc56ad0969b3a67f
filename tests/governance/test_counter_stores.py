"""One behaviour table for every counter store: memory (the reference), SQLite and Redis.

Time is always passed explicitly (``now``), so each reset duration and calendar boundary is reached exactly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.governance.windows import parse_duration
from bifrost_asgi.stores import counters as counters_module
from bifrost_asgi.stores.counters import (
    RESERVATION_TTL,
    Admission,
    Claim,
    CounterState,
    CounterStore,
    Kind,
    Limit,
    MemoryCounterStore,
    admit_states,
    apply_rule,
    read_states,
    shielded,
    shielded_admit,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> float:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC).timestamp()


T0 = utc(2024, 1, 3, 12, 0, 0)  # a Wednesday


def limit(kind: Kind = "requests", maximum: float = 1, window: str = "1h", *, aligned: bool = False) -> Limit:
    return Limit(f"{kind}:{window}:{aligned}:{maximum}", kind, maximum, parse_duration(window), aligned)


# -- stores ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    """How to build a store: picklable, so worker processes can open the same one."""

    kind: str
    target: str = ""  # the SQLite path or the Redis URL
    prefix: str = ""
    ttl: float = RESERVATION_TTL  # counters.reservation_ttl_seconds (the shared stores take it)

    def make(self) -> CounterStore:
        if self.kind == "sqlite":
            from bifrost_asgi.stores.sqlite_counters import SQLiteCounterStore

            return SQLiteCounterStore(self.target, reservation_ttl=self.ttl)
        if self.kind == "redis":
            from bifrost_asgi.stores.redis_counters import RedisCounterStore

            return RedisCounterStore(self.target, prefix=self.prefix, reservation_ttl=self.ttl)
        return MemoryCounterStore()


def _spec(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSpec]:
    if kind != "redis":
        yield StoreSpec(kind, str(tmp_path / "counters.db"))
        return
    url: str = request.getfixturevalue("redis_url")
    spec = StoreSpec("redis", url, f"bifrost-test:{uuid.uuid4().hex}:")
    yield spec
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=spec.prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSpec]:
    yield from _spec(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSpec]:
    """The stores shared between processes."""
    yield from _spec(request.param, request, tmp_path)


@pytest.fixture
async def store(spec: StoreSpec) -> AsyncIterator[CounterStore]:
    made = spec.make()
    yield made
    await made.aclose()


@pytest.fixture
async def shared_store(shared_spec: StoreSpec) -> AsyncIterator[CounterStore]:
    made = shared_spec.make()
    yield made
    await made.aclose()


async def oks(store: CounterStore, claims: list[Claim], now: float, times: int) -> list[bool]:
    return [(await store.admit(claims, now)).ok for _ in range(times)]


async def use(store: CounterStore, claim: Claim, now: float) -> None:
    """Admit and settle ``claim`` for its full amount, so it counts as used."""
    assert (await store.admit([claim], now)).ok
    await store.settle([claim], [claim.amount], now)


# -- blocking rules ----------------------------------------------------------------------------------------

BLOCKING = [
    # kind, max, amounts admitted in turn (nothing settled), which are admitted
    ("requests", 2, [1, 1, 1], [True, True, False]),
    ("requests", 3, [2, 2, 1], [True, False, True]),  # the amount counts: 2 + 2 > 3, 2 + 1 is not
    ("requests", 0, [1], [False]),
    ("tokens", 100, [60, 60, 1], [True, True, False]),  # the request crossing the limit is let through
    ("tokens", 100, [500, 1], [True, False]),
    ("budget", 1.0, [0.6, 0.6, 0.01], [True, True, False]),
    ("budget", 1.0, [0.5, 0.5, 0.0], [True, True, False]),  # reaching the limit exactly blocks (>=)
]


@pytest.mark.parametrize(("kind", "maximum", "amounts", "expected"), BLOCKING)
async def test_blocking_rule_per_kind(
    store: CounterStore, kind: Kind, maximum: float, amounts: list[float], expected: list[bool]
) -> None:
    lim = limit(kind, maximum)
    got = [(await store.admit([Claim(lim, amount)], T0)).ok for amount in amounts]
    assert got == expected


async def test_blocked_admission_names_the_claims_that_block(store: CounterStore) -> None:
    req, tok = Claim(limit("requests", 1), 1), Claim(limit("tokens", 10), 5)
    await use(store, req, T0)
    await use(store, Claim(tok.limit, 10), T0)
    admission = await store.admit([req, Claim(limit("budget", 5.0), 1.0), tok], T0)
    assert admission == Admission(False, (req, Claim(limit("budget", 5.0), 1.0), tok), (req, tok))


async def test_admission_is_all_or_nothing(store: CounterStore) -> None:
    req, tok, bud = (
        Claim(limit("requests", 10), 1),
        Claim(limit("tokens", 100), 40),
        Claim(limit("budget", 2.0), 0.5),
    )
    await use(store, Claim(tok.limit, 100), T0)
    admission = await store.admit([req, tok, bud], T0)
    assert (admission.ok, admission.blocked) == (False, (tok,))
    states = await store.read([req.limit, tok.limit, bud.limit], T0)
    assert [(s.used, s.reserved) for s in states] == [(0, 0), (100, 0), (0, 0)]


async def test_admission_reserves_every_claim(store: CounterStore) -> None:
    claims = [
        Claim(limit("requests", 10), 1),
        Claim(limit("tokens", 100), 40),
        Claim(limit("budget", 2.0), 0.5),
    ]
    assert (await store.admit(claims, T0)).ok
    states = await store.read([c.limit for c in claims], T0)
    assert [(s.used, s.reserved) for s in states] == [(0, 1), (0, 40), (0, 0.5)]


async def test_empty_claim_set_is_admitted(store: CounterStore) -> None:
    assert await store.admit([], T0) == Admission(True, ())
    assert await store.read([], T0) == []


# -- settlement --------------------------------------------------------------------------------------------


async def test_settle_releases_the_reservation_and_adds_actual_usage(store: CounterStore) -> None:
    claims = [
        Claim(limit("requests", 10), 1),
        Claim(limit("tokens", 1000), 500),
        Claim(limit("budget", 2.0), 0.5),
    ]
    assert (await store.admit(claims, T0)).ok
    await store.settle(claims, [1, 123, 0.0375], T0 + 1)
    states = await store.read([c.limit for c in claims], T0 + 2)
    assert [(s.used, s.reserved) for s in states] == [(1, 0), (123, 0), (0.0375, 0)]


async def test_settle_with_zero_only_releases(store: CounterStore) -> None:
    claims = [Claim(limit("requests", 1), 1), Claim(limit("budget", 1.0), 0.9)]
    assert (await store.admit(claims, T0)).ok
    assert not (await store.admit(claims, T0)).ok
    await store.settle(claims, [0, 0], T0)
    states = await store.read([c.limit for c in claims], T0)
    assert [(s.used, s.reserved) for s in states] == [(0, 0), (0, 0)]
    assert (await store.admit(claims, T0)).ok


async def test_a_reservation_never_goes_negative(store: CounterStore) -> None:
    claim = Claim(limit("tokens", 100), 30)
    await store.settle([claim], [5], T0)  # settling what was never reserved (e.g. after failing open)
    [state] = await store.read([claim.limit], T0)
    assert (state.used, state.reserved) == (5, 0)


# -- windows -----------------------------------------------------------------------------------------------

ROLLING = [
    # duration, when a window opened at T0 (Wed 2024-01-03 12:00 UTC) ends
    ("30s", T0 + 30),
    ("1m", T0 + 60),
    ("5m", T0 + 300),
    ("1h", T0 + 3600),
    ("1d", T0 + 86400),
    ("1w", T0 + 7 * 86400),
    ("1M", utc(2024, 2, 3, 12)),
    ("1Y", utc(2025, 1, 3, 12)),
]


@pytest.mark.parametrize(("window", "end"), ROLLING, ids=[w for w, _ in ROLLING])
async def test_rolling_window_resets_when_it_ends(store: CounterStore, window: str, end: float) -> None:
    claim = Claim(limit("requests", 1, window), 1)
    await use(store, claim, T0)
    assert not (await store.admit([claim], end - 0.001)).ok
    [state] = await store.read([claim.limit], end - 0.001)
    assert (state.used, state.start, state.end) == (1, T0, end)
    assert (await store.admit([claim], end)).ok
    [state] = await store.read([claim.limit], end)
    assert (state.used, state.reserved, state.start) == (0, 1, end)


async def test_rolling_window_starts_at_first_use(store: CounterStore) -> None:
    lim = limit("tokens", 10, "1h")
    [state] = await store.read([lim], T0 + 17.25)
    assert (state.used, state.reserved, state.start, state.end) == (0, 0, T0 + 17.25, T0 + 17.25 + 3600)


NOW = utc(2024, 1, 3, 12, 34, 56, us=500_000)  # Wednesday
ALIGNED = [
    # duration, the UTC calendar period around NOW
    ("30s", utc(2024, 1, 3, 12, 34, 30), utc(2024, 1, 3, 12, 35)),
    ("1m", utc(2024, 1, 3, 12, 34), utc(2024, 1, 3, 12, 35)),
    ("5m", utc(2024, 1, 3, 12, 30), utc(2024, 1, 3, 12, 35)),
    ("1h", utc(2024, 1, 3, 12), utc(2024, 1, 3, 13)),
    ("1d", utc(2024, 1, 3), utc(2024, 1, 4)),  # UTC midnight
    ("1w", utc(2024, 1, 1), utc(2024, 1, 8)),  # Monday
    ("1M", utc(2024, 1, 1), utc(2024, 2, 1)),  # the 1st
    ("1Y", utc(2024, 1, 1), utc(2025, 1, 1)),
]


@pytest.mark.parametrize(("window", "start", "end"), ALIGNED, ids=[w for w, _, _ in ALIGNED])
async def test_calendar_aligned_window_follows_utc_boundaries(
    store: CounterStore, window: str, start: float, end: float
) -> None:
    claim = Claim(limit("requests", 1, window, aligned=True), 1)
    await use(store, claim, NOW)
    [state] = await store.read([claim.limit], NOW)
    assert (state.used, state.start, state.end) == (1, start, end)
    assert not (await store.admit([claim], end - 0.001)).ok
    assert (await store.admit([claim], end)).ok
    [state] = await store.read([claim.limit], end)
    assert (state.used, state.reserved, state.start) == (0, 1, end)


async def test_an_aligned_window_counts_use_at_its_first_instant(store: CounterStore) -> None:
    claim = Claim(limit("requests", 1, "1d", aligned=True), 1)
    midnight = utc(2024, 1, 3)
    await use(store, claim, midnight)
    assert not (await store.admit([claim], midnight)).ok  # still the same window, not a new one
    [state] = await store.read([claim.limit], midnight)
    assert (state.used, state.start, state.end) == (1, midnight, utc(2024, 1, 4))


async def test_settling_needs_one_amount_per_claim(store: CounterStore) -> None:
    claim = Claim(limit("tokens", 100, "1h"), 10)
    assert (await store.admit([claim], T0)).ok
    with pytest.raises(ValueError):
        await store.settle([claim], [], T0)


async def test_aligned_window_resets_when_the_clock_goes_back(store: CounterStore) -> None:
    claim = Claim(limit("requests", 1, "1d", aligned=True), 1)
    await use(store, claim, NOW)
    [state] = await store.read([claim.limit], NOW - 86400)
    assert (state.used, state.start, state.end) == (0, utc(2024, 1, 2), utc(2024, 1, 3))


async def test_reservations_survive_a_window_reset(store: CounterStore) -> None:
    claim = Claim(limit("tokens", 100, "1m"), 70)
    await use(store, Claim(claim.limit, 20), T0)
    assert (await store.admit([claim], T0 + 1)).ok
    [state] = await store.read([claim.limit], T0 + 60)
    assert (state.used, state.reserved, state.start) == (0, 70, T0 + 60)
    await store.settle([claim], [90], T0 + 61)  # the in-flight request lands in the new window
    [state] = await store.read([claim.limit], T0 + 62)
    assert (state.used, state.reserved) == (90, 0)


# -- concurrency -------------------------------------------------------------------------------------------

REQUEST_LIMIT = limit("requests", 50, "1h")
BIG_TOKENS = limit("tokens", 1e9, "1d", aligned=True)
BIG_BUDGET = limit("budget", 1e6, "1M")
CLAIMS = [Claim(REQUEST_LIMIT, 1), Claim(BIG_TOKENS, 1000), Claim(BIG_BUDGET, 0.01)]


async def admit_concurrently(store: CounterStore, count: int) -> int:
    admissions = await asyncio.gather(*(store.admit(CLAIMS, T0) for _ in range(count)))
    return sum(a.ok for a in admissions)


async def test_200_concurrent_admissions_in_one_loop_admit_exactly_50(store: CounterStore) -> None:
    assert await admit_concurrently(store, 200) == 50
    [state] = await store.read([REQUEST_LIMIT], T0)
    assert state.reserved == 50


def _worker(spec: StoreSpec, start: Barrier, results: Queue[int | str]) -> None:
    """One worker process: open the store, wait for the others, then fire 50 admissions at once."""

    async def run() -> int:
        store = spec.make()
        try:
            await store.read([limit("tokens", 1, "1m")], T0)  # connect (and create the table) before the race
            start.wait(timeout=60)
            return await admit_concurrently(store, 50)
        finally:
            await store.aclose()

    try:
        results.put(asyncio.run(run()))
    except BaseException as exc:  # reported to the test instead of dying silently
        results.put(repr(exc))


def test_200_admissions_from_4_processes_admit_exactly_50(shared_spec: StoreSpec) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(shared_spec, start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        admitted = [results.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert all(isinstance(n, int) for n in admitted), admitted
    assert sum(n for n in admitted if isinstance(n, int)) == 50
    [state] = asyncio.run(_read(shared_spec, REQUEST_LIMIT))
    assert state.reserved == 50


async def _read(spec: StoreSpec, lim: Limit) -> list[CounterState]:
    store = spec.make()
    try:
        return await store.read([lim], T0)
    finally:
        await store.aclose()


async def test_concurrent_budget_is_exceeded_by_at_most_one_request(store: CounterStore) -> None:
    budget = limit("budget", 1.00, "1M")

    async def request() -> bool:
        claim = Claim(budget, 0.10)
        admission = await store.admit([claim], T0)
        if admission.ok:
            await asyncio.sleep(0)  # let other admissions interleave with the response
            await store.settle([claim], [0.10], T0)
        return admission.ok

    admitted = sum(await asyncio.gather(*(request() for _ in range(100))))
    [state] = await store.read([budget], T0)
    assert 1.00 - 1e-9 <= state.used <= 1.00 + 0.10 + 1e-9
    assert state.used == pytest.approx(admitted * 0.10)
    assert state.reserved == pytest.approx(0, abs=1e-9)


async def test_a_cancelled_admission_leaves_no_reservation(shared_store: CounterStore) -> None:
    lim = limit("requests", 1000)
    await shared_store.read([lim], T0)  # connected, so round trips are short and cancels land inside them
    tasks = []
    for i in range(300):  # each cancelled a few loop steps later than the last: before, during, after
        task = asyncio.create_task(shared_store.admit([Claim(lim, 1)], T0))
        for _ in range(i % 30):
            await asyncio.sleep(0)
        task.cancel()
        tasks.append(task)
    await asyncio.gather(*tasks, return_exceptions=True)
    finished = sum(1 for t in tasks if not t.cancelled() and t.result().ok)
    assert finished < len(tasks)  # some admissions were really cut short
    for _ in range(200):  # releases run in the background once each cut-short admission has finished
        [state] = await shared_store.read([lim], T0)
        if state.reserved == finished:
            break
        await asyncio.sleep(0.01)
    assert (state.used, state.reserved) == (0, finished)  # released, never charged: nothing was served


# -- a caller cancelled mid-operation (the helpers stores that work outside the caller's task use) ---------


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """What reaches the event loop's exception handler: errors in callbacks, exceptions never retrieved."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    gc.collect()  # a task whose exception was never retrieved reports it when collected
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert errors == []


async def _cancel_while_waiting(operation: Awaitable[object], gate: asyncio.Event) -> None:
    caller = asyncio.ensure_future(operation)
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("fails", [False, True])
async def test_shielded_work_finishes_after_its_caller_is_cancelled(
    loop_errors: list[dict[str, object]], fails: bool
) -> None:
    gate, finished = asyncio.Event(), []

    async def settle() -> None:
        await gate.wait()
        finished.append(True)
        if fails:
            raise ValueError("the store failed")  # nobody awaits it now: it must not be reported as lost

    await _cancel_while_waiting(shielded(settle()), gate)
    assert finished == [True]


ADMITTED = Admission(True, (Claim(limit(), 1),))


@pytest.mark.parametrize(
    ("outcome", "released"),
    [("admitted", [ADMITTED]), ("refused", []), ("failed", []), ("cancelled", [])],
)
async def test_an_admission_granted_to_a_cancelled_caller_is_released(
    loop_errors: list[dict[str, object]], outcome: str, released: list[Admission]
) -> None:
    gate, release_gate, releases = asyncio.Event(), asyncio.Event(), []

    async def admit() -> Admission:
        await gate.wait()
        if outcome == "failed":
            raise ValueError("the store failed")
        if outcome == "cancelled":
            raise asyncio.CancelledError
        return ADMITTED if outcome == "admitted" else Admission(False)

    async def release(admission: Admission) -> None:
        await release_gate.wait()
        releases.append(admission)

    await _cancel_while_waiting(shielded_admit(admit(), release), gate)
    pending = set(counters_module._releases)
    assert len(pending) == len(released) and all(isinstance(t, asyncio.Task) for t in pending)
    release_gate.set()
    await asyncio.gather(*pending)
    await asyncio.sleep(0)
    assert releases == released
    assert counters_module._releases == set()  # the reference is dropped once the release is done


def test_apply_rule_reports_exactly_the_counters_a_rule_changed() -> None:
    """What a database store saves (`TransactionalCounterStore`): changed rows, held slots included."""
    lim, other = limit("budget", 10, "1d"), limit("tokens", 1000, "1d")
    states: dict[str, CounterState] = {}
    # A model without a price: its budget claim reserves $0, yet holds a slot like any other.
    admission, changed = apply_rule(states, lambda st: admit_states(st, [Claim(lim, 0.0, at=T0)], T0))
    assert admission.ok and list(changed) == [lim.key]
    _, changed = apply_rule(states, lambda st: read_states(st, [lim], T0 + 1))
    assert changed == {}  # a read inside the window changes nothing: nothing to save
    _, changed = apply_rule(states, lambda st: read_states(st, [lim, other], T0 + RESERVATION_TTL * 2))
    assert list(changed) == [lim.key, other.key]  # the expired slot is gone; the other counter is new
    assert states[lim.key].held == {}


# -- every store computes exactly what the memory store computes -------------------------------------------

POOL = [
    limit("requests", 5, "1m"),
    limit("requests", 3, "30s", aligned=True),
    limit("tokens", 1000, "1h", aligned=True),
    limit("tokens", 5000, "1Y"),
    limit("budget", 2.5, "1M"),
    limit("budget", 1.7, "1w", aligned=True),
]
STEPS = [0, 0, 0.25, 7, 29.9, 61, 3599, 3 * 86400, 40 * 86400, -3600]


def _amount(rng: random.Random, lim: Limit) -> float:
    if lim.kind == "requests":
        return 1
    if lim.kind == "tokens":
        return rng.randrange(0, 400)
    return rng.random() * 0.37  # not representable in decimal: stresses exact transport of floats


async def _replay(store: CounterStore, seed: int) -> list[object]:
    rng, now, outcomes = random.Random(seed), T0, list[object]()
    admitted: list[list[Claim]] = []
    for _ in range(300):
        now += rng.choice(STEPS)
        op = rng.random()
        if op < 0.55:
            # Tracked (held by admission time, so they can expire) or untracked, as stores may be given both.
            at = now if rng.random() < 0.5 else 0.0
            claims = [Claim(lim, _amount(rng, lim), at) for lim in rng.choices(POOL, k=rng.randint(1, 3))]
            admission = await store.admit(claims, now)
            outcomes.append(admission)
            if admission.ok:
                admitted.append(claims)
        elif op < 0.85 and admitted:
            claims = admitted.pop(rng.randrange(len(admitted)))
            actual = [0.0 if rng.random() < 0.2 else _amount(rng, c.limit) for c in claims]
            await store.settle(claims, actual, now)
        else:
            outcomes.append(await store.read(POOL, now))
    outcomes.append(await store.read(POOL, now))
    return outcomes


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_shared_stores_match_the_memory_store_exactly(shared_store: CounterStore, seed: int) -> None:
    expected = await _replay(MemoryCounterStore(), seed)
    assert await _replay(shared_store, seed) == expected


# -- store specifics ---------------------------------------------------------------------------------------


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    from bifrost_asgi.stores.sqlite_counters import SQLiteCounterStore

    store = SQLiteCounterStore(str(tmp_path / "c.db"))
    await store.read([limit()], T0)
    await store.aclose()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_fails_closed_when_the_lock_is_held_too_long(tmp_path: Path) -> None:
    from bifrost_asgi.stores.sqlite_counters import SQLiteCounterStore

    store = SQLiteCounterStore(str(tmp_path / "c.db"), busy_timeout_s=0.05)
    await store.read([limit()], T0)
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with pytest.raises(BifrostError) as caught:
            await store.admit([Claim(limit(), 1)], T0)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (caught.value.status_code, caught.value.error_type) == (503, "governance_store_unavailable")
    assert (await store.admit([Claim(limit(), 1)], T0)).ok  # and recovers once the lock is free
    await store.aclose()


async def test_redis_counters_expire_after_their_window(redis_url: str) -> None:
    import redis

    from bifrost_asgi.stores.redis_counters import RedisCounterStore

    prefix = f"bifrost-test:{uuid.uuid4().hex}:"
    store = RedisCounterStore(redis_url, prefix=prefix)
    lim = limit("requests", 5, "1m")
    assert (await store.admit([Claim(lim, 1)], T0)).ok  # a clock far from the real one: the TTL is relative
    await store.aclose()
    client = redis.Redis.from_url(redis_url)
    try:
        ttl_ms = client.pttl(prefix + lim.key)
        client.delete(prefix + lim.key)
    finally:
        client.close()
    assert 60_000 < ttl_ms <= (60 + 3600) * 1000


UNREACHABLE = "redis://user:s3cret-pw@127.0.0.1:1/0"


async def test_unreachable_redis_fails_closed_with_503() -> None:
    from bifrost_asgi.stores.redis_counters import RedisCounterStore

    store = RedisCounterStore(UNREACHABLE)
    with pytest.raises(BifrostError) as caught:
        await store.admit([Claim(limit(), 1)], T0)
    error = caught.value
    assert (error.status_code, error.error_type) == (503, "governance_store_unavailable")
    assert error.message.startswith("governance store unavailable: ") and "s3cret" not in error.message
    with pytest.raises(BifrostError):
        await store.settle([Claim(limit(), 1)], [1], T0)
    await store.aclose()


async def test_unreachable_redis_fails_open_when_configured(caplog: pytest.LogCaptureFixture) -> None:
    from bifrost_asgi.stores.redis_counters import RedisCounterStore

    store = RedisCounterStore(UNREACHABLE, fail_open=True)
    claim = Claim(limit(), 1)
    with caplog.at_level(logging.WARNING, logger="bifrost_asgi.governance"):
        assert await store.admit([claim], T0) == Admission(True, ())  # nothing reserved, nothing to settle
        assert (await store.admit([claim], T0)).ok
        await store.settle([claim], [1], T0)
        assert await store.read([claim.limit], T0) == [CounterState()]
    assert len(caplog.records) == 1  # at most one warning a minute, not one per request
    assert "s3cret" not in caplog.text
    await store.aclose()
