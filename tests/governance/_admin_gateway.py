"""A whole gateway (``create_app``) with its management API behind Basic auth, for the management-API tests:
the mock provider priced at a fixed $1/64 a request, so budgets count requests exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway

PASSWORD = "adm1n-pa55word-XYZ"
REQUEST_COST = 1 / 64  # a power of two: sums of it are exact, so a budget admits an exact count
CHAT = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}

Make = Callable[..., Awaitable[httpx.AsyncClient]]
# The mock model at a fixed price a request, whatever its tokens.
PRICING = {
    "mock/mock-1": {
        "input_cost_per_request": REQUEST_COST,
        "input_cost_per_token": 0,
        "output_cost_per_token": 0,
    }
}


def config(path: Path, **governance: Any) -> dict[str, Any]:
    return {
        "providers": {"mock": {}, "openai": {"keys": [{"value": "sk-test"}]}},
        "pricing_overrides": PRICING,
        "governance": {
            "store": {"type": "sqlite", "path": str(path / "bifrost.db")},
            "auth_config": {"is_enabled": True, "admin_username": "admin", "admin_password": PASSWORD},
            **governance,
        },
    }


@pytest.fixture
async def make_admin(tmp_path: Path) -> AsyncIterator[Make]:
    """``await make_admin(**governance)``: a client signed in as the admin of a fresh gateway."""
    apps: list[Any] = []

    async def make(**governance: Any) -> httpx.AsyncClient:
        app = create_app(GatewayConfig.from_dict(config(tmp_path, **governance)))
        await app.state.gateway.start()
        apps.append(app)
        transport = httpx.ASGITransport(app=app)
        auth = ("admin", PASSWORD)  # inference ignores Basic credentials: they only open the management API
        return httpx.AsyncClient(transport=transport, base_url="http://gw", auth=auth, timeout=30)

    yield make
    for app in apps:
        await app.state.gateway.aclose()


@pytest.fixture
async def admin(make_admin: Make) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_admin() as client:
        yield client


def gateway_of(client: httpx.AsyncClient) -> Gateway:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    gateway: Gateway = transport.app.state.gateway  # type: ignore[attr-defined]
    return gateway


async def ok(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    answered = await response
    assert answered.status_code == 200, answered.text
    body: dict[str, Any] = answered.json()
    return body


async def new_key(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "k", "provider_configs": [{"provider": "mock"}], **fields}
    created: dict[str, Any] = (await ok(admin.post("/api/governance/virtual-keys", json=body)))["virtual_key"]
    return created


async def chat(client: httpx.AsyncClient, key: str | None = None) -> int:
    headers = {"x-bf-vk": key} if key else {}
    response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    return response.status_code
