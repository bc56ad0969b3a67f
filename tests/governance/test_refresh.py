"""The governance lookup cache (governance/refresh.py, and the engine's use of it): while traffic flows
no request waits on a store lookup, yet nothing is served past its TTL, so a change made elsewhere applies
within it, and one made through this process at once."""

from __future__ import annotations

import asyncio

import pytest

from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import Budget, Team, VirtualKey
from bifrost_asgi.governance.refresh import Refreshing
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.stores.counters import MemoryCounterStore
from bifrost_asgi.stores.keys import MemoryKeyStore

TTL = 0.2


class Store:
    def __init__(self) -> None:
        self.value = "v1"
        self.loads = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def load(self, key: str) -> str:
        self.loads += 1
        read = f"{key}={self.value}"  # what the store held when the query ran
        if self.gate is not None:
            await self.gate.wait()  # ...and the answer arrives later
        if self.fail:
            raise RuntimeError("store down")
        return read


async def test_concurrent_misses_share_one_load() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    assert await asyncio.gather(*(cache.get("k") for _ in range(20))) == ["k=v1"] * 20
    assert store.loads == 1


async def test_an_entry_late_in_its_life_is_answered_at_once_and_refreshed_in_the_background() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    await cache.get("k")
    store.value, store.gate = "v2", asyncio.Event()  # the store changed, and now answers slowly
    await asyncio.sleep(TTL * 0.8)
    answers = [await asyncio.wait_for(cache.get("k"), 0.05) for _ in range(5)]  # nobody waits
    assert answers == ["k=v1"] * 5 and store.loads == 2  # one refresh for all of them
    store.gate.set()
    await asyncio.sleep(0.01)
    assert await cache.get("k") == "k=v2"


async def test_nothing_is_served_past_its_ttl() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    await cache.get("k")
    store.value = "v2"  # changed in another process; nobody read the entry in its last quarter
    await asyncio.sleep(TTL * 1.05)
    assert await cache.get("k") == "k=v2"  # loaded on the request's path, not the old value


async def test_a_load_that_started_before_forget_does_not_store_what_it_read() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    store.gate = asyncio.Event()
    pending = asyncio.ensure_future(cache.get("k"))  # reads v1...
    while store.loads == 0:
        await asyncio.sleep(0)
    cache.forget("k")  # ...while this process changes the record
    store.value = "v2"
    store.gate.set()
    assert await pending == "k=v1"  # its caller asked before the change
    assert await cache.get("k") == "k=v2"  # the stale read was not kept


async def test_a_failed_background_refresh_reaches_a_request_once_the_entry_runs_out() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    await cache.get("k")
    store.fail = True
    await asyncio.sleep(TTL * 0.8)
    assert await cache.get("k") == "k=v1"  # still valid: answered, and the refresh fails quietly
    await asyncio.sleep(TTL * 0.3)
    with pytest.raises(RuntimeError, match="store down"):
        await cache.get("k")


async def test_forgetting_one_entry_leaves_the_loads_of_others_alone() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    store.gate = asyncio.Event()
    a, b = asyncio.ensure_future(cache.get("a")), asyncio.ensure_future(cache.get("b"))
    while store.loads < 2:
        await asyncio.sleep(0)
    cache.forget("a")
    store.gate.set()
    assert list(await asyncio.gather(a, b)) == ["a=v1", "b=v1"]
    assert await cache.get("b") == "b=v1" and store.loads == 2  # b's load was kept
    assert await cache.get("a") == "a=v1" and store.loads == 3  # a's was not


async def test_closing_stops_the_loads_still_running() -> None:
    store = Store()
    cache = Refreshing(TTL, store.load)
    store.gate = asyncio.Event()  # never set: a store that hangs
    waiting = asyncio.ensure_future(cache.get("k"))
    while store.loads == 0:
        await asyncio.sleep(0)
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not cache._tasks


async def test_a_team_changed_while_a_keys_owners_are_read_is_not_cached_stale() -> None:
    class SlowTeams(MemoryKeyStore):
        gate: asyncio.Event | None = None

        async def team(self, team_id: str) -> Team | None:
            found = await super().team(team_id)  # read now...
            if self.gate is not None:
                await self.gate.wait()  # ...answered later
            return found

    keys = SlowTeams()
    gov = Governance(keys, MemoryCounterStore(), PricingTable.default(), cache_ttl=60)
    try:
        await keys.put_team(Team(id="t", budgets=(Budget(max_limit=1, reset_duration="1h"),)))
        key = VirtualKey(id="k", name="k", team_id="t", allow_all_providers=True)
        keys.gate = asyncio.Event()
        reading = asyncio.ensure_future(gov.owners(key))
        await asyncio.sleep(0.01)
        # Changed through this process meanwhile: it must apply at once, as documented.
        await keys.put_team(Team(id="t", budgets=(Budget(max_limit=0.5, reset_duration="1h"),)))
        gov.forget_record("team", "t")
        keys.gate.set()
        assert (await reading).team is not None  # the read that was under way used what it read
        keys.gate = None
        owners = await gov.owners(key)
        assert owners.team is not None and owners.team.budgets[0].max_limit == 0.5
    finally:
        await gov.aclose()
