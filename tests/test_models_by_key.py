"""``GET /v1/models`` called with a virtual key lists only what the key may call (Bifrost filters the list
by the key's provider configs and allowed models), authenticated as an inference request is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app

REFUSED = "http://127.0.0.1:9"  # listing upstream fails at once; the configured models are listed
KEYS: dict[str, dict[str, Any]] = {
    "sk-bf-" + "a" * 43: {"provider_configs": [{"provider": "mock", "allowed_models": ["m-1", "regex:m-[23]"],
                                                "blacklisted_models": ["m-3"]}]},
    "sk-bf-" + "b" * 43: {"provider_configs": [{"provider": "groq"}]},
    "sk-bf-" + "c" * 43: {"provider_configs": [{"provider": "no-such-provider"}]},
    "sk-bf-" + "d" * 43: {"allow_all_providers": True},
    "sk-bf-" + "e" * 43: {"provider_configs": [{"provider": "mock"}], "is_active": False},
}  # fmt: skip
ONLY_MOCK, ONLY_GROQ, UNKNOWN, EVERYTHING, INACTIVE = KEYS


def _config(**client: Any) -> dict[str, Any]:
    keys = [{"id": f"vk-{i}", "name": f"k{i}", "value": value, **fields} for i, (value, fields) in
            enumerate(KEYS.items())]  # fmt: skip
    return {
        "providers": {
            "mock": {"keys": [{"value": "x", "models": ["m-1", "m-2", "m-3", "m-4"]}]},
            "groq": {
                "keys": [{"value": "gsk", "models": ["llama-a"]}],
                "network_config": {"base_url": REFUSED},
            },
        },
        "client": client,
        "governance": {"store": {"type": "memory"}, "virtual_keys": keys},
    }


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewayConfig.from_dict(_config()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        yield client
    await app.state.gateway.aclose()


async def listed(client: httpx.AsyncClient, key: str | None = None, **params: str) -> list[str]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = await client.get("/v1/models", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return sorted(m["id"] for m in response.json()["data"])


async def test_without_a_key_every_configured_model_is_listed(gateway: httpx.AsyncClient) -> None:
    assert await listed(gateway) == ["groq/llama-a", "mock/m-1", "mock/m-2", "mock/m-3", "mock/m-4"]


async def test_a_key_sees_its_providers_allowed_models_minus_its_blacklist(
    gateway: httpx.AsyncClient,
) -> None:
    assert await listed(gateway, ONLY_MOCK) == ["mock/m-1", "mock/m-2"]
    assert await listed(gateway, ONLY_GROQ) == ["groq/llama-a"]
    assert await listed(gateway, EVERYTHING) == await listed(gateway)
    assert await listed(gateway, ONLY_MOCK, provider="groq") == []


async def test_a_key_for_an_unknown_provider_sees_an_empty_list(gateway: httpx.AsyncClient) -> None:
    assert await listed(gateway, UNKNOWN) == []


async def test_the_key_is_authenticated_as_on_inference(gateway: httpx.AsyncClient) -> None:
    unknown = await gateway.get("/v1/models", headers={"x-bf-vk": "sk-bf-" + "z" * 43})
    assert unknown.status_code == 403 and unknown.json()["error"]["type"] == "virtual_key_not_found"
    inactive = await gateway.get("/v1/models", headers={"x-api-key": INACTIVE})
    assert inactive.status_code == 403 and inactive.json()["error"]["type"] == "virtual_key_blocked"


async def test_enforced_auth_requires_a_key_for_the_list_too() -> None:
    app = create_app(GatewayConfig.from_dict(_config(enforce_auth_on_inference=True)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        missing = await client.get("/v1/models")
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "virtual_key_required"
        assert await listed(client, ONLY_GROQ) == ["groq/llama-a"]
    await app.state.gateway.aclose()
