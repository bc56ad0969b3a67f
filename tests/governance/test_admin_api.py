"""The management API (`admin_routes`): Basic auth, virtual-key CRUD, usage and log search over HTTP."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from bifrost_asgi.config import ConfigError, GatewayConfig
from bifrost_asgi.errors import BifrostError
from bifrost_asgi.governance.config import AuthConfig
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import Team
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.routes.admin import AdminBackend, admin_routes
from bifrost_asgi.stores.counters import MemoryCounterStore
from bifrost_asgi.stores.keys import KeyStore, MemoryKeyStore
from bifrost_asgi.stores.logs import LogRecord, LogWriter
from bifrost_asgi.stores.sqlite_keys import SQLiteKeyStore
from bifrost_asgi.stores.sqlite_logs import SQLiteLogStore

PASSWORD = "adm1n-pa55word-XYZ"
AUTH = AuthConfig(is_enabled=True, admin_username="admin", admin_password=SecretStr(PASSWORD))
KEYS = "/api/governance/virtual-keys"
NOW = 1_741_608_000.0  # 2025-03-10T12:00:00Z


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def now(self) -> float:
        return self.t


@dataclass
class Backend:
    governance: Governance | None
    logs: LogWriter | None
    config: GatewayConfig | None = None


def make_backend(tmp_path: Path, keys: KeyStore | None = None) -> Backend:
    gov = Governance(keys or MemoryKeyStore(), MemoryCounterStore(), PricingTable.default(), clock=Clock())
    return Backend(gov, LogWriter(SQLiteLogStore(str(tmp_path / "logs.db"))))


def client_for(backend: Any, admin_auth: AuthConfig | None = AUTH, **kw: Any) -> httpx.AsyncClient:
    app = Starlette(routes=admin_routes(lambda: backend, auth=admin_auth))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", **kw)


@pytest.fixture
def backend(tmp_path: Path) -> Backend:
    return make_backend(tmp_path)


@pytest.fixture
async def admin(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(backend, auth=("admin", PASSWORD)) as client:
        yield client


def gov_of(backend: Backend) -> Governance:
    assert backend.governance is not None
    return backend.governance


async def create(admin: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await admin.post(KEYS, json={"name": "ci", **body})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()["virtual_key"]
    return created


# -- auth --------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/logs"),
    ("GET", KEYS),
    ("POST", KEYS),
    ("GET", KEYS + "/k1"),
    ("PUT", KEYS + "/k1"),
    ("DELETE", KEYS + "/k1"),
    ("GET", KEYS + "/k1/usage"),
]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "header",
    [
        None,
        basic("admin", "wrong"),
        basic("root", PASSWORD),
        basic("admin", PASSWORD + "x"),
        "Bearer " + PASSWORD,
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"admin" + PASSWORD.encode()).decode(),  # no colon
    ],
)
async def test_every_route_needs_the_admin_credentials(
    backend: Backend, method: str, path: str, header: str | None
) -> None:
    headers = {"authorization": header} if header else {}
    async with client_for(backend) as client:
        response = await client.request(method, path, headers=headers, json={"name": "x"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="bifrost"'
    body = response.json()
    assert body["status_code"] == 401 and body["error"]["type"] == "unauthorized"
    assert PASSWORD not in response.text
    assert await gov_of(backend).keys.list_keys() == []  # nothing was created behind the 401


async def test_right_credentials_pass(backend: Backend) -> None:
    async with client_for(backend) as client:
        response = await client.get(KEYS, headers={"authorization": basic("admin", PASSWORD)})
    assert response.status_code == 200
    assert response.json() == {"virtual_keys": [], "count": 0, "total_count": 0, "limit": 0, "offset": 0}


async def test_auth_disabled_opens_the_api_with_one_startup_warning(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bifrost_asgi.admin")
    async with client_for(backend, admin_auth=AuthConfig(is_enabled=False)) as client:
        assert (await client.get(KEYS)).status_code == 200
        assert (await client.post(KEYS, json={"name": "open"})).status_code == 200
        assert (await client.get("/api/logs")).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "open to anyone" in warnings[0].getMessage()


async def test_no_auth_section_is_auth_disabled(backend: Backend) -> None:
    async with client_for(backend, admin_auth=None) as client:
        assert (await client.get(KEYS)).status_code == 200


@pytest.mark.parametrize(
    "auth",
    [
        AuthConfig(is_enabled=True),
        AuthConfig(is_enabled=True, admin_username="admin"),
        AuthConfig(is_enabled=True, admin_username="admin", admin_password=SecretStr("")),
        AuthConfig(is_enabled=True, admin_password=SecretStr(PASSWORD)),
    ],
)
def test_auth_enabled_without_credentials_fails_at_startup(auth: AuthConfig) -> None:
    with pytest.raises(ConfigError, match="admin_username and admin_password"):
        admin_routes(lambda: Backend(None, None), auth=auth)


async def test_the_admin_password_is_never_logged(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_for(backend) as client:
        await client.get(KEYS, headers={"authorization": basic("admin", PASSWORD + "!")})
        await client.get(KEYS, headers={"authorization": basic("admin", PASSWORD)})
    assert PASSWORD not in caplog.text


# -- create, read ------------------------------------------------------------------------------------


async def test_create_shows_the_value_once_and_it_authenticates(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    response = await admin.post(
        KEYS,
        json={
            "name": "ci",
            "description": "for CI",
            "owner": "alice",
            "provider_configs": [{"provider": "openai", "allowed_models": ["gpt-4o"]}],
            "budgets": [{"max_limit": 10, "reset_duration": "1M"}],
            "rate_limit": {"request_max_limit": 100, "request_reset_duration": "1m"},
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["message"] == "Virtual key created successfully"
    created = body["virtual_key"]
    value = created["value"]
    assert value.startswith("sk-bf-") and len(value) >= 6 + 32
    assert "key_hash" not in created
    assert created["name"] == "ci" and created["owner"] == "alice" and created["is_active"] is True
    assert created["provider_configs"][0]["allowed_models"] == ["gpt-4o"]
    assert created["created_at"] == "2025-03-10T12:00:00.000Z" and created["revoked_at"] is None
    assert created["value_hint"] == f"sk-bf-{value[6:14]}…"

    key = await gov_of(backend).authenticate(value)
    assert key is not None and key.id == created["id"]
    stored = await gov_of(backend).keys.get(created["id"])
    assert stored is not None and value not in stored.model_dump_json()


async def test_list_and_get_never_show_the_value_or_the_hash(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    created = await create(admin)
    stored = await gov_of(backend).keys.get(created["id"])
    assert stored is not None
    listed = await admin.get(KEYS)
    got = await admin.get(f"{KEYS}/{created['id']}")
    for response in (listed, got):
        assert response.status_code == 200
        assert created["value"] not in response.text
        assert stored.key_hash not in response.text and "key_hash" not in response.text
        assert '"value"' not in response.text
    assert listed.json()["count"] == 1 and listed.json()["virtual_keys"][0]["id"] == created["id"]
    assert got.json()["virtual_key"]["name"] == "ci"


async def test_list_filters_by_owner(admin: httpx.AsyncClient) -> None:
    await create(admin, owner="alice")
    await create(admin, owner="bob")
    await create(admin)
    alice = (await admin.get(KEYS, params={"owner": "alice"})).json()
    assert [k["owner"] for k in alice["virtual_keys"]] == ["alice"]
    assert (await admin.get(KEYS)).json()["count"] == 3


async def test_expiry_accepts_rfc3339_or_unix_seconds(admin: httpx.AsyncClient) -> None:
    as_text = await create(admin, expires_at="2025-04-01T00:00:00Z")
    as_number = await create(admin, expires_at=1_743_465_600)
    assert as_text["expires_at"] == as_number["expires_at"] == "2025-04-01T00:00:00.000Z"


async def test_team_and_customer_must_exist_and_are_exclusive(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    await gov_of(backend).keys.put_team(Team(id="t1", name="platform"))
    assert (await create(admin, team_id="t1"))["team_id"] == "t1"
    unknown = await admin.post(KEYS, json={"name": "x", "team_id": "nope"})
    both = await admin.post(KEYS, json={"name": "x", "team_id": "t1", "customer_id": "c1"})
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "team_id")
    assert (both.status_code, both.json()["error"]["param"]) == (400, "team_id")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "key_hash": "0" * 64}, "key_hash"),
        ({"name": "x", "value": "sk-bf-chosen-by-caller"}, "value"),
        ({"name": "x", "id": "mine"}, "id"),
        ({"name": "x", "revoked_at": None}, "revoked_at"),
        ({"name": "x", "budgets": [{"max_limit": 10, "reset_duration": "2x"}]}, "budgets.0.reset_duration"),
        ({"name": "x", "budgets": [{"max_limit": -1}]}, "budgets.0.max_limit"),
        ({"name": "x", "rate_limit": {"request_max_limit": "many"}}, "rate_limit.request_max_limit"),
        ({"name": "x", "provider_configs": [{"weight": 1}]}, "provider_configs.0.provider"),
        ({"name": "x", "is_active": "perhaps"}, "is_active"),
    ],
)
async def test_invalid_bodies_are_a_400_naming_the_field(
    admin: httpx.AsyncClient, backend: Backend, body: dict[str, Any], param: str
) -> None:
    response = await admin.post(KEYS, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and param in error["message"]
    assert "sk-bf-chosen-by-caller" not in response.text
    assert await gov_of(backend).keys.list_keys() == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"name"'])
async def test_a_body_that_is_not_a_json_object_is_a_400(admin: httpx.AsyncClient, raw: bytes) -> None:
    response = await admin.post(KEYS, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["is_bifrost_error"] is False


async def test_an_oversized_body_is_refused(admin: httpx.AsyncClient) -> None:
    response = await admin.post(KEYS, json={"name": "x", "description": "d" * (1024 * 1024)})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path"), [(m, p.replace("k1", "missing")) for m, p in ROUTES if "k1" in p]
)
async def test_unknown_ids_are_a_404(admin: httpx.AsyncClient, method: str, path: str) -> None:
    response = await admin.request(method, path, json={"description": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Virtual key not found"


async def test_sqlite_store_never_holds_the_value(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    backend = make_backend(tmp_path, SQLiteKeyStore(str(db)))
    async with client_for(backend, auth=("admin", PASSWORD)) as admin:
        created = await create(admin)
        assert (await admin.get(f"{KEYS}/{created['id']}")).status_code == 200
    assert await gov_of(backend).authenticate(created["value"]) is not None
    await gov_of(backend).aclose()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("keys.db")]
    assert files and all(created["value"].encode() not in p.read_bytes() for p in files)
    assert any(created["id"].encode() in p.read_bytes() for p in files)  # the search can find things


# -- update ------------------------------------------------------------------------------------------


async def test_update_changes_only_the_fields_sent(admin: httpx.AsyncClient, backend: Backend) -> None:
    created = await create(admin, description="old", owner="alice")
    before = await gov_of(backend).keys.get(created["id"])
    response = await admin.put(
        f"{KEYS}/{created['id']}",
        json={
            "name": "renamed",
            "provider_configs": [{"provider": "anthropic"}],
            "rate_limit": {"token_max_limit": 1000, "token_reset_duration": "1h"},
            "allow_all_providers": True,
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()["virtual_key"]
    assert updated["name"] == "renamed" and updated["description"] == "old" and updated["owner"] == "alice"
    assert [r["provider"] for r in updated["provider_configs"]] == ["anthropic"]
    assert updated["rate_limit"]["token_max_limit"] == 1000 and updated["allow_all_providers"] is True
    after = await gov_of(backend).keys.get(created["id"])
    assert before is not None and after is not None
    assert (after.key_hash, after.key_prefix, after.created_at) == (
        before.key_hash, before.key_prefix, before.created_at
    )  # fmt: skip
    assert await gov_of(backend).authenticate(created["value"]) is not None


async def test_update_can_clear_optional_fields(admin: httpx.AsyncClient) -> None:
    created = await create(admin, expires_at=NOW + 60, rate_limit={"request_max_limit": 1})
    response = await admin.put(f"{KEYS}/{created['id']}", json={"expires_at": None, "rate_limit": None})
    assert response.json()["virtual_key"]["expires_at"] is None
    assert response.json()["virtual_key"]["rate_limit"] is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"key_hash": "0" * 64}, "key_hash"),
        ({"key_prefix": "aaaaaaaa"}, "key_prefix"),
        ({"owner": "mallory"}, "owner"),
        ({"name": None}, "name"),
        ({"description": None}, "description"),
        ({"budgets": [{"max_limit": 0}]}, "budgets.0.max_limit"),
    ],
)
async def test_update_refuses_what_it_may_not_change(
    admin: httpx.AsyncClient, backend: Backend, body: dict[str, Any], param: str
) -> None:
    created = await create(admin, owner="alice")
    before = await gov_of(backend).keys.get(created["id"])
    response = await admin.put(f"{KEYS}/{created['id']}", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert await gov_of(backend).keys.get(created["id"]) == before


async def test_deactivation_is_reversible_and_applies_at_once(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    created = await create(admin)
    gov = gov_of(backend)
    assert await gov.authenticate(created["value"]) is not None  # now in the engine's lookup cache
    await admin.put(f"{KEYS}/{created['id']}", json={"is_active": False})
    with pytest.raises(BifrostError) as caught:
        await gov.authenticate(created["value"])
    assert caught.value.top_type == "virtual_key_blocked"
    await admin.put(f"{KEYS}/{created['id']}", json={"is_active": True})
    assert await gov.authenticate(created["value"]) is not None


# -- revoke ------------------------------------------------------------------------------------------


async def test_revocation_is_permanent(admin: httpx.AsyncClient, backend: Backend) -> None:
    created = await create(admin)
    gov, path = gov_of(backend), f"{KEYS}/{created['id']}"
    assert await gov.authenticate(created["value"]) is not None
    response = await admin.delete(path)
    assert response.status_code == 200
    revoked = response.json()["virtual_key"]
    revoked_at = "2025-03-10T12:00:00.000Z"
    assert revoked["is_active"] is False and revoked["revoked_at"] == revoked_at
    with pytest.raises(BifrostError) as caught:
        await gov.authenticate(created["value"])
    assert caught.value.top_type == "virtual_key_blocked"

    refused = await admin.put(path, json={"is_active": True})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "is_active"
    assert "revocation is permanent" in refused.json()["error"]["message"]

    described = await admin.put(path, json={"description": "left by bob"})
    assert described.status_code == 200 and described.json()["virtual_key"]["is_active"] is False

    gov.clock.t += 3600  # type: ignore[attr-defined]
    again = await admin.delete(path)
    assert again.status_code == 200 and again.json()["virtual_key"]["revoked_at"] == revoked_at
    assert (await admin.get(path)).json()["virtual_key"]["revoked_at"] == revoked_at  # the record stays
    with pytest.raises(BifrostError):
        await gov.authenticate(created["value"])


# -- usage and logs ----------------------------------------------------------------------------------


async def test_usage_reports_each_limit_and_this_month(admin: httpx.AsyncClient, backend: Backend) -> None:
    created = await create(
        admin,
        provider_configs=[{"provider": "openai"}],
        budgets=[{"max_limit": 10, "reset_duration": "1M"}],
        rate_limit={"request_max_limit": 5, "request_reset_duration": "1m"},
    )
    gov = gov_of(backend)
    key = await gov.authenticate(created["value"])
    assert key is not None
    ticket = await gov.admit(key, "openai", "gpt-4o", {"max_output_tokens": 10}, 40)
    await gov.settle(ticket, ok=True, tokens=25, cost=0.5)
    assert backend.logs is not None
    await backend.logs.store.write(
        [LogRecord(id="r1", timestamp=NOW - 10, object="responses", virtual_key_id=key.id, total_tokens=25,
                   cost=0.5),
         LogRecord(id="r0", timestamp=NOW - 40 * 86400, object="responses", virtual_key_id=key.id, cost=9.0)]
    )  # fmt: skip

    response = await admin.get(f"{KEYS}/{created['id']}/usage")
    assert response.status_code == 200
    body = response.json()
    by_kind = {row["kind"]: row for row in body["limits"]}
    assert set(by_kind) == {"requests", "budget"}
    assert (by_kind["requests"]["max"], by_kind["requests"]["used"], by_kind["requests"]["remaining"]) == (
        5, 1, 4
    )  # fmt: skip
    assert by_kind["budget"]["used"] == pytest.approx(0.5)
    assert body["this_month"] == {
        "since": "2025-03-01T00:00:00.000Z",
        "requests": 1,
        "tokens": 25,
        "cost": 0.5,
    }


async def test_usage_without_a_log_store_has_no_totals(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.logs = None
    async with client_for(backend, auth=("admin", PASSWORD)) as admin:
        created = await create(admin)
        body = (await admin.get(f"{KEYS}/{created['id']}/usage")).json()
    assert body == {"virtual_key_id": created["id"], "limits": [], "this_month": None}


async def test_log_search_over_http(admin: httpx.AsyncClient, backend: Backend) -> None:
    assert backend.logs is not None
    await backend.logs.store.write(
        [LogRecord(id=f"r{i}", timestamp=NOW + i, object="responses", provider=p) for i, p in
         enumerate(["openai", "anthropic", "openai", "gemini"])]
    )  # fmt: skip
    response = await admin.get("/api/logs?providers=openai&providers=gemini&sort_by=timestamp&order=asc")
    assert response.status_code == 200
    body = response.json()
    assert [log["id"] for log in body["logs"]] == ["r0", "r2", "r3"]
    assert body["pagination"]["total_count"] == 3 and body["stats"]["total_requests"] == 3
    assert body["has_logs"] is True
    bad = await admin.get("/api/logs", params={"limit": "lots"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


async def test_missing_governance_or_logs_is_a_404(tmp_path: Path) -> None:
    async with client_for(Backend(None, None), auth=("admin", PASSWORD)) as admin:
        keys = await admin.get(KEYS)
        logs = await admin.get("/api/logs")
    assert keys.status_code == 404 and "governance is not configured" in keys.json()["error"]["message"]
    assert logs.status_code == 404 and "usage logs are disabled" in logs.json()["error"]["message"]


async def test_the_backend_getter_may_be_async(backend: Backend) -> None:
    started: list[bool] = []

    async def get_backend() -> AdminBackend:
        started.append(True)  # e.g. `await gateway.start()` when the host sends no lifespan events
        return backend

    app = Starlette(routes=admin_routes(get_backend, auth=AUTH))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", auth=("admin", PASSWORD)) as c:
        assert (await c.get(KEYS)).status_code == 200
    assert started == [True]
