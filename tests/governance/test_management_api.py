# ruff: noqa: F401, F811 (fixtures imported from _admin_gateway: pytest passes them by name)
"""Bifrost's governance API beyond virtual keys: teams, customers, budgets, rate limits and provider-level
limits over HTTP, with Bifrost's shapes, messages and status codes, and the limits they set enforced on
inference requests through the same gateway."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.routing import Route

from bifrost_asgi.adapters import is_admin_path
from bifrost_asgi.routes.admin import admin_routes
from tests.governance._admin_gateway import (
    CHAT,
    REQUEST_COST,
    admin,
    chat,
    gateway_of,
    make_admin,
    new_key,
    ok,
)

TEAMS, CUSTOMERS = "/api/governance/teams", "/api/governance/customers"
KEYS, PROVIDERS = "/api/governance/virtual-keys", "/api/governance/providers"
TWO_REQUESTS = 2 * REQUEST_COST


async def new_team(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    team: dict[str, Any] = (await ok(admin.post(TEAMS, json={"name": "ml", **fields})))["team"]
    return team


async def new_customer(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    customer: dict[str, Any] = (await ok(admin.post(CUSTOMERS, json={"name": "acme", **fields})))["customer"]
    return customer


# -- every route is the admin's --------------------------------------------------------------------------


def _routes() -> list[tuple[str, str]]:
    table = admin_routes(lambda: None, auth=None)  # type: ignore[arg-type,return-value]
    routes = [r for r in table if isinstance(r, Route)]
    return [(method, r.path) for r in routes for method in sorted(r.methods or ()) if method != "HEAD"]


def test_the_adapters_gate_every_management_route() -> None:
    paths = {path for _, path in _routes()}
    assert {TEAMS, CUSTOMERS, PROVIDERS + "/{provider}", "/api/logs/histogram/cost/by-dimension"} <= paths
    assert all(is_admin_path(path.replace("{", "").replace("}", "")) for path in paths)


@pytest.mark.parametrize(("method", "path"), _routes())
async def test_every_route_refuses_a_caller_without_the_admin_credentials(
    admin: httpx.AsyncClient, method: str, path: str
) -> None:
    concrete = path.replace("{provider}", "mock").replace("{team_id}", "t").replace("{customer_id}", "c")
    concrete = concrete.replace("{key_id}", "k")
    response = await admin.request(method, concrete, json={"name": "x"}, auth=("admin", "wrong"))
    assert response.status_code == 401 and response.json()["error"]["type"] == "unauthorized"
    assert (await admin.get(TEAMS)).json()["teams"] == []  # nothing was created behind the 401


# -- teams -------------------------------------------------------------------------------------------


async def test_a_team_is_created_read_listed_and_shaped_as_bifrost(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        TEAMS,
        json={"name": "ml", "budgets": [{"max_limit": 5, "reset_duration": "1M"}],
              "rate_limit": {"request_max_limit": 10, "request_reset_duration": "1m"}},
    )  # fmt: skip
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["message"] == "Team created successfully"
    team = body["team"]
    assert team["name"] == "ml" and team["customer_id"] is None and team["virtual_key_count"] == 0
    [budget] = team["budgets"]
    assert budget["id"] and budget["team_id"] == team["id"]
    assert (budget["max_limit"], budget["reset_duration"], budget["current_usage"]) == (5, "1M", 0)
    assert team["rate_limit"]["request_max_limit"] == 10 and team["rate_limit_id"] == team["rate_limit"]["id"]
    assert team["created_at"].endswith("Z")

    got = await ok(admin.get(f"{TEAMS}/{team['id']}"))
    assert got["team"]["budgets"][0]["id"] == budget["id"]
    listed = await ok(admin.get(TEAMS))
    assert listed["count"] == listed["total_count"] == 1 and listed["offset"] == 0
    assert [t["id"] for t in listed["teams"]] == [team["id"]]


async def test_an_older_clients_singular_budget_is_accepted(admin: httpx.AsyncClient) -> None:
    team = await new_team(admin, budget={"max_limit": 7, "reset_duration": "1d"})
    assert [(b["max_limit"], b["reset_duration"]) for b in team["budgets"]] == [(7, "1d")]
    customer = await new_customer(admin, budget={"max_limit": 9, "reset_duration": "1w"})
    assert [(b["max_limit"], b["reset_duration"]) for b in customer["budgets"]] == [(9, "1w")]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "Team name is required"),
        ({"name": ""}, 400, "Team name is required"),
        ({"name": "x", "budget": {"max_limit": -1, "reset_duration": "1d"}}, 400, "budget.max_limit"),
        ({"name": "x", "budgets": [{"max_limit": 1, "reset_duration": "2x"}]}, 400,
         "budgets.0.reset_duration"),
        ({"name": "x", "budgets": [{"max_limit": 1, "reset_duration": "1d"},
                                   {"max_limit": 2, "reset_duration": "1d"}]}, 400,
         "duplicate reset_duration in budgets: 1d"),
        ({"name": "x", "budget": {"max_limit": 1, "reset_duration": "1d"},
          "budgets": [{"max_limit": 1, "reset_duration": "1d"}]}, 400, "either budgets or budget"),
        ({"name": "x", "rate_limit": {"request_max_limit": 0}}, 400, "rate_limit.request_max_limit"),
        ({"name": "x", "customer_id": "nobody"}, 400, "no customer 'nobody'"),
        ({"name": "x", "members": []}, 400, "members"),
    ],
)  # fmt: skip
async def test_invalid_team_bodies_are_refused_with_bifrosts_messages(
    admin: httpx.AsyncClient, body: dict[str, Any], status: int, message: str
) -> None:
    response = await admin.post(TEAMS, json=body)
    assert response.status_code == status and message in response.json()["error"]["message"]
    assert (await ok(admin.get(TEAMS)))["teams"] == []


async def test_unknown_teams_and_customers_are_404s(admin: httpx.AsyncClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        team = await admin.request(method, f"{TEAMS}/nope", json={"name": "x"})
        customer = await admin.request(method, f"{CUSTOMERS}/nope", json={"name": "x"})
        assert (team.status_code, team.json()["error"]["message"]) == (404, "Team not found")
        assert (customer.status_code, customer.json()["error"]["message"]) == (404, "Customer not found")


async def test_a_team_update_changes_only_what_is_sent_and_keeps_spend_in_a_kept_window(
    admin: httpx.AsyncClient,
) -> None:
    team = await new_team(admin, budgets=[{"max_limit": 1, "reset_duration": "1h"},
                                          {"max_limit": 1, "reset_duration": "1d"}])  # fmt: skip
    key = await new_key(admin, team_id=team["id"])
    assert await chat(admin, key["value"]) == 200
    path = f"{TEAMS}/{team['id']}"
    # The 1h budget is dropped and the 1d one raised: the day's spend must survive the edit.
    updated = await ok(admin.put(path, json={"budgets": [{"max_limit": 2, "reset_duration": "1d"}]}))
    assert updated["message"] == "Team updated successfully"
    [day] = updated["team"]["budgets"]
    kept = next(b for b in team["budgets"] if b["reset_duration"] == "1d")
    assert day["id"] == kept["id"] and day["max_limit"] == 2 and day["current_usage"] == REQUEST_COST
    assert updated["team"]["name"] == "ml" and updated["team"]["virtual_key_count"] == 1

    renamed = await ok(admin.put(path, json={"name": "research"}))
    assert renamed["team"]["name"] == "research" and len(renamed["team"]["budgets"]) == 1
    cleared = await ok(admin.put(path, json={"budget": {}, "rate_limit": {"request_max_limit": None}}))
    assert cleared["team"]["budgets"] == [] and cleared["team"]["rate_limit"] is None


async def test_a_team_moves_between_customers_and_detaches_with_an_empty_id(admin: httpx.AsyncClient) -> None:
    acme = await new_customer(admin)
    team = await new_team(admin, customer_id=acme["id"])
    assert team["customer"]["id"] == acme["id"]
    detached = await ok(admin.put(f"{TEAMS}/{team['id']}", json={"customer_id": ""}))
    assert detached["team"]["customer_id"] is None
    listed = await ok(admin.get(TEAMS, params={"customer_id": acme["id"]}))
    assert listed["teams"] == []


async def test_deleting_a_team_detaches_its_keys_and_drops_its_limits(admin: httpx.AsyncClient) -> None:
    team = await new_team(admin, budget={"max_limit": REQUEST_COST, "reset_duration": "1h"})
    key = await new_key(admin, team_id=team["id"])
    assert await chat(admin, key["value"]) == 200
    assert await chat(admin, key["value"]) == 402  # the team's budget is spent
    response = await admin.delete(f"{TEAMS}/{team['id']}")
    assert response.status_code == 200 and response.json() == {"message": "Team deleted successfully"}
    assert (await admin.get(f"{TEAMS}/{team['id']}")).status_code == 404
    assert (await ok(admin.get(f"{KEYS}/{key['id']}")))["virtual_key"]["team_id"] is None
    assert await chat(admin, key["value"]) == 200  # the key works on, without the team's budget


async def test_team_lists_page_search_and_answer_from_memory_by_id(admin: httpx.AsyncClient) -> None:
    created = [await new_team(admin, name=name) for name in ("alpha", "beta", "gamma", "alphabet")]
    page = await ok(admin.get(TEAMS, params={"limit": 2, "offset": 1}))
    assert (page["count"], page["total_count"], page["limit"], page["offset"]) == (2, 4, 2, 1)
    found = await ok(admin.get(TEAMS, params={"search": "ALPHA"}))
    assert sorted(t["name"] for t in found["teams"]) == ["alpha", "alphabet"] and found["limit"] == 25
    memory = await ok(admin.get(TEAMS, params={"from_memory": "true"}))
    assert set(memory["teams"]) == {t["id"] for t in created} and memory["count"] == 4
    bad = await admin.get(TEAMS, params={"limit": "many"})
    assert (
        bad.status_code == 400
        and bad.json()["error"]["message"] == "Invalid limit parameter: must be a number"
    )
    negative = await admin.get(TEAMS, params={"offset": "-1"})
    assert negative.json()["error"]["message"] == "Invalid offset parameter: must be non-negative"
    assert (await ok(admin.get(TEAMS, params={"limit": 1000})))["limit"] == 100


# -- customers ---------------------------------------------------------------------------------------


async def test_a_customer_shows_its_teams_and_keys(admin: httpx.AsyncClient) -> None:
    acme = await new_customer(admin, budgets=[{"max_limit": 50, "reset_duration": "1M"}])
    assert (
        acme["teams"] == [] and acme["virtual_keys"] == [] and acme["budgets"][0]["customer_id"] == acme["id"]
    )
    team = await new_team(admin, customer_id=acme["id"])
    key = await new_key(admin, customer_id=acme["id"])
    got = (await ok(admin.get(f"{CUSTOMERS}/{acme['id']}")))["customer"]
    assert [t["id"] for t in got["teams"]] == [team["id"]]
    assert [k["id"] for k in got["virtual_keys"]] == [key["id"]] and got["virtual_key_count"] == 1
    assert "value" not in got["virtual_keys"][0]
    listed = await ok(admin.get(CUSTOMERS))
    assert listed["customers"][0]["teams"][0]["id"] == team["id"]
    memory = await ok(admin.get(CUSTOMERS, params={"from_memory": "true"}))
    assert list(memory["customers"]) == [acme["id"]]


async def test_a_customer_update_and_its_validation(admin: httpx.AsyncClient) -> None:
    acme = await new_customer(admin)
    path = f"{CUSTOMERS}/{acme['id']}"
    updated = await ok(
        admin.put(path, json={"name": "Acme Inc", "budget": {"max_limit": 3, "reset_duration": "1d"}})
    )
    assert updated["message"] == "Customer updated successfully"
    assert updated["customer"]["name"] == "Acme Inc" and updated["customer"]["budgets"][0]["max_limit"] == 3
    raised = await ok(admin.put(path, json={"budget": {"max_limit": 4}}))  # an older client's partial edit
    assert [(b["max_limit"], b["reset_duration"]) for b in raised["customer"]["budgets"]] == [(4, "1d")]
    assert raised["customer"]["budgets"][0]["id"] == updated["customer"]["budgets"][0]["id"]
    unnamed = await admin.put(path, json={"name": ""})
    assert unnamed.status_code == 400 and unnamed.json()["error"]["message"] == "Customer name is required"
    missing = await admin.post(CUSTOMERS, json={"budget": {"max_limit": 1, "reset_duration": "1d"}})
    assert missing.json()["error"]["message"] == "Customer name is required"
    partial = await admin.put(f"{TEAMS}/{(await new_team(admin))['id']}", json={"budget": {"max_limit": 1}})
    assert (
        partial.status_code == 400
        and "both max_limit and reset_duration" in partial.json()["error"]["message"]
    )


async def test_deleting_a_customer_detaches_its_teams_and_keys(admin: httpx.AsyncClient) -> None:
    acme = await new_customer(admin, budget={"max_limit": REQUEST_COST, "reset_duration": "1h"})
    team = await new_team(admin, customer_id=acme["id"])
    in_team = await new_key(admin, team_id=team["id"])
    direct = await new_key(admin, customer_id=acme["id"])
    assert await chat(admin, in_team["value"]) == 200
    assert await chat(admin, direct["value"]) == 402  # one budget for the customer's keys and teams
    response = await admin.delete(f"{CUSTOMERS}/{acme['id']}")
    assert response.json() == {"message": "Customer deleted successfully"}
    assert (await ok(admin.get(f"{TEAMS}/{team['id']}")))["team"]["customer_id"] is None
    assert (await ok(admin.get(f"{KEYS}/{direct['id']}")))["virtual_key"]["customer_id"] is None
    assert await chat(admin, direct["value"]) == 200 and await chat(admin, in_team["value"]) == 200


# -- the hierarchy is enforced -------------------------------------------------------------------------


async def test_a_team_budget_is_shared_by_its_keys(admin: httpx.AsyncClient) -> None:
    team = await new_team(admin, budget={"max_limit": TWO_REQUESTS, "reset_duration": "1h"})
    first, second = await new_key(admin, team_id=team["id"]), await new_key(admin, team_id=team["id"])
    assert [await chat(admin, first["value"]), await chat(admin, second["value"])] == [200, 200]
    response = await admin.post(
        "/v1/chat/completions", json={"model": "mock/mock-1", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-bf-vk": first["value"]},
    )  # fmt: skip
    assert response.status_code == 402 and response.json()["error"]["type"] == "budget_exceeded"
    assert "Team budget exceeded" in response.json()["error"]["message"]
    assert await chat(admin, second["value"]) == 402


async def test_team_and_customer_rate_limits_are_enforced(admin: httpx.AsyncClient) -> None:
    acme = await new_customer(admin, rate_limit={"request_max_limit": 3, "request_reset_duration": "1h"})
    team = await new_team(admin, customer_id=acme["id"],
                          rate_limit={"request_max_limit": 2, "request_reset_duration": "1h"})  # fmt: skip
    in_team, other = await new_key(admin, team_id=team["id"]), await new_key(admin, customer_id=acme["id"])
    assert [await chat(admin, in_team["value"]) for _ in range(3)] == [200, 200, 429]  # the team's 2
    assert [await chat(admin, other["value"]) for _ in range(2)] == [200, 429]  # the customer's 3 in all


# -- budgets and rate limits -------------------------------------------------------------------------


async def test_every_budget_and_rate_limit_is_listed_with_its_owner_and_usage(
    admin: httpx.AsyncClient,
) -> None:
    team = await new_team(admin, budget={"max_limit": 1, "reset_duration": "1d"},
                          rate_limit={"request_max_limit": 9, "request_reset_duration": "1h"})  # fmt: skip
    acme = await new_customer(admin, budget={"max_limit": 2, "reset_duration": "1d"})
    key = await new_key(
        admin, team_id=team["id"], budget={"max_limit": 3, "reset_duration": "1d"},
        provider_configs=[{"provider": "mock", "budget": {"max_limit": 4, "reset_duration": "1w"},
                           "rate_limit": {"token_max_limit": 10_000, "token_reset_duration": "1h"}}],
    )  # fmt: skip
    await ok(admin.put(f"{PROVIDERS}/mock", json={"budget": {"max_limit": 5, "reset_duration": "1M"}}))
    assert await chat(admin, key["value"]) == 200

    budgets = (await ok(admin.get("/api/governance/budgets")))["budgets"]
    owners = {
        b["max_limit"]: {k: v for k, v in b.items() if k.endswith("id") or k == "provider"} for b in budgets
    }
    assert owners == {
        1: {"id": team["budgets"][0]["id"], "team_id": team["id"]},
        2: {"id": acme["budgets"][0]["id"], "customer_id": acme["id"]},
        3: {"id": key["budgets"][0]["id"], "virtual_key_id": key["id"]},
        4: {"id": key["provider_configs"][0]["budgets"][0]["id"], "provider_config_id": 1},
        5: {"id": owners[5]["id"], "provider": "mock"},
    }
    spent = {b["max_limit"]: b["current_usage"] for b in budgets}
    assert spent == {1: REQUEST_COST, 2: 0, 3: REQUEST_COST, 4: REQUEST_COST, 5: REQUEST_COST}
    memory = await ok(admin.get("/api/governance/budgets", params={"from_memory": "true"}))
    assert set(memory["budgets"]) == {b["id"] for b in budgets} and memory["count"] == 5

    limits = await ok(admin.get("/api/governance/rate-limits"))
    by_id = {r["id"]: r for r in limits["rate_limits"]}
    assert by_id[team["rate_limit_id"]]["request_current_usage"] == 1 and limits["count"] == 2
    token_limit = by_id[key["provider_configs"][0]["rate_limit_id"]]
    assert token_limit["token_max_limit"] == 10_000 and token_limit["token_current_usage"] > 0
    memory_limits = await ok(admin.get("/api/governance/rate-limits", params={"from_memory": "true"}))
    assert set(memory_limits["rate_limits"]) == set(by_id)


# -- provider-level limits ---------------------------------------------------------------------------


async def test_provider_limits_are_set_listed_and_removed(admin: httpx.AsyncClient) -> None:
    assert await ok(admin.get(PROVIDERS)) == {"providers": [], "count": 0}
    unknown = await admin.put(f"{PROVIDERS}/groq", json={"budget": {"max_limit": 1, "reset_duration": "1d"}})
    assert (unknown.status_code, unknown.json()["error"]["message"]) == (404, "Provider not found")
    assert (await admin.get(f"{PROVIDERS}/groq")).status_code == 404

    body = {"budgets": [{"max_limit": 10, "reset_duration": "1M"}],
            "rate_limit": {"request_max_limit": 100, "request_reset_duration": "1m"}}  # fmt: skip
    updated = await ok(admin.put(f"{PROVIDERS}/openai", json=body))
    assert updated["message"] == "Provider governance updated successfully"
    shown = updated["provider"]
    assert shown["provider"] == "openai" and shown["budgets"][0]["max_limit"] == 10
    assert shown["rate_limit"]["request_max_limit"] == 100
    assert (await ok(admin.get(PROVIDERS)))["providers"] == [shown]
    assert (await ok(admin.get(f"{PROVIDERS}/openai")))["provider"] == shown

    deleted = await ok(admin.delete(f"{PROVIDERS}/openai"))
    assert deleted == {"message": "Provider governance deleted successfully"}
    assert (await ok(admin.get(PROVIDERS)))["count"] == 0
    empty = (await ok(admin.get(f"{PROVIDERS}/openai")))["provider"]
    assert empty == {"provider": "openai", "budgets": [], "rate_limit": None}


async def test_provider_limits_apply_with_and_without_a_key(admin: httpx.AsyncClient) -> None:
    limit = {"request_max_limit": 3, "request_reset_duration": "1h"}
    await ok(admin.put(f"{PROVIDERS}/mock", json={"rate_limit": limit}))
    key = await new_key(admin)
    assert [await chat(admin), await chat(admin, key["value"]), await chat(admin)] == [200, 200, 200]
    assert await chat(admin) == 429 and await chat(admin, key["value"]) == 429
    await ok(admin.put(f"{PROVIDERS}/mock", json={"rate_limit": {"request_max_limit": None}}))
    assert await chat(admin) == 200  # removed, and applied at once in this process


async def test_a_provider_budget_blocks_once_spent(admin: httpx.AsyncClient) -> None:
    budget = {"max_limit": TWO_REQUESTS, "reset_duration": "1d"}
    await ok(admin.put(f"{PROVIDERS}/mock", json={"budget": budget}))
    assert [await chat(admin) for _ in range(3)] == [200, 200, 402]
    response = await admin.post("/v1/chat/completions", json=CHAT)
    assert "Provider budget exceeded" in response.json()["error"]["message"]


# -- virtual keys in Bifrost's current shape ---------------------------------------------------------


async def test_a_key_takes_singular_budgets_and_answers_with_the_list(admin: httpx.AsyncClient) -> None:
    key = await new_key(
        admin, budget={"max_limit": 10, "reset_duration": "1M"}, calendar_aligned=True,
        provider_configs=[{"provider": "mock", "weight": 0.5, "key_ids": ["*"],
                           "budget": {"max_limit": 1, "reset_duration": "1d"}}],
    )  # fmt: skip
    assert [(b["max_limit"], b["calendar_aligned"]) for b in key["budgets"]] == [(10, True)]
    assert (
        key["calendar_aligned"] is True
        and key["created_at"].endswith("Z")
        and key["value"].startswith("sk-bf-")
    )
    [config] = key["provider_configs"]
    assert (config["id"], config["provider"], config["weight"]) == (1, "mock", 0.5)
    assert [b["max_limit"] for b in config["budgets"]] == [1]
    stored = await gateway_of(admin).governance.keys.get(key["id"])  # type: ignore[union-attr]
    assert stored is not None and stored.provider_configs[0].budgets[0].reset_duration == "1d"

    path = f"{KEYS}/{key['id']}"
    edited = (await ok(admin.put(path, json={
        "budgets": [{"max_limit": 20, "reset_duration": "1M"}, {"max_limit": 2, "reset_duration": "1d"}],
        "provider_configs": [{"id": 1, "provider": "mock", "budget": {"max_limit": 3}}],
    })))["virtual_key"]  # fmt: skip
    month = next(b for b in edited["budgets"] if b["reset_duration"] == "1M")
    assert month["id"] == key["budgets"][0]["id"] and month["max_limit"] == 20 and len(edited["budgets"]) == 2
    assert edited["provider_configs"][0]["budgets"][0]["max_limit"] == 3
    assert edited["provider_configs"][0]["budgets"][0]["id"] == config["budgets"][0]["id"]


async def test_key_lists_page_and_filter_as_bifrost(admin: httpx.AsyncClient) -> None:
    team = await new_team(admin)
    in_team = await new_key(admin, name="build", team_id=team["id"])
    await new_key(admin, name="deploy")
    filtered = await ok(admin.get(KEYS, params={"team_id": team["id"]}))
    assert [k["id"] for k in filtered["virtual_keys"]] == [in_team["id"]] and filtered["limit"] == 25
    assert filtered["virtual_keys"][0]["team"]["id"] == team["id"]
    searched = await ok(admin.get(KEYS, params={"search": "dep"}))
    assert [k["name"] for k in searched["virtual_keys"]] == ["deploy"]
    memory = await ok(admin.get(KEYS, params={"from_memory": "true"}))
    assert [k["name"] for k in memory["virtual_keys"]] == ["build", "deploy"] and memory["total_count"] == 2
    assert all("value" not in k for k in memory["virtual_keys"])


async def test_a_key_moves_between_a_team_and_a_customer(admin: httpx.AsyncClient) -> None:
    team, acme = await new_team(admin), await new_customer(admin)
    key = await new_key(admin, team_id=team["id"])
    path = f"{KEYS}/{key['id']}"
    moved = (await ok(admin.put(path, json={"customer_id": acme["id"]})))["virtual_key"]
    assert (moved["team_id"], moved["customer_id"]) == (None, acme["id"])
    back = (await ok(admin.put(path, json={"team_id": team["id"]})))["virtual_key"]
    assert (back["team_id"], back["customer_id"]) == (team["id"], None)
    kept = (await ok(admin.put(path, json={"name": "renamed"})))["virtual_key"]
    assert kept["team_id"] == team["id"]  # an update changes only what it sends
    both = await admin.put(path, json={"team_id": team["id"], "customer_id": acme["id"]})
    assert both.status_code == 400
    assert both.json()["error"]["message"] == "VirtualKey cannot be attached to both Team and Customer"
