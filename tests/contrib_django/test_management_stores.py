"""The ORM stores behind the management API, against the core's references: teams, customers and
provider limits round-trip and delete as the SQLite key store does (keys detached by the foreign keys),
and the log store scans, deletes and re-prices exactly as the SQLite log store."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("django")

from bifrost_asgi.governance.models import (  # noqa: E402
    Budget,
    Customer,
    ProviderGovernance,
    RateLimit,
    Team,
    VirtualKey,
)
from bifrost_asgi.stores.keys import KeyStore  # noqa: E402
from bifrost_asgi.stores.log_analytics import FILTER_FIELDS, HISTOGRAM_FIELDS  # noqa: E402
from bifrost_asgi.stores.log_query import ids_query, parse_log_query  # noqa: E402
from bifrost_asgi.stores.logs import LogStore  # noqa: E402
from bifrost_asgi.stores.sqlite_keys import SQLiteKeyStore  # noqa: E402
from bifrost_asgi.stores.sqlite_logs import SQLiteLogStore  # noqa: E402
from bifrost_django.stores import ORMKeyStore, ORMLogStore  # noqa: E402

from .test_stores import QUERIES, records  # noqa: E402
from .test_stores import users as users  # noqa: E402 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = RateLimit(id="rl", request_max_limit=5, request_reset_duration="1m")


def both(tmp_path: Path) -> list[KeyStore]:
    return [SQLiteKeyStore(str(tmp_path / "keys.db")), ORMKeyStore()]


async def test_teams_and_customers_list_and_delete_like_the_reference(tmp_path: Path) -> None:
    customer = Customer(id="c1", name="Acme", budgets=(Budget(id="b", max_limit=9),), rate_limit=LIMIT,
                        created_at=1_741_608_000.0)  # fmt: skip
    teams = [Team(id=f"t{i}", name=f"T{i}", customer_id="c1", rate_limit=LIMIT, created_at=1_741_608_000.0)
             for i in range(2)]  # fmt: skip
    for store in both(tmp_path):
        await store.put_customer(customer)
        for team in teams:
            await store.put_team(team)
        assert await store.list_customers() == [customer] and await store.list_teams() == teams
        await store.delete_team("t0")
        await store.delete_team("never-was")  # not an error
        assert await store.list_teams() == teams[1:] and await store.team("t0") is None
        await store.delete_customer("c1")
        assert await store.list_customers() == [] and await store.customer("c1") is None


async def test_deleting_a_team_row_detaches_its_keys() -> None:
    store = ORMKeyStore()
    await store.put_team(Team(id="t1"))
    await store.put(VirtualKey(id="k1", name="k", team_id="t1", key_prefix="p", key_hash="0" * 64))
    await store.delete_team("t1")
    detached = await store.get("k1")
    assert detached is not None and detached.team_id is None


async def test_provider_limits_round_trip_like_the_reference(tmp_path: Path) -> None:
    budget = Budget(id="b1", max_limit=3, reset_duration="1d")
    governed = ProviderGovernance(provider="openai", budgets=(budget,), rate_limit=LIMIT)
    for store in both(tmp_path):
        assert await store.provider_governance("openai") is None
        await store.put_provider_governance(governed)
        await store.put_provider_governance(ProviderGovernance(provider="groq"))
        assert await store.provider_governance("openai") == governed
        assert [g.provider for g in await store.list_provider_governance()] == ["groq", "openai"]
        await store.delete_provider_governance("groq")
        assert await store.list_provider_governance() == [governed]


async def _logs(tmp_path: Path, users: tuple[str, str]) -> list[LogStore]:
    stores: list[LogStore] = [SQLiteLogStore(str(tmp_path / "logs.db")), ORMLogStore()]
    for store in stores:
        await store.write(records(*users))
    return stores


async def test_log_scans_answer_exactly_as_the_reference(users: tuple[str, str], tmp_path: Path) -> None:
    reference, orm = await _logs(tmp_path, users)
    for params in [*QUERIES, {"user_ids": [users[0]]}, {"request_id": ["req-2"]}]:
        query = parse_log_query(params)
        for fields in (HISTOGRAM_FIELDS, FILTER_FIELDS):
            assert await orm.scan(query, fields) == await reference.scan(query, fields), params


async def test_log_deletes_and_new_costs_match_the_reference(users: tuple[str, str], tmp_path: Path) -> None:
    stores = await _logs(tmp_path, users)
    for store in stores:
        assert await store.delete(ids_query(["req-0", "req-9"])) == 1
        assert await store.delete(parse_log_query({"providers": ["groq"]})) == 1
        assert await store.update_costs({"req-1": 2.5, "req-4": 0.125, "nope": 1.0}) == 2
    reference, orm = stores
    everything = {"limit": ["100"], "sort_by": ["timestamp"], "order": ["asc"]}
    assert await orm.search(everything) == await reference.search(everything)
    costs = [log["cost"] for log in (await orm.search(everything))["logs"]]
    assert costs == [2.5, 0.0, None, 0.125]
