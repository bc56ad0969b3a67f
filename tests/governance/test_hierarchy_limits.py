"""Budgets and rate limits above a key — its team's, its customer's, its provider's — are shared by every
key under them and hold exactly under concurrency, like a key's own: 200 simultaneous requests against a
budget worth 50 of them see exactly 50 admitted, on every counter store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.errors import BifrostError
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import Budget, ProviderRule, Team, VirtualKey
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.stores import MemoryCounterStore, MemoryKeyStore
from tests.governance._admin_gateway import CHAT, PRICING, REQUEST_COST

KEYS = ["sk-bf-" + c * 43 for c in "pqrs"]
FIFTY_REQUESTS = 50 * REQUEST_COST


def hierarchy(shared_by: str) -> dict[str, Any]:
    """Four keys whose only limit is one budget worth 50 requests, held by their team or their customer
    (the keys spread over two teams)."""
    team_of = ["t1", "t1", "t2", "t2"] if shared_by == "customer" else ["t1"] * 4
    keys = [{"id": f"vk{i}", "name": f"k{i}", "value": value, "team_id": team, "allow_all_providers": True}
            for i, (value, team) in enumerate(zip(KEYS, team_of, strict=True))]  # fmt: skip
    owner = {"team_id": "t1"} if shared_by == "team" else {"customer_id": "c1"}
    return {
        "virtual_keys": keys,
        "teams": [{"id": "t1", "customer_id": "c1"}, {"id": "t2", "customer_id": "c1"}],
        "customers": [{"id": "c1"}],
        "budgets": [{"id": "b1", "max_limit": FIFTY_REQUESTS, "reset_duration": "1h", **owner}],
    }


def config(counters: dict[str, Any], path: Path, shared_by: str) -> dict[str, Any]:
    return {
        "providers": {"mock": {}},
        "pricing_overrides": PRICING,
        "governance": {
            "store": {"type": "sqlite", "path": str(path / "bifrost.db")},
            "counters": counters,
            **hierarchy(shared_by),
        },  # fmt: skip
    }


def counters_for(kind: str, redis_url: Callable[[], str]) -> dict[str, Any]:
    if kind == "redis":
        return {"type": "redis", "url": redis_url(), "prefix": f"bifrost-test-{uuid.uuid4().hex}:"}
    return {"type": kind}


async def burst(client: httpx.AsyncClient, n: int) -> list[int]:
    calls = [
        client.post("/v1/chat/completions", json=CHAT, headers={"x-bf-vk": KEYS[i % 4]}) for i in range(n)
    ]
    return [r.status_code for r in await asyncio.gather(*calls)]


@pytest.fixture
def lazy_redis(request: pytest.FixtureRequest) -> Callable[[], str]:
    """The Redis URL, asked for (and skipped without Redis) only by the Redis cases."""
    return lambda: str(request.getfixturevalue("redis_url"))


@pytest.mark.parametrize("shared_by", ["team", "customer"])
@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_a_shared_budget_admits_exactly_its_worth_under_concurrency(
    tmp_path: Path, kind: str, shared_by: str, lazy_redis: Callable[[], str]
) -> None:
    app = create_app(GatewayConfig.from_dict(config(counters_for(kind, lazy_redis), tmp_path, shared_by)))
    limits = httpx.Limits(max_connections=500)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gw", limits=limits, timeout=60
    ) as client:
        codes = await burst(client, 200)
        assert codes.count(200) == 50, codes
        assert codes.count(402) == 150
        assert await burst(client, 4) == [402] * 4  # spent for every key under it
    await app.state.gateway.aclose()


# -- the engine, directly ------------------------------------------------------------------------------


@pytest.fixture
async def engine() -> AsyncIterator[Governance]:
    gov = Governance(MemoryKeyStore(), MemoryCounterStore(), PricingTable.default())
    yield gov
    await gov.aclose()


async def spend(gov: Governance, key: VirtualKey, times: int) -> int:
    """Admit and settle ``times`` requests of $1 each; how many were admitted."""
    admitted = 0
    for _ in range(times):
        try:
            ticket = await gov.admit(key, "openai", "gpt-4o", {"max_output_tokens": 1}, 4)
        except BifrostError:
            continue
        await gov.settle(ticket, ok=True, tokens=1, cost=1.0)
        admitted += 1
    return admitted


async def test_a_record_from_before_unique_windows_claims_its_tightest_budget_once(
    engine: Governance,
) -> None:
    twice = (Budget(max_limit=5, reset_duration="1h"), Budget(max_limit=2, reset_duration="1h"))
    key = VirtualKey(id="legacy", name="legacy", allow_all_providers=True, budgets=twice)
    assert await spend(engine, key, 5) == 2  # one counter, the $2 budget: two $1 requests


async def test_a_teams_budget_change_applies_in_this_process_at_once(engine: Governance) -> None:
    await engine.keys.put_team(Team(id="t", budgets=(Budget(max_limit=1, reset_duration="1h"),)))
    key = VirtualKey(id="k", name="k", team_id="t", provider_configs=(ProviderRule(provider="openai"),))
    assert await spend(engine, key, 2) == 1
    await engine.keys.put_team(Team(id="t", budgets=(Budget(max_limit=3, reset_duration="1h"),)))
    assert await spend(engine, key, 3) == 0  # the engine's cache still holds the old team...
    engine.forget_record("team", "t")  # ...until the management API tells it, as it does on every update
    assert await spend(engine, key, 3) == 2  # the hour's $1 spend was kept: $3 allows two more
