"""config.json's teams and customers (spec §14) seed their budgets and rate limits, by the budgets that
name them and the ids they name, with the ids config.json gives; a record that repeats a budget window,
or names what is not declared, stops startup with an error naming it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bifrost_asgi.governance.build import seed
from bifrost_asgi.governance.config import GovernanceConfig, SeedError
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.stores import MemoryCounterStore, MemoryKeyStore


class FixedClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


RATE = {"id": "rl", "request_max_limit": 5, "request_reset_duration": "1m"}


async def seeded(**governance: Any) -> Governance:
    gov = Governance(MemoryKeyStore(), MemoryCounterStore(), PricingTable.default())
    await seed(gov, GovernanceConfig.model_validate(governance))
    return gov


async def test_teams_and_customers_get_their_budgets_and_rate_limits() -> None:
    gov = await seeded(
        customers=[{"id": "c1", "name": "Acme", "budget_id": "b-c", "rate_limit_id": "rl"}],
        teams=[{"id": "t1", "customer_id": "c1", "rate_limit_id": "rl"}],
        rate_limits=[RATE],
        budgets=[{"id": "b-c", "max_limit": 100}, {"id": "b-t", "max_limit": 10, "reset_duration": "1d",
                                                    "team_id": "t1"}],
    )  # fmt: skip
    customer, team = await gov.keys.customer("c1"), await gov.keys.team("t1")
    assert customer is not None and team is not None
    assert [(b.id, b.max_limit) for b in customer.budgets] == [("b-c", 100)]
    assert [(b.id, b.reset_duration) for b in team.budgets] == [("b-t", "1d")]
    assert customer.rate_limit is not None and customer.rate_limit.id == "rl"
    assert team.rate_limit is not None and team.rate_limit.request_max_limit == 5 and team.customer_id == "c1"
    gov.clock = FixedClock(team.created_at + 3600)  # a restart an hour later seeds again...
    await seed(gov, GovernanceConfig.model_validate({"teams": [{"id": "t1"}]}))
    reseeded = await gov.keys.team("t1")
    assert reseeded is not None and reseeded.created_at == team.created_at  # ...and keeps the creation time


@pytest.mark.parametrize(
    ("governance", "problem"),
    [
        ({"teams": [{"id": "t1"}], "budgets": [{"id": "a", "max_limit": 1, "team_id": "t1"},
                                               {"id": "b", "max_limit": 2, "team_id": "t1"}]},
         "governance.teams[t1]: duplicate reset_duration in budgets: 1M"),
        ({"customers": [{"id": "c1", "budget_id": "nope"}]},
         "governance.customers[c1]: unknown budget_id 'nope'"),
        ({"teams": [{"id": "t1", "rate_limit_id": "nope"}]}, "governance.teams[t1]: rate_limit_id 'nope'"),
    ],
)  # fmt: skip
async def test_an_inconsistent_declaration_names_itself(governance: dict[str, Any], problem: str) -> None:
    with pytest.raises(SeedError, match=re.escape(problem)):
        await seeded(**governance)
