"""Seed 003's deployments: a JWT standing for a virtual key, and an admin JWT for the management API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bifrost_asgi import GatewayConfig, create_app

SECRET = "s3cret-for-tests-only-0123456789abcdef"
KEY = "sk-bf-" + "j" * 43


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    # An hour: parametrized cases mint their tokens at collection, possibly minutes before they run.
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, key, algorithm=algorithm)


def config(jwt_auth: dict[str, Any]) -> GatewayConfig:
    return GatewayConfig.from_dict(
        {
            "providers": {"mock": {"keys": [{"value": "u", "models": ["mock-1"]}]}},
            "client": {"enforce_auth_on_inference": True},
            "governance": {
                "store": {"type": "memory"},
                "counters": {"type": "memory"},
                "jwt_auth": jwt_auth,
                "virtual_keys": [{"id": "vk-jwt", "name": "j", "value": KEY, "allow_all_providers": True}],
            },
        }
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config({"algorithm": "HS256", "secret": SECRET}))
    await app.state.gateway.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c
    await app.state.gateway.aclose()


def count_body() -> dict[str, Any]:
    return {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hello"}]}


async def test_a_virtual_key_token_authenticates_count_tokens(client: httpx.AsyncClient) -> None:
    auth = {"authorization": f"Bearer {token({'vk_id': 'vk-jwt'})}"}
    r = await client.post("/v1/responses/input_tokens", json=count_body(), headers=auth)
    assert r.status_code == 200, r.text
    chat = await client.post("/v1/chat/completions", json=count_body(), headers=auth)
    assert chat.status_code == 200


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        (token({"vk_id": "vk-jwt"}, key="wrong-secret-wrong-secret-wrong-sec"), 401, "invalid_token"),
        (
            jwt.encode({"vk_id": "vk-jwt", "exp": int(time.time()) - 120}, SECRET, algorithm="HS256"),
            401,
            "invalid_token",
        ),
        (jwt.encode({"vk_id": "vk-jwt"}, SECRET, algorithm="HS256"), 401, "invalid_token"),  # no expiry
        (token({"vk_id": "nope"}), 403, "virtual_key_not_found"),
        (token({"admin": True}), 401, "virtual_key_required"),  # an admin token is not an inference key
    ],
)
async def test_bad_tokens_are_refused(client: httpx.AsyncClient, bad: str, status: int, code: str) -> None:
    r = await client.post(
        "/v1/chat/completions", json=count_body(), headers={"authorization": f"Bearer {bad}"}
    )
    assert r.status_code == status, r.text
    assert r.json()["type"] == code


async def test_admin_token_grants_the_management_api(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/governance/virtual-keys")).status_code == 401
    user = {"authorization": f"Bearer {token({'vk_id': 'vk-jwt'})}"}
    assert (await client.get("/api/governance/virtual-keys", headers=user)).status_code == 401
    admin = {"authorization": f"Bearer {token({'admin': True})}"}
    r = await client.get("/api/governance/virtual-keys", headers=admin)
    assert r.status_code == 200
    assert [k["id"] for k in r.json()["virtual_keys"]] == ["vk-jwt"]


async def test_rs256_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = create_app(config({"algorithm": "RS256", "public_key": public.decode()}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        good = token({"vk_id": "vk-jwt"}, key=private, algorithm="RS256")
        forged = token({"vk_id": "vk-jwt"}, key=SECRET, algorithm="HS256")  # algorithm confusion attempt
        ok = await c.post(
            "/v1/chat/completions", json=count_body(), headers={"authorization": f"Bearer {good}"}
        )
        bad = await c.post(
            "/v1/chat/completions", json=count_body(), headers={"authorization": f"Bearer {forged}"}
        )
    await app.state.gateway.aclose()
    assert ok.status_code == 200, ok.text
    assert bad.status_code == 401
