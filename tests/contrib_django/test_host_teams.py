"""Teams from the host's own model (``BIFROST["TEAM_MODEL"]``, ``["TEAM_MEMBERS"]``): here Django's
``auth.Group``, whose users are its members. A key belongs to its owner's group's team; the group gets
budgets through the management API like any team, shared by its members' keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

pytest.importorskip("django")

from asgiref.sync import sync_to_async  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.checks import run_checks  # noqa: E402
from django.test import override_settings  # noqa: E402

from bifrost_asgi import GatewayConfig, create_app  # noqa: E402
from bifrost_django.models import VirtualKey as KeyRow  # noqa: E402
from bifrost_django.stores import ORMCounterStore, ORMKeyStore  # noqa: E402
from tests.governance._admin_gateway import CHAT, PASSWORD, PRICING, REQUEST_COST  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

HOST_TEAMS = {"PROVIDERS": {"mock": {}}, "TEAM_MODEL": "auth.Group", "TEAM_MEMBERS": "user"}


@pytest.fixture
async def admin() -> AsyncIterator[httpx.AsyncClient]:
    config = {
        "providers": {"mock": {}},
        "pricing_overrides": PRICING,
        "governance": {
            "key_cache_ttl_seconds": 0,
            "auth_config": {"is_enabled": True, "admin_username": "admin", "admin_password": PASSWORD},
        },
    }  # fmt: skip
    with override_settings(BIFROST=HOST_TEAMS):
        app = create_app(
            GatewayConfig.from_dict(config), key_store=ORMKeyStore(), counter_store=ORMCounterStore()
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", auth=("admin", PASSWORD)
        ) as c:
            yield c
        await app.state.gateway.aclose()


def members(group: str, *usernames: str) -> tuple[str, list[str]]:
    """A group of new users, each with a key: (the group's team id, the keys' values)."""
    team = Group.objects.create(name=group)
    values = []
    for name in usernames:
        user = User.objects.create_user(name, password="pw")
        user.groups.add(team)
        _, value = KeyRow.objects.create_key(name=f"{name}-key", owner=user, allow_all_providers=True)
        values.append(value)
    return f"auth.group:{team.pk}", values


async def chat(client: httpx.AsyncClient, value: str) -> int:
    return (await client.post("/v1/chat/completions", json=CHAT, headers={"x-bf-vk": value})).status_code


async def test_a_groups_budget_is_shared_by_its_members_keys(admin: httpx.AsyncClient) -> None:
    team_id, (alice, bob) = await sync_to_async(members)("Acme", "alice", "bob")
    listed = (await admin.get("/api/governance/teams")).json()["teams"]
    assert [(t["id"], t["name"], t["virtual_key_count"]) for t in listed] == [(team_id, "Acme", 2)]

    budget = {"max_limit": 2 * REQUEST_COST, "reset_duration": "1h"}
    updated = await admin.put(f"/api/governance/teams/{team_id}", json={"budget": budget})
    assert updated.status_code == 200, updated.text
    assert updated.json()["team"]["name"] == "Acme"
    assert [await chat(admin, alice), await chat(admin, bob), await chat(admin, alice)] == [200, 200, 402]


async def test_membership_decides_and_an_update_does_not_pin_it(admin: httpx.AsyncClient) -> None:
    team_id, (value,) = await sync_to_async(members)("Acme", "carol")
    row = await KeyRow.objects.aget(owner__username="carol")
    shown = (await admin.get(f"/api/governance/virtual-keys/{row.id}")).json()["virtual_key"]
    assert shown["team_id"] == team_id and shown["team"]["name"] == "Acme"

    renamed = await admin.put(f"/api/governance/virtual-keys/{row.id}", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["virtual_key"]["team_id"] == team_id
    await row.arefresh_from_db()
    assert row.team_id is None  # stored without it: the key follows its owner

    budget = {"max_limit": REQUEST_COST, "reset_duration": "1h"}
    await admin.put(f"/api/governance/teams/{team_id}", json={"budget": budget})
    assert [await chat(admin, value), await chat(admin, value)] == [200, 402]
    await sync_to_async(lambda: User.objects.get(username="carol").groups.clear())()
    assert await chat(admin, value) == 200  # no longer a member: no longer the team's


async def test_an_explicit_team_wins_over_membership(admin: httpx.AsyncClient) -> None:
    _, (value,) = await sync_to_async(members)("Acme", "dave")
    other = (await admin.post("/api/governance/teams", json={"name": "Ops"})).json()["team"]
    row = await KeyRow.objects.aget(owner__username="dave")
    moved = await admin.put(f"/api/governance/virtual-keys/{row.id}", json={"team_id": other["id"]})
    assert moved.json()["virtual_key"]["team_id"] == other["id"]
    await row.arefresh_from_db()
    assert row.team_id == other["id"]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"TEAM_MODEL": "auth.Group"}, "set together"),
        ({"TEAM_MODEL": "nope.Team", "TEAM_MEMBERS": "user"}, "is not an installed model"),
        ({"TEAM_MODEL": "auth.Group", "TEAM_MEMBERS": "owners"}, "is not a lookup from auth.Group"),
    ],
)
def test_a_bad_team_model_setting_is_e010(settings: dict[str, Any], problem: str) -> None:
    with override_settings(BIFROST={"PROVIDERS": {"mock": {}}, **settings}):
        messages = [m for m in run_checks(tags=["bifrost"]) if m.id == "bifrost.E010"]
    assert len(messages) == 1 and problem in messages[0].msg


def test_the_host_team_setting_is_clean_when_right() -> None:
    with override_settings(BIFROST=HOST_TEAMS):
        assert list(run_checks(tags=["bifrost"])) == []
