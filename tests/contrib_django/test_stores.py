"""The ORM stores against the core's references: counters compute exactly what the memory store
computes, log search answers exactly what the SQLite log store answers, keys round-trip unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

from django.contrib.auth.models import User  # noqa: E402

from bifrost_asgi.errors import BifrostError  # noqa: E402
from bifrost_asgi.governance.models import Budget, Customer, ProviderRule, RateLimit, Team, VirtualKey  # noqa: E402
from bifrost_asgi.stores.counters import Claim, MemoryCounterStore  # noqa: E402
from bifrost_asgi.stores.logs import LogRecord  # noqa: E402
from bifrost_asgi.stores.sqlite_logs import SQLiteLogStore  # noqa: E402
from bifrost_django.models import Counter, UsageLog  # noqa: E402
from bifrost_django.models import VirtualKey as KeyRow  # noqa: E402
from bifrost_django.owners import UserDirectory  # noqa: E402
from bifrost_django.stores import ORMCounterStore, ORMKeyStore, ORMLogStore  # noqa: E402
from tests.governance.test_counter_stores import REQUEST_LIMIT, T0, _replay, admit_concurrently, limit  # noqa: E402

# The stores work on their own threads, outside any test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


# -- counters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_orm_counters_match_the_memory_store_exactly(seed: int) -> None:
    expected = await _replay(MemoryCounterStore(), seed)
    assert await _replay(ORMCounterStore(), seed) == expected


async def test_200_concurrent_admissions_admit_exactly_50() -> None:
    store = ORMCounterStore()
    assert await admit_concurrently(store, 200) == 50
    [state] = await store.read([REQUEST_LIMIT], T0)
    assert state.reserved == 50


async def test_a_cancelled_admission_leaves_no_reservation() -> None:
    store, lim = ORMCounterStore(), limit("requests", 1000)
    await store.read([lim], T0)
    tasks = [asyncio.create_task(store.admit([Claim(lim, 1)], T0)) for _ in range(40)]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    finished = sum(1 for t in tasks if not t.cancelled() and t.result().ok)
    assert finished < len(tasks)
    for _ in range(200):  # cut-short admissions are released in the background once they finish
        [state] = await store.read([lim], T0)
        if state.reserved == finished:
            break
        await asyncio.sleep(0.01)
    assert state.reserved == finished


async def test_counters_are_rows_keyed_like_the_core() -> None:
    await ORMCounterStore().admit([Claim(REQUEST_LIMIT, 1)], T0)
    row = await Counter.objects.aget(key=REQUEST_LIMIT.key)
    assert (row.used, row.reserved, row.start) == (0.0, 1.0, T0)


async def test_counters_deleted_by_hand_are_made_again() -> None:
    """The store remembers which rows exist (it skips a query for them); a row deleted since, say to
    reset a limit by hand, is made again on the next admission, not updated into nothing."""
    store = ORMCounterStore()
    assert (await store.admit([Claim(REQUEST_LIMIT, 1)], T0)).ok
    await Counter.objects.all().adelete()
    assert (await store.admit([Claim(REQUEST_LIMIT, 1)], T0)).ok
    row = await Counter.objects.aget(key=REQUEST_LIMIT.key)
    assert (row.used, row.reserved) == (0.0, 1.0)


# -- keys, teams, customers ----------------------------------------------------------------------------


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw")


def a_key(owner: User | None, **fields: Any) -> VirtualKey:
    rule = ProviderRule(provider="openai", allowed_models=("gpt-4o-mini",), budgets=(Budget(max_limit=2.5),))
    record: dict[str, Any] = {
        "id": "vk-1",
        "name": "ci",
        "description": "for CI",
        "owner": None if owner is None else str(owner.pk),
        "provider_configs": (rule,),
        "budgets": (Budget(max_limit=10, reset_duration="1w", calendar_aligned=True),),
        "rate_limit": RateLimit(request_max_limit=60, request_reset_duration="1m"),
        "key_prefix": "abcdefgh",
        "key_hash": "0" * 64,
        "created_at": 1_741_608_000.5,
        "expires_at": 1_800_000_000.25,
    }
    return VirtualKey.model_validate({**record, **fields})


async def test_a_key_round_trips_unchanged(alice: User) -> None:
    store, key = ORMKeyStore(), a_key(alice)
    await store.put(key)
    assert await store.get("vk-1") == key
    assert await store.by_prefix("abcdefgh") == [key]
    assert await store.by_prefix("other") == []
    assert await store.list_keys(str(alice.pk)) == [key]
    assert await store.list_keys("999999") == [] and await store.list_keys("not-a-pk") == []
    assert await store.list_keys() == [key]


async def test_a_stored_revocation_survives_a_stale_write(alice: User) -> None:
    store = ORMKeyStore()
    await store.put(a_key(alice, revoked_at=1_741_608_100.0, is_active=False))
    await store.put(a_key(alice, name="renamed"))  # written from a record read before the revocation
    stored = await store.get("vk-1")
    assert stored is not None and stored.name == "renamed"
    assert (stored.revoked_at, stored.is_active) == (1_741_608_100.0, False)


async def test_an_unknown_owner_is_a_400_naming_it() -> None:
    with pytest.raises(BifrostError) as refused:
        await ORMKeyStore().put(a_key(None).model_copy(update={"owner": "424242"}))
    assert refused.value.status_code == 400
    assert "owner" in refused.value.message
    assert not await KeyRow.objects.aexists()


async def test_teams_and_customers_round_trip() -> None:
    store = ORMKeyStore()
    customer = Customer(id="c1", name="Acme", budgets=(Budget(max_limit=100),))
    team = Team(id="t1", name="ML", customer_id="c1", budgets=(Budget(max_limit=5, reset_duration="1d"),))
    await store.put_customer(customer)
    await store.put_team(team)
    assert await store.customer("c1") == customer and await store.team("t1") == team
    assert await store.team("nope") is None and await store.customer("nope") is None


async def test_the_owner_directory_follows_is_active(alice: User) -> None:
    users = UserDirectory()
    assert await users.is_active(str(alice.pk))
    alice.is_active = False
    await alice.asave()
    assert not await users.is_active(str(alice.pk))
    assert not await users.is_active("999999")
    assert not await users.is_active("not-a-pk")


# -- usage logs ----------------------------------------------------------------------------------------


def records(u1: str, u2: str) -> list[LogRecord]:
    base = 1_741_608_000.0
    rows = [
        # provider, model, owner, key, status, stream, tokens, cost, latency
        ("openai", "gpt-4o-mini", u1, "vk-1", "success", False, 17, 0.25, 120),
        ("openai", "gpt-4o", u1, "vk-1", "success", True, 40, 1.5, 300),
        ("mock", "mock-1", u2, "vk-2", "success", False, 27, 0.0, 5),
        ("openai", "gpt-4o-mini", u2, "vk-2", "error", False, 0, None, 900),
        ("openai", "gpt-4o-mini", None, None, "success", False, 17, None, 80),
        ("groq", "llama", u1, "vk-1", "success", True, 17, 0.25, 120),
    ]
    return [
        LogRecord(id=f"req-{i}", timestamp=base + i * 60.5, object="chat" if i % 2 else "responses",
                  provider=p, model=m, requested_model=f"{p}/{m}", owner=o, virtual_key_id=k,
                  virtual_key_name=k and f"name-{k}", team_id="t1" if o == u1 else None,
                  selected_key_name="primary", status=s, status_code=200 if s == "success" else 502,
                  error_type=None if s == "success" else "upstream_error", stream=st,
                  input_tokens=t // 2, output_tokens=t - t // 2, total_tokens=t, cost=c, latency=lat)
        for i, (p, m, o, k, s, st, t, c, lat) in enumerate(rows)
    ]  # fmt: skip


QUERIES: list[dict[str, list[str]]] = [
    {},
    {"providers": ["openai,mock"]},
    {"providers": ["openai"], "models": ["gpt-4o-mini"]},
    {"status": ["error"]},
    {"objects": ["responses"]},
    {"virtual_key_ids": ["vk-2"]},
    {"team_ids": ["t1"]},
    {"selected_key_ids": ["primary"]},
    {"start_time": ["2025-03-10T12:02:00Z"], "end_time": ["1741608250"]},
    {"min_latency": ["100"], "max_latency": ["300"]},
    {"min_tokens": ["17"], "max_tokens": ["30"]},
    {"min_cost": ["0.25"]},
    {"max_cost": ["0.3"]},
    {"missing_cost_only": ["true"]},
    {"limit": ["2"], "offset": ["1"]},
    {"limit": ["1000"], "offset": ["-4"]},
    {"content_search": ["anything"], "unknown": ["x"]},
] + [
    {"sort_by": [column], "order": [order]}
    for column in ("timestamp", "latency", "tokens", "cost")
    for order in ("asc", "desc")
]
BAD_QUERIES: list[dict[str, list[str]]] = [
    {"limit": ["x"]},
    {"sort_by": ["model"]},
    {"order": ["sideways"]},
    {"min_cost": ["nan"]},
    {"start_time": ["yesterday"]},
    {"missing_cost_only": ["maybe"]},
]


@pytest.fixture
def users() -> tuple[str, str]:
    u1 = User.objects.create_user("u1", password="pw")
    u2 = User.objects.create_user("u2", password="pw")
    for key_id, owner in (("vk-1", u1), ("vk-2", u2)):
        KeyRow.objects.create(
            id=key_id, name=f"name-{key_id}", owner=owner, prefix=key_id, hashed_key="0" * 64
        )
    return str(u1.pk), str(u2.pk)


async def test_log_search_answers_exactly_as_the_reference(users: tuple[str, str], tmp_path: Path) -> None:
    reference, orm = SQLiteLogStore(str(tmp_path / "logs.db")), ORMLogStore()
    for store in (reference, orm):
        await store.write(records(*users))
    queries = [*QUERIES, {"user_ids": [users[0]]}, {"user_ids": [f"{users[1]},not-a-pk"]}]
    for query in queries:
        assert await orm.search(query) == await reference.search(query), query
    for query in BAD_QUERIES:
        with pytest.raises(BifrostError) as expected:
            await reference.search(query)
        with pytest.raises(BifrostError) as got:
            await orm.search(query)
        assert (got.value.status_code, got.value.message) == (
            expected.value.status_code,
            expected.value.message,
        )


async def test_a_log_outlives_its_user_and_key(users: tuple[str, str]) -> None:
    await User.objects.filter(pk=users[1]).adelete()  # deletes u2's key too
    await ORMLogStore().write(records(*users))
    rows = [row async for row in UsageLog.objects.filter(virtual_key_name="name-vk-2")]
    assert len(rows) == 2
    assert all(row.owner_id is None and row.virtual_key_id is None for row in rows)
